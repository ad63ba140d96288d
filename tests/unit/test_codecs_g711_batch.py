"""encode_many / decode_many (the media clock's per-tick G.711 batches) give
exactly what the per-frame encoder and decoder give, concealment included."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from trunkline.media.codecs import CodecError
from trunkline.media.codecs.g711 import (
    ALAW_DECODE,
    ALAW_ENCODE,
    PCMA,
    PCMU,
    ULAW_DECODE,
    ULAW_ENCODE,
    G711Decoder,
    G711Encoder,
    decode_many,
    encode_many,
)


def encoders(laws: list[bool]) -> list[G711Encoder]:
    return [G711Encoder(PCMU, ULAW_ENCODE) if mu else G711Encoder(PCMA, ALAW_ENCODE) for mu in laws]


def decoders(laws: list[bool]) -> list[G711Decoder]:
    return [G711Decoder(PCMU, ULAW_DECODE) if mu else G711Decoder(PCMA, ALAW_DECODE) for mu in laws]


frames = st.lists(
    st.tuples(st.booleans(), st.lists(st.integers(-32768, 32767), min_size=1, max_size=200)),
    min_size=1,
    max_size=8,
)


@settings(max_examples=60, deadline=None)
@given(frames)
def test_encode_many_equals_encode(items: list[tuple[bool, list[int]]]) -> None:
    laws = [mu for mu, _ in items]
    pcm = [np.array(v, dtype=np.int16) for _, v in items]
    batch = encode_many(encoders(laws), pcm)
    single = [e.encode(p) for e, p in zip(encoders(laws), pcm, strict=True)]
    assert batch == single


def test_encode_many_coerces_like_encode() -> None:
    floats: Any = np.linspace(-40000.0, 40000.0, 160)
    ints: Any = list(range(-80, 80))
    enc = encoders([True, True])
    assert encode_many(enc, [floats, ints]) == [enc[0].encode(floats), enc[1].encode(ints)]
    with pytest.raises(CodecError):
        encode_many(enc, [np.zeros((2, 80), np.int16), np.zeros(160, np.int16)])
    assert encode_many([], []) == []


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.binary(min_size=1, max_size=200)), max_size=8))
@example([(True, b"\x01\x02"), (True, b"\x03"), (True, b"\x04\x05\x06")])  # sizes sum to 3 x 2
@example([])
def test_decode_many_equals_decode(items: list[tuple[bool, bytes]]) -> None:
    laws = [mu for mu, _ in items]
    payloads = [p for _, p in items]
    batch = decode_many(decoders(laws), payloads)
    single = [d.decode(p) for d, p in zip(decoders(laws), payloads, strict=True)]
    assert len(batch) == len(single)
    for a, b in zip(batch, single, strict=True):
        assert a.dtype == np.int16 and np.array_equal(a, b)


def test_decode_many_keeps_concealment_state() -> None:
    """A loss between two batches is concealed and the recovery cross-faded the same
    way as with per-packet decoding."""
    t = np.arange(160 * 6)
    tone = np.rint(9000 * np.sin(2 * np.pi * 300 * t / 8000)).astype(np.int16)
    payloads = [encoders([True])[0].encode(tone[i * 160 : (i + 1) * 160]) for i in range(6)]
    batched, single = decoders([True]), decoders([True])
    got, want = [], []
    for i, payload in enumerate(payloads):
        if i == 4:  # lost
            got.append(batched[0].conceal(160))
            want.append(single[0].conceal(160))
            continue
        got += decode_many(batched, [payload])
        want.append(single[0].decode(payload))
    assert np.abs(got[4]).max() > 1000  # the loss was concealed with signal, not silence
    for a, b in zip(got, want, strict=True):
        assert np.array_equal(a, b)


def test_decode_many_rejects_an_empty_payload() -> None:
    with pytest.raises(CodecError):
        decode_many(decoders([True, True]), [b"\xff" * 160, b""])
