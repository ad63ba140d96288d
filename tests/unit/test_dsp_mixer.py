"""Mixing: int32 accumulation, saturating and soft limiters, N-1 conference mixes."""

from __future__ import annotations

import numpy as np
import pytest

from trunkline.media.codecs import CodecError
from trunkline.media.mixer import mix, mix_minus, soft_limit


def pcm(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int16)


def test_sum_without_overflow_then_saturate() -> None:
    a = pcm(30000, -30000, 100, 5)
    b = pcm(30000, -30000, -50, 5)
    assert mix([a, b]).tolist() == [32767, -32768, 50, 10]


def test_shorter_streams_are_padded_and_empty_input() -> None:
    assert mix([pcm(1, 2, 3), pcm(10)]).tolist() == [11, 2, 3]
    assert len(mix([])) == 0
    assert mix_minus({}) == {}


def test_many_loud_streams_stay_in_range() -> None:
    rng = np.random.default_rng(0)
    streams = [rng.integers(-32768, 32767, 160, dtype=np.int16) for _ in range(64)]
    expected = np.clip(np.sum([s.astype(np.int64) for s in streams], axis=0), -32768, 32767)
    assert np.array_equal(mix(streams), expected)


def test_soft_limiter_is_transparent_below_knee_and_monotonic_above() -> None:
    quiet = [pcm(1000, -2000, 3000), pcm(500, 500, -500)]
    assert mix(quiet, limiter="soft").tolist() == [1500, -1500, 2500]
    ramp = np.arange(0, 200000, 97, dtype=np.int32)
    out = soft_limit(ramp).astype(np.int32)
    assert np.all(np.diff(out) >= 0)
    assert out.max() <= 32767 and out[-1] > 32000
    assert np.array_equal(soft_limit(-ramp), -soft_limit(ramp))
    with pytest.raises(CodecError):
        mix(quiet, limiter="brickwall")


def test_mix_minus_each_hears_the_others() -> None:
    streams = {"alice": pcm(100, 1), "bob": pcm(20, 2), "carol": pcm(3, 4)}
    out = mix_minus(streams)
    assert out["alice"].tolist() == [23, 6]
    assert out["bob"].tolist() == [103, 5]
    assert out["carol"].tolist() == [120, 3]


def test_mix_minus_saturates_per_listener() -> None:
    streams = {1: pcm(30000), 2: pcm(30000), 3: pcm(30000)}
    assert {k: v.tolist() for k, v in mix_minus(streams).items()} == {
        1: [32767],
        2: [32767],
        3: [32767],
    }
    soft = mix_minus(streams, limiter="soft")
    assert 24576 < int(soft[1][0]) < 32767
