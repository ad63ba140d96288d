"""RFC 4475 / RFC 5118 torture messages over a stream transport (RFC 3261 §18.3).

On TCP/TLS a message ends after Content-Length body bytes; the torture tests
about framing (RFC 4475 §3.1.2.2 clerr, §3.1.2.3 ncl, §3.3.9 mcl01) say what a
stream receiver must do. Every other message must frame to exactly itself,
whether fed whole, byte by byte or in random chunks, with CRLF keep-alives
(RFC 5626 §3.5.1) between them.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest

from trunkline.sip.errors import SipFramingError
from trunkline.sip.framer import KEEPALIVE_PING, KEEPALIVE_PONG, KeepAlive, StreamFramer

DATA = Path(__file__).resolve().parent.parent / "data"
RFC4475 = DATA / "rfc4475"
RFC5118_WIRE = DATA / "rfc5118" / "wire"

# Files whose stream behaviour is a test of its own below.
SPECIAL = {
    "clerr",  # Content-Length larger than the message: wait for more
    "ncl",  # negative Content-Length: unrecoverable
    "mcl01",  # conflicting Content-Length values: unrecoverable
    "inv2543",  # RFC 2543 style, no Content-Length: not framable on a stream
    "dblreq",  # a UDP datagram with trailing octets
    "baddn",  # the archive copy has no empty line ending the header section
}


def _index(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="") as handle:
        return {row["name"]: row for row in csv.DictReader(handle, delimiter="\t")}


def _declared_length_matches(data: bytes) -> bool:
    """Independent check (not via the framer) that Content-Length fits the body."""
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() in (b"content-length", b"l"):
            return int(value.strip()) == len(body)
    return False


def _framable() -> list[tuple[str, bytes]]:
    cases = []
    for name in sorted(_index(RFC4475 / "INDEX.tsv")):
        if name not in SPECIAL:
            cases.append((name, (RFC4475 / f"{name}.dat").read_bytes()))
    for path in sorted(RFC5118_WIRE.glob("*.dat")):
        data = path.read_bytes()
        if _declared_length_matches(data):
            cases.append((f"rfc5118-{path.stem}", data))
    return cases


FRAMABLE = _framable()


def _feed_all(framer: StreamFramer, chunks: list[bytes]) -> list[bytes | KeepAlive]:
    out: list[bytes | KeepAlive] = []
    for chunk in chunks:
        out += framer.feed(chunk)
    return out


def _random_chunks(data: bytes, rng: random.Random, largest: int) -> list[bytes]:
    chunks = []
    position = 0
    while position < len(data):
        size = rng.randint(1, largest)
        chunks.append(data[position : position + size])
        position += size
    return chunks


def test_corpus_is_complete() -> None:
    assert len(FRAMABLE) >= 50  # 43 RFC 4475 files and the matching RFC 5118 ones


@pytest.mark.parametrize(("name", "data"), FRAMABLE, ids=[name for name, _ in FRAMABLE])
def test_each_message_frames_to_itself(name: str, data: bytes) -> None:
    framer = StreamFramer()
    assert framer.feed(data) == [data], name
    assert framer.at_boundary
    framer = StreamFramer()
    assert _feed_all(framer, [data[i : i + 1] for i in range(len(data))]) == [data]


def test_whole_corpus_byte_by_byte_with_keepalives() -> None:
    stream = b"".join(b"\r\n\r\n" + data for _, data in FRAMABLE)
    framer = StreamFramer()
    out = _feed_all(framer, [stream[i : i + 1] for i in range(len(stream))])
    assert [item for item in out if not isinstance(item, KeepAlive)] == [d for _, d in FRAMABLE]
    assert sum(1 for item in out if item is KEEPALIVE_PING) == len(FRAMABLE)
    assert framer.at_boundary


@pytest.mark.parametrize("seed", range(20))
def test_whole_corpus_in_random_chunks(seed: int) -> None:
    rng = random.Random(seed)
    order = FRAMABLE[:]
    rng.shuffle(order)
    pieces = []
    for _, data in order:
        pieces.append(rng.choice([b"", b"\r\n", b"\r\n\r\n"]))
        pieces.append(data)
    stream = b"".join(pieces)
    framer = StreamFramer()
    out = _feed_all(framer, _random_chunks(stream, rng, rng.choice([3, 64, 1500])))
    assert [item for item in out if not isinstance(item, KeepAlive)] == [d for _, d in order]
    assert framer.at_boundary


# -- the framing torture tests -----------------------------------------------------


def test_clerr_content_length_larger_than_message_waits() -> None:
    """RFC 4475 §3.1.2.2: on a stream, all one can do is wait for more data."""
    data = (RFC4475 / "clerr.dat").read_bytes()
    framer = StreamFramer()
    assert framer.feed(data) == []
    assert framer.buffered == len(data)
    # If the rest of the declared body arrives, the message completes.
    _, _, body = data.partition(b"\r\n\r\n")
    missing = 9999 - len(body)
    rest = b"x" * missing
    assert framer.feed(rest) == [data + rest]
    # If the peer closes instead, the framer reports the truncated message.
    framer = StreamFramer()
    framer.feed(data)
    with pytest.raises(SipFramingError) as info:
        framer.eof()
    assert info.value.status == 400


@pytest.mark.parametrize("name", ["ncl", "mcl01"])
@pytest.mark.parametrize("chunk", [1, 7, 100_000])
def test_bad_content_length_is_unrecoverable(name: str, chunk: int) -> None:
    """RFC 4475 §3.1.2.3 (negative) and §3.3.9 (conflicting): close the connection."""
    data = (RFC4475 / f"{name}.dat").read_bytes()
    framer = StreamFramer()
    with pytest.raises(SipFramingError) as info:
        _feed_all(framer, [data[i : i + chunk] for i in range(0, len(data), chunk)])
    assert info.value.status == 400
    assert "Content-Length" in info.value.reason
    with pytest.raises(SipFramingError):
        framer.feed(b"OPTIONS sip:a@b SIP/2.0\r\nl: 0\r\n\r\n")


def test_ncl_non_numeric_variant() -> None:
    data = (RFC4475 / "ncl.dat").read_bytes().replace(b"-999", b"five")
    with pytest.raises(SipFramingError):
        StreamFramer().feed(data)


def test_inv2543_without_content_length_cannot_be_framed() -> None:
    """RFC 3261 §18.3: Content-Length is mandatory on stream transports."""
    data = (RFC4475 / "inv2543.dat").read_bytes()
    with pytest.raises(SipFramingError) as info:
        StreamFramer().feed(data)
    assert "Missing Content-Length" in info.value.reason


def test_dblreq_on_a_stream() -> None:
    """RFC 4475 §3.1.1.8 is about UDP; on a stream the "trailing octets" are
    simply the next message (after a CRLF), framed by its own Content-Length.
    What is left after that is not a message with a Content-Length: fatal."""
    data = (RFC4475 / "dblreq.dat").read_bytes()
    register_end = data.index(b"\r\n\r\n") + 4  # its Content-Length is 0
    invite_start = register_end + 2
    invite_end = data.index(b"\r\n\r\n", invite_start) + 4 + 150
    framer = StreamFramer()
    out = framer.feed(data)
    assert out == [
        data[:register_end],
        KEEPALIVE_PONG,
        data[invite_start:invite_end],
    ]
    assert data[:register_end].startswith(b"REGISTER ")
    assert data[invite_start:].startswith(b"INVITE ")
    assert framer.error is not None
    assert "Content-Length" in framer.error.reason
    with pytest.raises(SipFramingError):
        framer.feed(b"")


def test_baddn_unterminated_header_section_waits() -> None:
    data = (RFC4475 / "baddn.dat").read_bytes()
    framer = StreamFramer()
    assert framer.feed(data) == []
    assert framer.feed(b"\r\n") == [data + b"\r\n"]


def test_rfc5118_short_content_length_frames_at_declared_length() -> None:
    """RFC 5118 §4.9 archive quirk: Content-Length (236) is shorter than the CRLF
    body (245); a stream receiver must cut at 236 and treat the rest as the
    start of the next message."""
    data = (RFC5118_WIRE / "ipv4-mapped-ipv6.dat").read_bytes()
    end = data.index(b"\r\n\r\n") + 4 + 236
    framer = StreamFramer()
    assert framer.feed(data) == [data[:end]]
    assert framer.buffered == len(data) - end
