"""Mixing audio streams with clipping protection; N-1 mixes for conferences.

Samples are summed in int32 (no overflow for up to 65536 int16 streams) and brought back to
int16 by one of two limiters (registered by name):

* ``"saturate"`` -- clip to [-32768, 32767]: exact for sums that fit, harsh when they do not;
* ``"soft"`` -- linear below a knee at 3/4 of full scale, and a tanh curve above it that
  approaches full scale without reaching it, so loud overlapping talkers compress instead
  of clipping (a memoryless soft-knee limiter; no look-ahead, no added delay).

Conference ("mix-minus", N-1) mixing: each participant hears everyone but themself, computed
as the full sum minus their own contribution, so N outputs cost N subtractions, not N^2
additions.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from trunkline.media.codecs.base import CodecError, Pcm, as_pcm

K = TypeVar("K", bound=Hashable)
Wide = npt.NDArray[np.int32]
Limiter = Callable[[Wide], Pcm]

_KNEE = 24576  # 3/4 of full scale
_HEADROOM = 32767 - _KNEE


def saturate(total: Wide) -> Pcm:
    """Clip an int32 sum to int16."""
    out: Pcm = np.clip(total, -32768, 32767).astype(np.int16)
    return out


def soft_limit(total: Wide) -> Pcm:
    """Identity below the knee; above it ``knee + headroom * tanh(excess / headroom)``."""
    magnitude = np.abs(total).astype(np.float64)
    over = magnitude > _KNEE
    if not np.any(over):
        return total.astype(np.int16)
    shaped = magnitude.copy()
    shaped[over] = _KNEE + _HEADROOM * np.tanh((magnitude[over] - _KNEE) / _HEADROOM)
    out: Pcm = (np.sign(total) * np.floor(shaped)).astype(np.int16)
    return out


LIMITERS: dict[str, Limiter] = {"saturate": saturate, "soft": soft_limit}


def _limiter(name: str) -> Limiter:
    try:
        return LIMITERS[name]
    except KeyError:
        raise CodecError(f"unknown limiter {name!r}; known: {sorted(LIMITERS)}") from None


def _stack(streams: Sequence[Pcm]) -> npt.NDArray[np.int32]:
    """Streams as rows of an int32 matrix; shorter streams are padded with silence."""
    length = max((len(s) for s in streams), default=0)
    matrix = np.zeros((len(streams), length), dtype=np.int32)
    for row, stream in enumerate(streams):
        pcm = as_pcm(stream)
        matrix[row, : len(pcm)] = pcm
    return matrix


def mix(streams: Sequence[Pcm], limiter: str = "saturate") -> Pcm:
    """Sum ``streams`` (mono int16, same rate) into one int16 stream."""
    if not streams:
        return np.zeros(0, dtype=np.int16)
    total: Wide = _stack(streams).sum(axis=0, dtype=np.int32)
    return _limiter(limiter)(total)


def mix_minus(streams: Mapping[K, Pcm], limiter: str = "saturate") -> dict[K, Pcm]:
    """For each participant, the mix of all the *other* participants (N-1 conference mix)."""
    if not streams:
        return {}
    keys = list(streams)
    matrix = _stack([streams[k] for k in keys])
    total = matrix.sum(axis=0, dtype=np.int32)
    limit = _limiter(limiter)
    return {key: limit(total - matrix[row]) for row, key in enumerate(keys)}
