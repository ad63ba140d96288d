"""A ctypes binding to libopus: the decoder (in-band FEC, native PLC) and the encoder.

Why not PyAV: FFmpeg's ``libopus`` decoder wrapper always calls ``opus_decode`` with
``decode_fec=0``, so the low-bitrate redundancy (LBRR, RFC 6716 §2.1.7 and §4.2.5) that
the sender puts in packet N+1 for packet N can never be used through it. libopus itself
decodes it: ``opus_decode(st, packet_n_plus_1, len, pcm, frame_size_n, decode_fec=1)``
returns packet N's audio rebuilt from that redundancy, or runs its packet loss
concealment when N+1 carries none. ``opus_decode(st, NULL, 0, pcm, frame_size, 0)`` is
the plain PLC.

Which library (:func:`load`): the copy PyAV's wheel bundles for FFmpeg
(``site-packages/av.libs/libopus-<hash>.so*`` on Linux, ``av/.dylibs`` on macOS,
``av.libs`` / ``av`` on Windows) so a fresh ``pip install`` needs nothing else; then the
system's (``ctypes.util.find_library("opus")``, Debian's ``libopus0``). ``load()``
returns ``None`` when neither exists, and :class:`~trunkline.media.codecs.opus.OpusDecoder`
falls back to PyAV and PLC only. ``TRUNKLINE_LIBOPUS`` names a library file to use instead
(empty: use none).

The encoder (:class:`NativeEncoder`) is here for speed: through PyAV every 20 ms frame
costs an ``AudioFrame``, a ``Fraction`` time base and a packet list around the same
``opus_encode`` call, about 40 us of the ~290 us a frame took at FFmpeg's complexity 10
(measured on the development VM, mono 48 kHz, 32 kbit/s, FEC on); the decoder reuses one
ctypes output buffer instead of wrapping a new numpy array per packet. ``opus_encoder_ctl`` is
variadic; ctypes passes its ``int`` argument correctly where variadic and fixed arguments
travel alike (x86-64 and Linux on ARM), not on Apple's arm64 ABI, so :func:`encoder_usable`
says no there and :class:`~trunkline.media.codecs.opus.OpusEncoder` keeps PyAV.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import platform
import sys
import weakref
from pathlib import Path
from typing import Literal

import numpy as np

from trunkline.media.codecs.base import CodecError, Pcm

__all__ = ["LibOpus", "NativeDecoder", "NativeEncoder", "encoder_usable", "load"]

MAX_FRAME_MS = 120  # the longest Opus packet (RFC 6716 §3.2.5)
MAX_PACKET = 4000  # output buffer per opus_encode call (the size libopus recommends)
OPUS_OK = 0
# opus_defines.h
APPLICATION_VOIP = 2048
SET_BITRATE = 4002
SET_COMPLEXITY = 4010
SET_INBAND_FEC = 4012
SET_PACKET_LOSS_PERC = 4014

_c_int16_p = ctypes.POINTER(ctypes.c_int16)


_int_p = ctypes.POINTER(ctypes.c_int)
_Prototypes = dict[str, tuple[type | None, tuple[type, ...] | None]]

#: (restype, argtypes) of the decoder functions (opus.h).
_DECODER: _Prototypes = {
    "opus_get_version_string": (ctypes.c_char_p, ()),
    "opus_strerror": (ctypes.c_char_p, (ctypes.c_int,)),
    "opus_decoder_create": (ctypes.c_void_p, (ctypes.c_int32, ctypes.c_int, _int_p)),
    "opus_decoder_destroy": (None, (ctypes.c_void_p,)),
    "opus_decode": (
        ctypes.c_int,
        (ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32, _c_int16_p, ctypes.c_int, ctypes.c_int),
    ),
    "opus_packet_get_nb_samples": (ctypes.c_int, (ctypes.c_char_p, ctypes.c_int32, ctypes.c_int32)),
}
#: opus_packet_has_lbrr appeared in libopus 1.5; older system copies lack it.
_LBRR: _Prototypes = {"opus_packet_has_lbrr": (ctypes.c_int, (ctypes.c_char_p, ctypes.c_int32))}
#: The encoder functions. In ``opus_encode`` the ``const opus_int16 *pcm`` is passed as the
#: frame's bytes and ``unsigned char *data`` as a ctypes buffer (both ``c_char_p``);
#: ``opus_encoder_ctl`` is variadic: its arguments stay undeclared (None).
_ENCODER: _Prototypes = {
    "opus_encoder_create": (
        ctypes.c_void_p,
        (ctypes.c_int32, ctypes.c_int, ctypes.c_int, _int_p),
    ),
    "opus_encoder_destroy": (None, (ctypes.c_void_p,)),
    "opus_encode": (
        ctypes.c_int32,
        (ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int32),
    ),
    "opus_encoder_ctl": (ctypes.c_int, None),
}


def _declare(lib: ctypes.CDLL, prototypes: _Prototypes) -> bool:
    """Declare ``prototypes`` (name: restype, argtypes) on ``lib``; False if it lacks one."""
    if not all(hasattr(lib, name) for name in prototypes):
        return False
    for name, (restype, argtypes) in prototypes.items():
        function = getattr(lib, name)
        function.restype = restype
        if argtypes is not None:
            function.argtypes = list(argtypes)
    return True


class LibOpus:
    """The functions of one loaded libopus, with their C prototypes declared."""

    def __init__(self, path: str) -> None:
        self.path = path
        lib = ctypes.CDLL(path)
        self._lib = lib
        if not _declare(lib, _DECODER):
            raise AttributeError(f"{path} lacks the Opus decoder API")
        self._has_lbrr = lib.opus_packet_has_lbrr if _declare(lib, _LBRR) else None
        self.version = (lib.opus_get_version_string() or b"").decode("ascii", "replace")
        self.has_encoder = _declare(lib, _ENCODER)

    def new_state(
        self, owner: object, kind: Literal["decoder", "encoder"], *args: int
    ) -> tuple[int, weakref.finalize[..., object]]:
        """``opus_<kind>_create(*args, &error)``, destroyed when ``owner`` is collected.

        Returns the state and the finalizer that frees it (call it to free it sooner).
        """
        error = ctypes.c_int(OPUS_OK)
        state: int | None = getattr(self._lib, f"opus_{kind}_create")(*args, ctypes.byref(error))
        if not state or error.value != OPUS_OK:
            raise CodecError(f"opus_{kind}_create failed: {self.strerror(error.value)}")
        destroy = getattr(self._lib, f"opus_{kind}_destroy")
        return state, weakref.finalize(owner, destroy, state)

    def encoder_ctl(self, state: int, request: int, value: int) -> None:
        """``opus_encoder_ctl(st, request, (opus_int32) value)``; CodecError on failure."""
        code: int = self._lib.opus_encoder_ctl(
            ctypes.c_void_p(state), ctypes.c_int(request), ctypes.c_int32(value)
        )
        if code != OPUS_OK:
            raise CodecError(f"opus_encoder_ctl({request}, {value}): {self.strerror(code)}")

    def strerror(self, code: int) -> str:
        text: bytes | None = self._lib.opus_strerror(code)
        return (text or b"unknown error").decode("ascii", "replace")

    def packet_samples(self, packet: bytes, sample_rate: int) -> int:
        """Samples per channel in ``packet`` at ``sample_rate``; CodecError if malformed."""
        n: int = self._lib.opus_packet_get_nb_samples(packet, len(packet), sample_rate)
        if n < 0:
            raise CodecError(f"Opus: {self.strerror(n)}")
        return n

    def has_lbrr(self, packet: bytes) -> bool | None:
        """Whether ``packet`` carries in-band FEC data; None if this libopus cannot tell."""
        if self._has_lbrr is None:
            return None
        result: int = self._has_lbrr(packet, len(packet))
        return result > 0


def _candidates() -> list[str]:
    override = os.environ.get("TRUNKLINE_LIBOPUS")
    if override is not None:
        return [override] if override else []
    found: list[str] = []
    try:
        import av  # noqa: PLC0415 -- only to locate the libraries its wheel ships

        package = Path(av.__file__).resolve().parent
        for folder in (package.parent / "av.libs", package / ".dylibs", package):
            if folder.is_dir():
                found.extend(str(p) for p in sorted(folder.glob("*opus*")) if _is_library(p))
    except ImportError:  # pragma: no cover -- av is a required dependency
        pass
    system = ctypes.util.find_library("opus")
    if system:
        found.append(system)
    return found


def _is_library(path: Path) -> bool:
    name = path.name
    return name.startswith(("libopus", "opus")) and (
        ".so" in name or name.endswith((".dylib", ".dll"))
    )


@functools.cache
def load() -> LibOpus | None:
    """The first libopus that loads and has the decoder API, or None (see module docs)."""
    for candidate in _candidates():
        try:
            return LibOpus(candidate)
        except (OSError, AttributeError):
            continue
    return None


class NativeDecoder:
    """One libopus decoder state (mono or stereo, int16) at ``sample_rate``.

    Every call on one stream must go through the same state: FEC and PLC extrapolate from
    the audio decoded before them.
    """

    def __init__(self, lib: LibOpus, sample_rate: int, channels: int = 1) -> None:
        self.lib = lib
        self.sample_rate = sample_rate
        self.channels = channels
        self._state, self._finalizer = lib.new_state(self, "decoder", sample_rate, channels)
        self.max_samples = sample_rate * MAX_FRAME_MS // 1000  # per channel
        self._buffer = (ctypes.c_int16 * (self.max_samples * channels))()

    @property
    def granule(self) -> int:
        """PLC and FEC work in multiples of 2.5 ms: this many samples."""
        return self.sample_rate // 400

    def decode(self, payload: bytes) -> Pcm:
        """Decode one packet (all of its frames)."""
        return self._run(payload, self.max_samples, fec=False)

    def decode_fec(self, next_payload: bytes, samples: int) -> Pcm:
        """Rebuild the ``samples`` lost just before ``next_payload`` from its LBRR data.

        libopus runs its PLC instead when ``next_payload`` holds no FEC. ``samples`` must
        be a multiple of :attr:`granule`.
        """
        return self._run(next_payload, samples, fec=True)

    def conceal(self, samples: int) -> Pcm:
        """libopus PLC for ``samples`` (a multiple of :attr:`granule`)."""
        return self._run(None, samples, fec=False)

    def _run(self, payload: bytes | None, samples: int, *, fec: bool) -> Pcm:
        if samples <= 0 or samples > self.max_samples or samples % self.granule:
            raise CodecError(f"Opus: cannot decode {samples} samples (2.5 ms steps up to 120)")
        size = len(payload) if payload is not None else 0
        n: int = self.lib._lib.opus_decode(
            self._state, payload, size, self._buffer, samples, int(fec)
        )
        if n < 0:
            raise CodecError(f"Opus: {self.lib.strerror(n)}")
        # A copy out of the reused ctypes buffer: cheaper per packet than a fresh array
        # and its ``ctypes.data_as`` pointer.
        pcm: Pcm = np.frombuffer(memoryview(self._buffer), dtype=np.int16, count=n * self.channels)
        return pcm.copy()

    def close(self) -> None:
        """Free the libopus state now rather than at garbage collection."""
        self._finalizer()


def encoder_usable(lib: LibOpus | None) -> bool:
    """Whether :class:`NativeEncoder` can run on ``lib`` here (see the module docstring)."""
    if lib is None or not lib.has_encoder:
        return False
    return not (sys.platform == "darwin" and platform.machine() == "arm64")


class NativeEncoder:
    """One libopus encoder state (int16 in) at ``sample_rate``.

    Configured once: ``application`` (VoIP), target ``bitrate``, ``complexity`` (0-10),
    in-band FEC and the packet loss percentage it is tuned for. Each :meth:`encode` call
    takes one frame of 2.5-60 ms and returns one packet.
    """

    def __init__(
        self,
        lib: LibOpus,
        sample_rate: int,
        channels: int = 1,
        *,
        bitrate: int,
        complexity: int,
        fec: bool,
        loss_percent: int,
        application: int = APPLICATION_VOIP,
    ) -> None:
        if not encoder_usable(lib):
            raise CodecError(f"{lib.path} cannot be used to encode here")
        self.lib = lib
        self.sample_rate = sample_rate
        self.channels = channels
        self._state, self._finalizer = lib.new_state(
            self, "encoder", sample_rate, channels, application
        )
        for request, value in (
            (SET_BITRATE, bitrate),
            (SET_COMPLEXITY, complexity),
            (SET_INBAND_FEC, int(fec)),
            (SET_PACKET_LOSS_PERC, loss_percent),
        ):
            lib.encoder_ctl(self._state, request, value)
        self._out = ctypes.create_string_buffer(MAX_PACKET)
        self._encode = lib._lib.opus_encode

    def encode(self, pcm: Pcm) -> bytes:
        """Encode one frame of int16 samples (interleaved when stereo)."""
        samples = len(pcm) // self.channels
        n: int = self._encode(self._state, pcm.tobytes(), samples, self._out, MAX_PACKET)
        if n < 0:
            raise CodecError(f"Opus: {self.lib.strerror(n)}")
        return ctypes.string_at(self._out, n)

    def close(self) -> None:
        """Free the libopus state now rather than at garbage collection."""
        self._finalizer()
