"""Glue between numpy PCM and PyAV (FFmpeg) audio codec contexts, shared by G.722 and Opus."""

from __future__ import annotations

from fractions import Fraction
from typing import Any, Literal

import av
import numpy as np

from trunkline.media.codecs.base import CodecError, Pcm


def open_context(
    codec: str,
    mode: Literal["r", "w"],
    sample_rate: int,
    options: dict[str, str],
    bit_rate: int | None = None,
) -> Any:
    """Open a mono s16 PyAV codec context (``mode`` "w" encodes, "r" decodes)."""
    try:
        ctx: Any = av.CodecContext.create(codec, mode)
        ctx.sample_rate = sample_rate
        ctx.layout = "mono"
        ctx.format = "s16"
        if mode == "w":
            ctx.time_base = Fraction(1, sample_rate)
        if bit_rate is not None:
            ctx.bit_rate = bit_rate
        if options:
            ctx.options = options
        ctx.open()
    except (av.FFmpegError, ValueError) as exc:
        raise CodecError(f"cannot open FFmpeg codec {codec!r}: {exc}") from exc
    return ctx


def encode_frame(ctx: Any, pcm: Pcm, pts: int) -> bytes:
    """Feed one frame to an encoder context; return the bytes of every packet it produced."""
    frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = ctx.sample_rate
    frame.pts = pts
    frame.time_base = Fraction(1, ctx.sample_rate)
    try:
        packets = ctx.encode(frame)
    except (av.FFmpegError, ValueError) as exc:
        raise CodecError(f"{ctx.name} encode failed: {exc}") from exc
    return b"".join(bytes(packet) for packet in packets)


def decode_packet(ctx: Any, payload: bytes) -> Pcm:
    """Decode one packet; return its PCM (empty when the decoder held the output back)."""
    try:
        frames = ctx.decode(av.Packet(payload))
    except (av.FFmpegError, ValueError) as exc:
        raise CodecError(f"{ctx.name} decode failed: {exc}") from exc
    if not frames:
        return np.zeros(0, dtype=np.int16)
    parts = [np.asarray(frame.to_ndarray(), dtype=np.int16).reshape(-1) for frame in frames]
    return parts[0] if len(parts) == 1 else np.concatenate(parts)
