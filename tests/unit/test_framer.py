"""Tests for trunkline.sip.framer: stream framing and CRLF keep-alives."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trunkline.sip.errors import SipFramingError
from trunkline.sip.framer import (
    KEEPALIVE_PING,
    KEEPALIVE_PONG,
    KeepAlive,
    StreamFramer,
    content_length_of,
)


def message(
    body: bytes = b"", *, length_header: str = "Content-Length", method: str = "OPTIONS"
) -> bytes:
    return (
        f"{method} sip:bob@example.com SIP/2.0\r\n"
        "Via: SIP/2.0/TCP host.example.com;branch=z9hG4bK776\r\n"
        "Call-ID: a84b4c76e66710\r\n"
        f"{length_header}: {len(body)}\r\n"
        "\r\n"
    ).encode() + body


def feed_chunks(framer: StreamFramer, data: bytes, sizes: list[int]) -> list[bytes | KeepAlive]:
    out: list[bytes | KeepAlive] = []
    position = 0
    for size in sizes:
        out += framer.feed(data[position : position + size])
        position += size
    out += framer.feed(data[position:])
    return out


# -- framing ---------------------------------------------------------------------


def test_one_message_without_body() -> None:
    framer = StreamFramer()
    data = message()
    assert framer.feed(data) == [data]
    assert framer.at_boundary
    assert framer.buffered == 0


def test_body_framed_by_length_even_with_crlfs_inside() -> None:
    body = b"v=0\r\n\r\n\r\nbinary\x00\r\r\n"
    data = message(body)
    framer = StreamFramer()
    assert framer.feed(data + data) == [data, data]


@pytest.mark.parametrize(
    "header",
    ["Content-Length", "content-length", "CONTENT-LENGTH", "l", "L", "Content-Length ", "l\t"],
)
def test_content_length_names_and_spacing(header: str) -> None:
    data = message(b"hello", length_header=header)
    assert StreamFramer().feed(data + b"\r\n") == [data, KEEPALIVE_PONG]


def test_value_whitespace_and_leading_zeros() -> None:
    data = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length:   005  \r\n\r\nhello"
    assert StreamFramer().feed(data) == [data]


def test_folded_header_lines() -> None:
    data = (
        b"OPTIONS sip:a@b SIP/2.0\r\n"
        b"Subject: first\r\n"
        b" content-length: 999\r\n"  # a continuation line, not a header
        b"Content-Length:\r\n"
        b"  2\r\n"  # folded value is not seen; see next test
        b"l: 2\r\n\r\nab"
    )
    # The folded Content-Length has an empty value on its own line: invalid.
    with pytest.raises(SipFramingError):
        StreamFramer().feed(data)
    good = b"OPTIONS sip:a@b SIP/2.0\r\nSubject: first\r\n content-length: 999\r\nl: 2\r\n\r\nab"
    assert StreamFramer().feed(good) == [good]


def test_start_line_is_not_a_header() -> None:
    data = b"content-length: 5 sip:a@b SIP/2.0\r\nl: 0\r\n\r\n"
    assert StreamFramer().feed(data) == [data]


def test_equal_duplicate_content_length_tolerated() -> None:
    data = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 2\r\nl: 2\r\n\r\nab"
    assert StreamFramer().feed(data) == [data]


def test_byte_by_byte() -> None:
    data = message(b"abc") + message(b"") + message(b"x" * 100)
    framer = StreamFramer()
    out: list[bytes | KeepAlive] = []
    for index in range(len(data)):
        out += framer.feed(data[index : index + 1])
    assert out == [message(b"abc"), message(b""), message(b"x" * 100)]
    assert framer.at_boundary


def test_partial_message_stays_buffered() -> None:
    data = message(b"0123456789")
    framer = StreamFramer()
    assert framer.feed(data[:-3]) == []
    assert framer.buffered == len(data) - 3
    assert not framer.at_boundary
    assert framer.feed(data[-3:]) == [data]


def test_empty_feed() -> None:
    framer = StreamFramer()
    assert framer.feed(b"") == []
    framer.eof()


# -- keep-alives (RFC 5626 §3.5.1) ----------------------------------------------


def test_ping_and_pong_sentinels() -> None:
    assert KEEPALIVE_PING is KeepAlive.PING
    assert KEEPALIVE_PONG is KeepAlive.PONG
    assert bytes(KeepAlive.PING) == b"\r\n\r\n"
    assert bytes(KeepAlive.PONG) == b"\r\n"
    item: bytes | KeepAlive = b"\r\n\r\n"
    assert item == KEEPALIVE_PING  # how a transport may compare
    assert isinstance(KeepAlive.PING, bytes)


def test_ping() -> None:
    assert StreamFramer().feed(b"\r\n\r\n") == [KEEPALIVE_PING]


def test_pong_alone_is_reported_immediately() -> None:
    assert StreamFramer().feed(b"\r\n") == [KEEPALIVE_PONG]


def test_keepalives_between_messages() -> None:
    data = b"\r\n\r\n" + message() + b"\r\n" + message(b"ab") + b"\r\n\r\n\r\n"
    assert StreamFramer().feed(data) == [
        KEEPALIVE_PING,
        message(),
        KEEPALIVE_PONG,
        message(b"ab"),
        KEEPALIVE_PING,
        KEEPALIVE_PONG,
    ]


def test_ping_split_in_the_middle_is_still_answered() -> None:
    framer = StreamFramer()
    assert framer.feed(b"\r\n") == [KEEPALIVE_PONG]
    assert framer.feed(b"\r\n") == [KEEPALIVE_PING]
    assert framer.at_boundary


def test_ping_split_before_message() -> None:
    framer = StreamFramer()
    assert framer.feed(b"\r\n") == [KEEPALIVE_PONG]
    assert framer.feed(b"\r\n" + message()) == [KEEPALIVE_PING, message()]


def test_two_pongs_in_separate_chunks_after_a_message() -> None:
    framer = StreamFramer()
    assert framer.feed(message() + b"\r\n") == [message(), KEEPALIVE_PONG]
    # A lone CRLF that follows a lone CRLF completes a double CRLF.
    assert framer.feed(b"\r\n") == [KEEPALIVE_PING]


def test_ping_split_after_three_bytes_waits() -> None:
    framer = StreamFramer()
    assert framer.feed(b"\r\n\r") == []
    assert framer.feed(b"\n") == [KEEPALIVE_PING]
    assert framer.feed(b"\r") == []
    assert framer.feed(b"\n") == [KEEPALIVE_PONG]


def test_two_pings_with_the_first_split() -> None:
    framer = StreamFramer()
    assert framer.feed(b"\r\n") == [KEEPALIVE_PONG]
    assert framer.feed(b"\r\n\r\n\r\n") == [KEEPALIVE_PING, KEEPALIVE_PING]


def test_pong_then_message_in_one_chunk() -> None:
    assert StreamFramer().feed(b"\r\n" + message()) == [KEEPALIVE_PONG, message()]


def test_bare_cr_is_an_error() -> None:
    with pytest.raises(SipFramingError):
        StreamFramer().feed(b"\rX")


# -- errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header_lines", "status", "reason_part"),
    [
        (b"Via: x\r\n", 400, "Missing"),
        (b"Content-Length: -999\r\n", 400, "Invalid"),
        (b"Content-Length: five\r\n", 400, "Invalid"),
        (b"Content-Length:\r\n", 400, "Invalid"),
        (b"Content-Length: 1 2\r\n", 400, "Invalid"),
        (b"Content-Length: +5\r\n", 400, "Invalid"),
        (b"Content-Length: 13\r\nl: 5\r\n", 400, "Conflicting"),
        (b"Content-Length: 99999999999\r\n", 513, "too large"),
        (b"Content-Length: 70000\r\n", 513, "too large"),
    ],
)
def test_framing_errors(header_lines: bytes, status: int, reason_part: str) -> None:
    framer = StreamFramer()
    data = b"OPTIONS sip:a@b SIP/2.0\r\n" + header_lines + b"\r\n"
    with pytest.raises(SipFramingError) as info:
        framer.feed(data)
    assert info.value.status == status
    assert reason_part.lower() in info.value.reason.lower()
    assert framer.error is info.value
    # The stream cannot be resynchronised: every later call fails too.
    with pytest.raises(SipFramingError):
        framer.feed(message())
    with pytest.raises(SipFramingError):
        framer.eof()


def test_oversize_header_section_without_terminator() -> None:
    framer = StreamFramer(max_message=4096, max_header=1024)
    framer.feed(b"OPTIONS sip:a@b SIP/2.0\r\n")
    with pytest.raises(SipFramingError) as info:
        for _ in range(100):
            framer.feed(b"X-Filler: " + b"y" * 50 + b"\r\n")
    assert info.value.status == 513


def test_oversize_header_section_with_terminator() -> None:
    big = b"OPTIONS sip:a@b SIP/2.0\r\nX: " + b"y" * 2000 + b"\r\nl: 0\r\n\r\n"
    with pytest.raises(SipFramingError) as info:
        StreamFramer(max_message=4096, max_header=1024).feed(big)
    assert info.value.status == 513


def test_oversize_message_rejected_before_body_arrives() -> None:
    framer = StreamFramer(max_message=1000)
    with pytest.raises(SipFramingError) as info:
        framer.feed(b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 1000\r\n\r\n")
    assert info.value.status == 513


def test_message_exactly_at_limit_is_accepted() -> None:
    data = message(b"z" * 10)
    assert StreamFramer(max_message=len(data)).feed(data) == [data]
    with pytest.raises(SipFramingError):
        StreamFramer(max_message=len(data) - 1).feed(data)


def test_messages_before_a_fault_are_delivered_then_error_raised() -> None:
    framer = StreamFramer()
    bad = b"OPTIONS sip:a@b SIP/2.0\r\nl: -1\r\n\r\n"
    assert framer.feed(message() + bad) == [message()]
    assert framer.error is not None
    assert framer.error.status == 400
    with pytest.raises(SipFramingError):
        framer.feed(b"")


def test_eof_inside_message() -> None:
    framer = StreamFramer()
    framer.feed(message(b"abc")[:-1])
    with pytest.raises(SipFramingError) as info:
        framer.eof()
    assert "closed" in info.value.reason


def test_eof_at_boundary_is_fine() -> None:
    framer = StreamFramer()
    framer.feed(message())
    framer.eof()


def test_invalid_limits() -> None:
    with pytest.raises(ValueError, match="positive"):
        StreamFramer(max_message=0)
    assert StreamFramer(max_message=100, max_header=1000).max_header == 100


def test_content_length_of_helper() -> None:
    assert content_length_of(b"INVITE sip:a@b SIP/2.0\r\nl: 7\r\n") == 7
    assert content_length_of(b"INVITE sip:a@b SIP/2.0\r\nVia: x\r\n") is None
    assert content_length_of(bytearray(b"SIP/2.0 200 OK\r\nCONTENT-length : 0\r\n")) == 0


# -- linear time -----------------------------------------------------------------


def test_byte_by_byte_large_header_is_linear() -> None:
    # 60 kB of headers fed one byte at a time: a rescan from the start on
    # every feed would be ~1.8e9 byte comparisons; a linear framer is instant.
    lines = b"".join(b"X-Filler-%05d: %s\r\n" % (i, b"v" * 40) for i in range(1000))
    data = b"OPTIONS sip:a@b SIP/2.0\r\n" + lines + b"Content-Length: 0\r\n\r\n"
    framer = StreamFramer(max_message=1 << 20)
    out: list[bytes | KeepAlive] = []
    start = time.perf_counter()
    for index in range(len(data)):
        out += framer.feed(data[index : index + 1])
    elapsed = time.perf_counter() - start
    assert out == [data]
    assert elapsed < 2.0


def test_many_small_messages_in_one_feed_is_linear() -> None:
    one = message(b"x")
    start = time.perf_counter()
    out = StreamFramer(max_message=1 << 20).feed(one * 5000)
    assert len(out) == 5000
    assert time.perf_counter() - start < 2.0


# -- properties (hypothesis) -------------------------------------------------------

_item = st.one_of(
    st.binary(max_size=200).map(lambda body: ("msg", message(body))),
    st.just(("ping", b"\r\n\r\n")),
)


@settings(max_examples=200, deadline=None)
@given(
    items=st.lists(_item, min_size=1, max_size=8),
    cuts=st.lists(st.integers(1, 97), max_size=40),
)
def test_any_chunking_gives_the_same_messages(
    items: list[tuple[str, bytes]], cuts: list[int]
) -> None:
    data = b"".join(chunk for _, chunk in items)
    expected = [chunk for kind, chunk in items if kind == "msg"]
    framer = StreamFramer()
    out = feed_chunks(framer, data, cuts)
    assert [item for item in out if not isinstance(item, KeepAlive)] == expected
    # Every double CRLF is reported as exactly one PING, however it is split.
    pings = sum(1 for kind, _ in items if kind == "ping")
    assert sum(1 for item in out if item is KEEPALIVE_PING) == pings
    assert framer.at_boundary


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=10))
def test_garbage_raises_only_framing_errors(chunks: list[bytes]) -> None:
    framer = StreamFramer(max_message=512)
    for chunk in chunks:
        try:
            out = framer.feed(chunk)
        except SipFramingError as exc:
            assert exc.status in (400, 513)
            return
        for item in out:
            assert isinstance(item, bytes)
            assert len(item) <= 512
