"""A media session: one negotiated audio stream on a pair of UDP sockets.

:class:`MediaSession` binds what offer/answer agreed
(:class:`trunkline.sip.offeranswer.NegotiatedAudio`) to an
:class:`~trunkline.media.transport.RtpTransport`, a codec from the registry
(:mod:`trunkline.media.codecs`), the adaptive jitter buffer, SRTP when SDES
keys were exchanged (RFC 4568, :mod:`trunkline.media.srtp`) and DTMF as
RFC 4733 telephone-events.

The shared :class:`~trunkline.media.clock.MediaClock` of the event loop
drives the sans-IO parts in :mod:`trunkline.rtp`: every packet time
(deadlines ``start + n * ptime``) it asks each session for one frame from
its *source*, encodes it (G.711 for all sessions at once) and has the
session number and send it, then pulls one frame out of each jitter buffer,
decodes it and hands it to the *sinks*. RTCP SR/RR + SDES go out every
~5 s, randomized by 0.5-1.5 (RFC 3550 §6.3.1).

Symmetric RTP (RFC 4961): we send from the port we receive on, and latch the
peer's address onto the source address of its first valid packets (NATs
rewrite it); afterwards packets from other addresses are dropped unless the
latched peer fell silent. Once the latched peer has kept sending for
``_CONNECT_AFTER`` seconds, the RTP socket is connected to it
(:meth:`~trunkline.media.transport.RtpTransport.connect_rtp`: cheaper sends, and
the kernel drops the other sources, which are then not counted as foreign); it
is disconnected when the peer has been silent for ``_RELATCH_AFTER`` seconds,
so another source can take over, and on a re-negotiation that changes the
remote address. Hold and re-negotiation call :meth:`apply` again
with the new result: the sockets, SSRC, sequence numbers and (for an
unchanged codec) the codec state survive.

Sources (:mod:`trunkline.media.sources`) are objects with ``read(samples)
-> Pcm | None`` (``None`` sends nothing: silence, the timestamp still
advances); sinks (:mod:`trunkline.media.sinks`) are callables taking
``Pcm``. Audio is mono int16 at the codec's ``sample_rate``.

Opus in-band FEC (RFC 6716 §2.1.7, RFC 7587 §3.3): when the jitter buffer
finds packet N missing at playout time and N+1 already buffered, and N+1
carries LBRR data, N is rebuilt from it (``Decoder.decode_fec``) instead of
concealed, and counted as ``recovered`` in the jitter-buffer statistics;
N+1 still plays normally in its own slot. ``fec=False`` turns this off.

The receive path runs once per datagram and does the minimum: RFC 5761
demultiplexing on the second octet, SRTP when negotiated, the fixed-header
fast path of :meth:`RtpPacket.parse`, latching, RFC 3550 A.1/A.8
statistics and the jitter buffer; nothing is logged on it.

Nearly every packet takes a fused path instead (:meth:`MediaSession._on_rtp`):
when the previous packet left the session in its steady state (latched source,
no SRTP, receiving, statistics past probation and in order, the jitter buffer
expecting the same next number), the session *arms* the exact first four
octets it expects next (version 2, no padding, extension or CSRC, no marker,
the same payload type, the next sequence number), the SSRC and the source
address. A datagram matching all three is accounted with one
``struct.unpack_from``, no :class:`RtpPacket`: the in-order case of
:meth:`ReceptionStats.receive` inline (RFC 3550 A.1 and the A.8 jitter, the
same arithmetic) and :meth:`JitterBuffer.put_next` with plain values.
Everything else (marker bit, reordering, loss, wrap-around, SSRC change, RTCP,
DTMF, a new source address) takes the general path, which re-arms.
"""

from __future__ import annotations

import asyncio
import logging
import random
import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from trunkline.media import codecs
from trunkline.media.clock import MediaClock
from trunkline.media.codecs import CodecError, CodecInfo, Decoder, Encoder, Pcm, libopus
from trunkline.media.codecs.g711 import ULAW_DECODE, ULAW_ENCODE, G711Decoder, G711Encoder
from trunkline.media.codecs.plc import WaveformPlc
from trunkline.media.codecs.telephone_event import (
    DigitReceived,
    TelephoneEventReceiver,
    encode_event,
)
from trunkline.media.sinks import AudioSink, WavRecorder
from trunkline.media.sources import AudioSource, PcmSource, QueueSource, ToneSource
from trunkline.media.srtp import SrtpContext, SrtpError
from trunkline.media.transport import Address, RtpTransport
from trunkline.rtp.emodel import score_call
from trunkline.rtp.jitterbuffer import Concealment, Entry, JitterBuffer, JitterStats
from trunkline.rtp.pacing import PacingSchedule, RtpSender
from trunkline.rtp.packet import RtpPacket, RtpParseError
from trunkline.rtp.rtcp import (
    Bye,
    ReceiverReport,
    RtcpPacket,
    SenderReport,
    SourceDescription,
    build_compound,
    parse_compound,
)
from trunkline.rtp.stats import ReceptionStats, SourceTable, arrival_middle, round_trip_time
from trunkline.sip.offeranswer import NegotiatedAudio

__all__ = [
    "AudioSink",
    "AudioSource",
    "MediaSession",
    "MediaStats",
    "PcmSource",
    "QueueSource",
    "ToneSource",
    "WavRecorder",
]

log = logging.getLogger(__name__)

_parse_rtp = RtpPacket.parse  # bound once: the receive path calls it per datagram
#: The fused receive path: the first two octets as one number, sequence, timestamp, SSRC.
_unpack_fixed = struct.Struct("!HHII").unpack_from
_struct_error = struct.error
_NOT_ARMED = -1  # _rx_seq when the fused receive path is off (no sequence equals it)
#: RFC 5761 §4: RTCP packet types 192-223 in the second octet (as 1-byte slices).
_RTCP_SECOND_OCTETS = frozenset(bytes((t,)) for t in range(192, 224))

RTCP_INTERVAL = 5.0
_RELATCH_AFTER = 2.0  # seconds of silence from the latched peer before another may take over
_MOVED_SEQ_WINDOW = 16  # see MediaSession._stream_moved
_CONNECT_AFTER = 1.0  # seconds a latched peer keeps sending before the socket is connected
_LINK_CHECK = 0.1  # how often the playout tick looks at that (seconds)


@dataclass(slots=True, frozen=True)
class MediaStats:
    """Live statistics of one session (receive side unless named remote_*)."""

    packets_sent: int
    octets_sent: int
    packets_received: int
    packets_expected: int
    packets_lost: int
    fraction_lost: float
    jitter: float  # seconds, RFC 3550
    rtt: float | None  # seconds, from RTCP LSR/DLSR
    remote_fraction_lost: float | None  # what the peer reports about our stream
    remote_jitter: float | None
    jitter_buffer: JitterStats | None
    invalid: int  # RTP unparseable or failing SRTP authentication
    rtcp_invalid: int  # the same for RTCP (e.g. a peer's unprotected keep-alive)
    rtcp_received: int  # valid RTCP compounds from the peer
    reports_received: int  # report blocks about our stream (the source of rtt)
    foreign: int  # from an address we did not latch onto (until the socket is connected)
    ssrc_changes: int
    ticks_skipped: int  # packet times the pacing skipped because the loop stalled
    r_factor: float
    mos: float
    remote_address: Address | None


def carries_fec(payload: bytes) -> bool:
    """Whether an Opus payload holds LBRR data for the packet before it (RFC 6716 §2.1.7).

    Only Opus decoders with libopus say ``supports_fec``. libopus 1.5 and later tell
    (``opus_packet_has_lbrr``); an older copy cannot, and then FEC decoding is simply
    tried (libopus conceals by itself when there is nothing to rebuild from).
    """
    lib = libopus.load()
    return lib is not None and lib.has_lbrr(payload) is not False


class MediaSession:
    """One audio stream; see the module docstring."""

    # Slots: with ~70 attributes an instance dict would outgrow CPython's shared keys
    # (30), and every attribute access on the per-packet path would become a dict
    # lookup instead of a fixed offset (about 8 % of the machine instructions per
    # packet, bench/media_path.py --instructions). __weakref__ keeps weak references
    # (callbacks held by others) possible.
    __slots__ = (
        "__weakref__",
        "_build",
        "_chores_at",
        "_clock",
        "_conflicts",
        "_decoders",
        "_dtmf_queue",
        "_dtmf_rx",
        "_frame_samples",
        "_frame_ts",
        "_last_decoder",
        "_last_rx",
        "_latched",
        "_latched_at",
        "_link_check",
        "_loop",
        "_next_rtcp",
        "_packets_at_last_report",
        "_play_plc",
        "_play_pt",
        "_ptime",
        "_receive_pts",
        "_receiving",
        "_remote_rtcp",
        "_remote_rtp",
        "_rx_addr",
        "_rx_head",
        "_rx_infos",
        "_rx_pt",
        "_rx_put",
        "_rx_seq",
        "_rx_ssrc",
        "_rx_stats",
        "_schedule",
        "_send_fast",
        "_sending",
        "_skipped0",
        "_source",
        "_srtp_keys",
        "_te_clock",
        "_te_pt",
        "_te_rx_pts",
        "_tick0",
        "audio",
        "closed",
        "cname",
        "decoder",
        "encoder",
        "fec",
        "foreign",
        "info",
        "invalid",
        "jitter",
        "jitter_options",
        "latch",
        "looped",
        "on_bye",
        "on_dtmf",
        "play_table",
        "remote_fraction_lost",
        "remote_jitter",
        "reports_received",
        "rtcp_interval",
        "rtcp_invalid",
        "rtcp_received",
        "rtt",
        "send_table",
        "sender",
        "sinks",
        "sources",
        "srtp",
        "transport",
        "unknown_payload",
    )

    def __init__(
        self,
        transport: RtpTransport,
        *,
        cname: str | None = None,
        rtcp_interval: float = RTCP_INTERVAL,
        latch: bool = True,
        jitter_options: dict[str, Any] | None = None,
        fec: bool = True,
    ) -> None:
        self.transport = transport
        self.cname = cname or f"trunkline@{transport.local_rtp[0]}"
        self.rtcp_interval = rtcp_interval
        self.latch = latch
        self.fec = fec
        self.jitter_options = jitter_options or {}
        self._source: AudioSource | None = None
        self.sinks: list[AudioSink] = []
        self.on_dtmf: Callable[[DigitReceived], None] | None = None
        self.on_bye: Callable[[int], None] | None = None
        self.audio: NegotiatedAudio | None = None
        self.info: CodecInfo | None = None
        self.encoder: Encoder | None = None
        self.decoder: Decoder | None = None
        self.sender: RtpSender | None = None
        self.jitter: JitterBuffer | None = None
        self.sources: SourceTable | None = None
        self.srtp: SrtpContext | None = None
        self._srtp_keys: tuple[bytes, bytes] | None = None
        self._schedule: PacingSchedule | None = None  # our ticks on the shared clock
        self._clock: MediaClock | None = None
        self._tick0 = 0  # the clock's tick index of our tick 0
        self._skipped0 = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._remote_rtp: Address | None = None
        self._remote_rtcp: Address | None = None
        self._latched = False
        self._latched_at = 0.0
        self._link_check = 0.0  # when _check_link looks at the RTP socket's connection next
        self._last_rx = 0.0
        self._receive_pts: frozenset[int] = frozenset()
        self._rx_infos: dict[int, CodecInfo] = {}
        self._decoders: dict[int, Decoder] = {}
        self._last_decoder: Decoder | None = None
        self._sending = False
        self._receiving = False
        self._frame_ts = 160
        self._frame_samples = 160
        self._ptime = 0.02
        self._dtmf_queue: deque[tuple[int, bytes, bool, int]] = deque()
        self._dtmf_rx: TelephoneEventReceiver | None = None
        self._te_pt: int | None = None
        self._te_rx_pts: frozenset[int] = frozenset()
        self._te_clock = 8000
        self._next_rtcp = 0.0
        self._packets_at_last_report = 0
        self._conflicts: set[Address] = set()
        self._rx_ssrc: int | None = None
        # The fused receive path (see the module docstring and _arm): the first word,
        # SSRC and source address it accepts, and what it updates.
        self._rx_seq = _NOT_ARMED
        self._rx_head = 0  # the first two octets it accepts: V=2, no P/X/CC/M, the type
        self._rx_addr: Any = None
        self._rx_stats: ReceptionStats | None = None
        self._rx_pt = 0
        self._rx_put: Callable[[int, bytes, int, float, float], None] | None = None
        # The send side as the clock uses it (see _update_send_path): whether the
        # clock may batch our frames, with which G.711 table, and the sender's build.
        self._send_fast = False
        self.send_table = ULAW_ENCODE
        self._build: Callable[[int, bytes], bytes] | None = None
        # The playout side: the payload type whose frames the clock decodes in its
        # batch (-1: none yet), its G.711 table and the decoder's history update.
        self._play_pt = -1
        self.play_table = ULAW_DECODE
        self._play_plc: WaveformPlc | None = None
        self._chores_at = 0.0  # next playout slot with RTCP, link or DTMF timer work
        self.rtt: float | None = None
        self.remote_fraction_lost: float | None = None
        self.remote_jitter: float | None = None
        self.invalid = 0
        self.rtcp_invalid = 0
        self.rtcp_received = 0
        self.reports_received = 0
        self.foreign = 0
        self.unknown_payload = 0
        self.looped = 0
        self.closed = False
        transport.set_handlers(self._on_rtp, self._on_rtcp)

    @classmethod
    async def open(cls, host: str = "127.0.0.1", port: int = 0, **kwargs: Any) -> MediaSession:
        """Bind a fresh RTP/RTCP port pair on ``host`` and wrap it."""
        return cls(await RtpTransport.open(host, port), **kwargs)

    @property
    def source(self) -> AudioSource | None:
        """Where the audio we send comes from (``None``: send nothing)."""
        return self._source

    @source.setter
    def source(self, source: AudioSource | None) -> None:
        self._source = source
        self._update_send_path()

    def _update_send_path(self) -> None:
        """Whether the clock may take our frames for its G.711 batch (steady sending:
        a source, a G.711 encoder, no RFC 4733 event queued)."""
        encoder = self.encoder
        sender = self.sender
        if isinstance(encoder, G711Encoder):
            self.send_table = encoder.table
        self._build = sender.build if sender is not None else None
        self._send_fast = (
            self._sending
            and not self._dtmf_queue
            and self._source is not None
            and isinstance(encoder, G711Encoder)
            and sender is not None
            and self._remote_rtp is not None
        )

    @property
    def local_address(self) -> Address:
        """Where the peer must send RTP (for our SDP ``c=``/``m=``)."""
        return self.transport.local_rtp

    @property
    def sample_rate(self) -> int:
        return self.info.sample_rate if self.info else 8000

    @property
    def frame_samples(self) -> int:
        """PCM samples per packet at ``sample_rate``."""
        return self._frame_samples

    @property
    def remote_address(self) -> Address | None:
        return self._remote_rtp

    # -- negotiation -------------------------------------------------------
    def apply(self, audio: NegotiatedAudio) -> None:
        """Use a (new) offer/answer result; safe to call again on re-INVITE."""
        self._rx_seq = _NOT_ARMED
        info = codecs.get(audio.codec.name, audio.codec.clock_rate)
        if not info.is_audio:
            raise CodecError(f"{info.rtpmap()} is not an audio codec")
        ptime = audio.ptime or info.ptime_ms
        same_clock = (
            self.info is not None
            and self.info.clock_rate == info.clock_rate
            and self._ptime == ptime / 1000
        )
        if self.info is None or self.info.key != info.key:
            assert info.make_encoder is not None and info.make_decoder is not None
            self.encoder = info.make_encoder()
            self.decoder = info.make_decoder()
            self._last_decoder = None
        self.info = info
        self._ptime = ptime / 1000
        self._frame_ts = info.timestamp_increment(ptime)
        self._frame_samples = info.samples_per_frame(ptime)
        if self.sender is None:
            self.sender = RtpSender(audio.payload_type, self._frame_ts)
        elif not same_clock:
            # New clock: keep SSRC and sequence, restart the timestamp base.
            old = self.sender
            self.sender = RtpSender(
                audio.payload_type, self._frame_ts, ssrc=old.ssrc, initial_sequence=old.sequence
            )
        self.sender.payload_type = audio.payload_type
        if self.jitter is None or not same_clock:
            self.jitter = JitterBuffer(info.clock_rate, self._ptime, **self.jitter_options)
        if self.sources is None or not same_clock:
            self.sources = SourceTable(info.clock_rate, self.sender.ssrc)
        self._set_receive_codecs(audio, info)
        self._te_pt = audio.telephone_event_pt
        te_rx = {pt: c for pt, c in audio.receive_payload_types.items() if c.is_telephone_event}
        self._te_rx_pts = frozenset(te_rx)
        if te_rx and self._dtmf_rx is None:
            self._dtmf_rx = TelephoneEventReceiver(next(iter(te_rx.values())).clock_rate)
        te_tx = next((c for c in audio.codecs if c.is_telephone_event), None)
        self._te_clock = te_tx.clock_rate if te_tx else info.clock_rate
        self.transport.rtcp_mux = audio.rtcp_mux
        remote: Address | None = (audio.remote_address, audio.remote_port)
        if audio.remote_address in ("0.0.0.0", "::") or audio.remote_port == 0:
            remote = None
        if remote != (self.audio and (self.audio.remote_address, self.audio.remote_port)):
            self._remote_rtp = remote
            self._latched = False
            self.transport.disconnect_rtp()  # latch afresh, from any source
            self._link_check = self._chores_at = 0.0  # and look at the link again soon
            if remote is None:
                self._remote_rtcp = None
            elif audio.rtcp_mux:
                self._remote_rtcp = remote
            else:
                self._remote_rtcp = (audio.rtcp_address, audio.rtcp_port)
        self._sending = audio.direction.sends and not audio.held_by_remote and remote is not None
        self._receiving = audio.direction.receives
        self._apply_srtp(audio)
        self.audio = audio
        self._update_send_path()
        if self._clock is not None and self._clock.ptime != self._ptime:
            self._join_clock()

    def _set_receive_codecs(self, audio: NegotiatedAudio, info: CodecInfo) -> None:
        """Decoders for every negotiated audio payload type the peer may send.

        RFC 3264 §5.1 lets a sender switch among the negotiated codecs without
        a new offer; those with our clock and sample rate share the jitter
        buffer (PCMU <-> PCMA, say), each with its own decoder state.
        """
        wanted: dict[int, CodecInfo] = {audio.payload_type: info}
        for pt, codec in audio.receive_payload_types.items():
            try:
                other = codecs.get(codec.name, codec.clock_rate)
            except CodecError:
                continue
            if (
                other.is_audio
                and other.clock_rate == info.clock_rate
                and other.sample_rate == info.sample_rate
            ):
                wanted[pt] = other
        decoders: dict[int, Decoder] = {}
        for pt, other in wanted.items():
            old = self._rx_infos.get(pt)
            current = self._decoders.get(pt)
            if current is not None and old is not None and old.key == other.key:
                decoders[pt] = current
            elif other.key == info.key and self.decoder is not None:
                decoders[pt] = self.decoder
            else:
                assert other.make_decoder is not None
                decoders[pt] = other.make_decoder()
        self._rx_infos = wanted
        self._decoders = decoders
        self._play_pt = -1  # the next frame picks its decoder again
        self._receive_pts = frozenset(wanted)

    def _apply_srtp(self, audio: NegotiatedAudio) -> None:
        if audio.local_crypto is None or audio.remote_crypto is None:
            self.srtp = None
            self._srtp_keys = None
            return
        keys = (audio.local_crypto.keys[0].key_bytes, audio.remote_crypto.keys[0].key_bytes)
        if keys != self._srtp_keys:
            self.srtp = SrtpContext(audio.local_crypto.suite, *keys)
            self._srtp_keys = keys

    # -- running -------------------------------------------------------------
    def start(self) -> None:
        """Start sending and playing out (needs :meth:`apply` first)."""
        if self.info is None:
            raise RuntimeError("MediaSession.start() before apply()")
        if self._clock is not None or self.closed:
            return
        self._loop = asyncio.get_running_loop()
        self._join_clock()
        self._next_rtcp = self._loop.time() + self.rtcp_interval * random.uniform(0.5, 1.5)

    def _join_clock(self) -> None:
        """Join the loop's clock for our ptime (again, after a ptime change)."""
        if self._loop is None:
            return
        if self._clock is not None:
            self._clock.leave(self)
        clock = MediaClock.shared(self._loop, self._ptime)
        self._tick0, start = clock.join(self)
        self._skipped0 = clock.skipped
        self._clock = clock
        self._schedule = PacingSchedule(start, self._ptime)
        if self.sender is not None:
            self.sender.restart_ticks()

    # -- the clock's callbacks (trunkline.media.clock.ClockedStream) ----------
    def _current_tick(self) -> int:
        """Our next tick: the shared clock's, counted from our tick 0 (no per-tick update)."""
        clock = self._clock
        if clock is not None and clock.schedule is not None:
            return clock.schedule.tick - self._tick0
        return self._schedule.tick if self._schedule is not None else 0

    def frame_to_send(self, tick: int) -> Pcm | None:
        if self._send_fast:
            return self._source.read(self._frame_samples)  # type: ignore[union-attr]
        self._send_other(tick)
        return None

    def _send_other(self, tick: int) -> None:
        """Not the clock's G.711 batch: an RFC 4733 event, another codec, or nothing."""
        if not self._sending:
            return
        if self._dtmf_queue:
            self._send_dtmf_packet(tick - self._tick0)
            return  # audio is muted while an event is being sent (RFC 4733 §2.5.1.2)
        source = self._source
        encoder = self.encoder
        if source is None or encoder is None or self.sender is None or self._remote_rtp is None:
            return
        pcm = source.read(self._frame_samples)
        if pcm is None:
            return
        self.send_frame(tick, encoder.encode(pcm))  # the encoder coerces other arrays

    def send_frame(self, tick: int, payload: bytes) -> None:
        data = self._build(tick - self._tick0, payload)  # type: ignore[misc]
        if self.srtp is not None:
            data = self.srtp.protect(data)
        transport = self.transport
        send = transport.send_rtp_connected
        try:
            if send is not None:
                send(data)  # the connected socket's send (latched peer)
            else:
                transport.send_rtp_fast(data, self._remote_rtp)  # type: ignore[arg-type]
        except OSError as exc:
            transport.send_rtp_failed(data, self._remote_rtp, exc)  # type: ignore[arg-type]

    def frame_to_play(self, now: float) -> bytes | None:
        if now >= self._chores_at:
            self._chores(now)
        out = self.jitter.pop(now)  # type: ignore[union-attr]  # on the clock: applied
        if out.__class__ is tuple:
            payload_type, payload, _, _ = out
            if payload_type == self._play_pt and payload and self.sinks:
                return payload  # type: ignore[no-any-return]  # for the clock's batch
        if out is not None:
            self._play_other(out)
        return None

    def _chores(self, now: float) -> None:
        """RTCP reports, the socket's connection and the DTMF timeout, when due."""
        if now >= self._next_rtcp:
            self._next_rtcp = now + self.rtcp_interval * random.uniform(0.5, 1.5)
            self._send_report(now)
        if now >= self._link_check:
            self._check_link(now)
        due = min(self._next_rtcp, self._link_check)
        dtmf_rx = self._dtmf_rx
        if dtmf_rx is not None and dtmf_rx.get_timer() is not None:
            for digit in dtmf_rx.handle_timer(now):
                self._digit(digit)
            if dtmf_rx.get_timer() is not None:
                due = now  # look again at the next playout slot
        self._chores_at = due

    def _play_other(self, out: Entry | Concealment) -> None:
        """Play what the clock's batch does not: concealment, a frame of another
        payload type than the last (which picks its decoder), another codec."""
        if not self.sinks:
            return
        decoder = self._last_decoder or self.decoder
        if decoder is None:
            return
        if isinstance(out, tuple):
            payload_type, payload, _, _ = out
            decoder = self._decoders.get(payload_type, decoder)
            self._last_decoder = decoder
            if isinstance(decoder, G711Decoder):
                self._play_pt = payload_type
                self.play_table = decoder.table
                self._play_plc = decoder.plc
            else:
                self._play_pt = -1
            try:
                pcm = decoder.decode(payload)
            except CodecError:
                self.conceal(decoder)
            else:
                self.play(pcm)
            return
        following = out.following
        if (
            following is not None
            and self.fec
            and decoder.supports_fec
            and self._decoders.get(following.payload_type) is decoder
            and carries_fec(following.payload)
        ):
            self.play(decoder.decode_fec(following.payload, self._frame_samples))
            self.jitter.note_recovered()  # type: ignore[union-attr]
            return
        self.conceal(decoder)

    def play_decoded(self, pcm: Pcm) -> None:
        """A frame the clock decoded in its batch: concealment history, then the sinks."""
        plc: WaveformPlc = self._play_plc  # type: ignore[assignment]
        if len(pcm) == plc.steady_frame:
            # WaveformPlc.update's hot path: keep it as history. ``keep`` is an instance
            # attribute (a deque's append): loaded as one, since a method-style call on
            # an instance attribute is never specialized by CPython 3.11.
            keep = plc.keep
            keep(pcm)
        else:
            pcm = plc.update(pcm)
        for sink in self.sinks:
            sink(pcm)

    def play(self, pcm: Pcm) -> None:
        for sink in self.sinks:
            sink(pcm)

    def conceal(self, decoder: Decoder) -> None:
        self.play(decoder.conceal(self._frame_samples))

    def clock_failed(self, exc: Exception) -> None:
        if self._schedule is not None:
            self._schedule.tick = self._current_tick()
        self._clock = None

    def _send_dtmf_packet(self, tick: int) -> None:
        sender = self.sender
        due, payload, marker, start_tick = self._dtmf_queue[0]
        if sender is None or due > tick:
            return
        self._dtmf_queue.popleft()
        if not self._dtmf_queue:
            self._update_send_path()  # audio again, through the clock's batch
        packet = sender.packet(
            tick,
            payload,
            payload_type=self._te_pt,
            timestamp=sender.timestamp_of(start_tick),
            marker=marker,
        )
        data = bytes(packet)
        if self.srtp is not None:
            data = self.srtp.protect(data)
        if self._remote_rtp is not None:
            self.transport.send_rtp(data, self._remote_rtp)

    def send_dtmf(self, digit: str, duration_ms: int = 100) -> None:
        """Queue an RFC 4733 event; it starts at the next packet time."""
        if self._te_pt is None or self._schedule is None:
            raise CodecError("telephone-event was not negotiated (or the session is not started)")
        start = self._current_tick()
        if self._dtmf_queue:
            start = max(start, self._dtmf_queue[-1][0] + 3)
        ptime_ms = round(self._ptime * 1000)
        for p in encode_event(
            digit, duration_ms=duration_ms, ptime_ms=ptime_ms, clock_rate=self._te_clock
        ):
            self._dtmf_queue.append(
                (start + p.send_offset_ms // ptime_ms, p.payload, p.marker, start)
            )
        self._update_send_path()

    def _digit(self, digit: DigitReceived) -> None:
        if self.on_dtmf is not None:
            self.on_dtmf(digit)

    # -- receiving -----------------------------------------------------------
    def _on_rtp(self, data: bytes, addr: Any) -> None:
        """Every datagram on the RTP port: the fused path, else :meth:`_receive`."""
        try:
            head, seq, timestamp, ssrc = _unpack_fixed(data)
        except _struct_error:
            seq = _NOT_ARMED
        if (
            seq == self._rx_seq
            and head == self._rx_head
            and ssrc == self._rx_ssrc
            and addr == self._rx_addr
        ):
            now = self._loop.time()  # type: ignore[union-attr]  # armed: not None
            self._rx_seq = seq + 1  # 65536 after 65535: the wrap-around takes _receive
            self._last_rx = now
            # ReceptionStats.receive, in-order case (RFC 3550 A.1 udelta 1, A.8).
            stats: ReceptionStats = self._rx_stats  # type: ignore[assignment]
            stats.max_seq = seq
            stats.seen_top += 1
            stats.received += 1
            transit = int(now * stats.clock_rate) - timestamp
            d = (transit - stats.last_transit) & 0xFFFFFFFF
            if d >= 0x80000000:
                d = 0x100000000 - d
            jitter = stats.jitter = stats.jitter + (d - stats.jitter) / 16.0
            stats.last_transit = transit
            self._rx_put(self._rx_pt, data[12:], timestamp, now, jitter)  # type: ignore[misc]
            return
        self._receive(data, addr)

    def _arm(self, addr: Any, packet: RtpPacket, stats: ReceptionStats) -> None:
        """Arm the fused receive path for the packet after ``packet`` (just accounted
        by the general path) if the session is in its steady state."""
        jitter = self.jitter
        sources = self.sources
        seq = packet.sequence_number
        if (
            self.srtp is None
            and self._receiving
            and self._latched
            and self._loop is not None
            and jitter is not None
            and sources is not None
            and sources.current is stats
            and stats.ssrc == self._rx_ssrc != sources.local_ssrc
            and not stats.probation
            and stats.max_seq == seq
            and stats.seen_top == stats.cycles + seq
            and stats.last_transit is not None
            and jitter.next_sequence() == seq + 1
        ):
            self._rx_seq = seq + 1
            self._rx_head = 0x8000 | packet.payload_type
            self._rx_addr = addr
            self._rx_stats = stats
            self._rx_pt = packet.payload_type
            self._rx_put = jitter.put_next
        else:
            self._rx_seq = _NOT_ARMED

    def _receive(self, data: bytes, addr: Any) -> None:
        """The general receive path (RTCP, SRTP, anything unusual)."""
        self._rx_seq = _NOT_ARMED
        if data[1:2] in _RTCP_SECOND_OCTETS:  # RFC 5761 §4 demux (half the bytecode of
            # a length check and a chained comparison; shorter data fails RTP parsing)
            self._on_rtcp(data, addr)
            return
        loop = self._loop
        jitter = self.jitter
        sources = self.sources
        if loop is None or jitter is None or sources is None:
            return
        if self.srtp is not None:
            try:
                data = self.srtp.unprotect(data)
            except SrtpError:
                self.invalid += 1
                return
        try:
            packet = _parse_rtp(data)
        except RtpParseError:
            self.invalid += 1
            return
        now = loop.time()
        source: Address | None = addr  # (host, port); IPv6 adds flowinfo and scope id
        if source != self._remote_rtp or not self._latched:
            source = self._check_source(addr, now, packet)
            if source is None:
                return
        self._last_rx = now
        pt = packet.payload_type
        if pt in self._receive_pts:
            ssrc = packet.ssrc
            stats = sources.current
            if (
                stats is not None
                and ssrc == self._rx_ssrc
                and stats.ssrc == ssrc
                and ssrc != sources.local_ssrc
            ):
                stats.receive(packet, now)  # SourceTable.receive's own fast path, inlined
            else:
                stats = sources.receive(packet, now)
                if stats is None:
                    self._collision(addr[:2])
                    return
                if ssrc != self._rx_ssrc:
                    if self._rx_ssrc is not None:
                        # A new stream (peer restarted, or a B2BUA switched legs):
                        # its numbering has nothing to do with the old one.
                        jitter = self.jitter = JitterBuffer(
                            jitter.clock_rate, self._ptime, **self.jitter_options
                        )
                    self._rx_ssrc = ssrc
            if self._receiving:
                # The statistics keep the RFC 3550 jitter already: share it.
                jitter.put(packet, now, stats.jitter)
                if type(data) is bytes:
                    self._arm(addr, packet, stats)
        elif pt in self._te_rx_pts and self._dtmf_rx is not None:
            # RFC 4733 §2.1: events share the audio's SSRC and sequence space, so they count
            # as received (sequence only: their timestamp is the event start, not for jitter).
            current = sources.current
            if current is not None and current.ssrc == packet.ssrc:
                current.update_seq(packet.sequence_number)
            for digit in self._dtmf_rx.feed(packet.payload, packet.timestamp, now):
                self._digit(digit)
            self._chores_at = 0.0  # the playout slots watch the event's timeout
        else:
            self.unknown_payload += 1

    def _check_source(self, addr: Any, now: float, packet: RtpPacket) -> Address | None:
        """Symmetric RTP latching (RFC 4961): the address to answer, or None to drop."""
        source: Address = (addr[0], addr[1])
        if source != self._remote_rtp:
            if not self.latch or (
                self._latched
                and now - self._last_rx < _RELATCH_AFTER
                and not self._stream_moved(packet, now)
            ):
                self.foreign += 1
                return None
            log.info("RTP latched onto %s:%d (SDP said %s)", *source, self._remote_rtp)
            self._remote_rtp = source
            self._latched_at = now
            if self.transport.rtcp_mux:
                self._remote_rtcp = source
        if not self._latched:
            self._latched = True
            self._latched_at = now
        return source

    def _stream_moved(self, packet: RtpPacket, now: float) -> bool:
        """Whether a packet from another address continues the stream we latched onto,
        whose address has gone quiet, so that we should follow it at once.

        Both ends latch at the same moment when each sees the other's first packets
        through a different relay (two TURN-like relays, one in front of each phone,
        as in ``tests/interop/test_phone_impairment.py``): each then answers into a
        path the other no longer listens on, and without this both would wait
        ``_RELATCH_AFTER`` in silence. Only one end may follow, or they would swap
        paths together forever: the end whose SSRC is the lower one. The packet must
        carry the SSRC we receive and a sequence number just after the last one, and
        the latched address must have been silent for two packet times.
        """
        stats = self.sources.current if self.sources is not None else None
        sender = self.sender
        return (
            stats is not None
            and sender is not None
            and packet.ssrc == stats.ssrc
            and sender.ssrc < packet.ssrc
            and now - self._last_rx > 2 * self._ptime
            and 0 < (packet.sequence_number - stats.max_seq) & 0xFFFF <= _MOVED_SEQ_WINDOW
        )

    def _check_link(self, now: float) -> None:
        """Every ``_LINK_CHECK`` seconds: connect the RTP socket to a peer that has kept
        sending from the latched address for ``_CONNECT_AFTER`` seconds, or reopen it
        when that peer has been silent for ``_RELATCH_AFTER`` (see the module docstring).
        While connected, the next look is when that silence could be reached at the
        earliest (a playout slot after it), not every ``_LINK_CHECK``.

        Connecting only a steady peer leaves the start of a call, while latching may
        still move (:meth:`_stream_moved`), as it is without connecting: a connected
        socket would hide the packets that move it.
        """
        self._link_check = now + _LINK_CHECK
        transport = self.transport
        if transport.connected is not None:
            silent_at = self._last_rx + _RELATCH_AFTER
            if now <= silent_at:
                self._link_check = max(self._link_check, silent_at)
            else:
                # The latched peer fell silent: listen to every source again. Others are
                # dropped by the kernel while connected, so they were not counted in
                # ``foreign``; the next packet from anyone latches (_check_source).
                transport.disconnect_rtp()
                if self.latch:
                    self._latched = False
                    self._rx_seq = _NOT_ARMED
        elif (
            self._latched
            and self._remote_rtp is not None
            and now - self._latched_at >= _CONNECT_AFTER
            and now - self._last_rx < _LINK_CHECK
        ):
            transport.connect_rtp(self._remote_rtp)

    def _collision(self, source: Address) -> None:
        """Our SSRC came back from ``source`` (RFC 3550 §8.2).

        The first time from an address it is a collision: take a new SSRC and
        send BYE for the old one. An address already in the conflict table is
        looping our own packets back (an echo peer): ignore them.
        """
        if source in self._conflicts:
            self.looped += 1
            return
        self._conflicts.add(source)
        assert self.sender is not None and self.sources is not None
        old = self.sender.change_ssrc()
        self.sources.local_ssrc = self.sender.ssrc
        log.info("SSRC collision with %s: %08x -> %08x", source, old, self.sender.ssrc)
        self._send_rtcp([ReceiverReport(old), Bye([old], b"SSRC collision")])

    def _on_rtcp(self, data: bytes, addr: Any) -> None:
        loop = self._loop
        if loop is None or self.sources is None:
            return
        if self.srtp is not None:
            try:
                data = self.srtp.unprotect_rtcp(data)
            except SrtpError:
                self.rtcp_invalid += 1
                return
        try:
            packets = parse_compound(data)
        except RtpParseError:
            self.rtcp_invalid += 1
            return
        source: Address = (addr[0], addr[1])
        if source != self._remote_rtcp and self.latch and not self.transport.rtcp_mux:
            # Symmetric RTCP: answer where reports come from, but only from the
            # host we exchange RTP with (nobody else may redirect our reports).
            rtp_host = self._remote_rtp[0] if self._remote_rtp else None
            if rtp_host is None or rtp_host == source[0]:
                self._remote_rtcp = source
        now = loop.time()
        wall = time.time()
        ours = self.sender.ssrc if self.sender else None
        clock = self.info.clock_rate if self.info else 8000
        self.rtcp_received += 1
        for p in packets:
            if isinstance(p, SenderReport | ReceiverReport):
                if isinstance(p, SenderReport):
                    self.sources.on_sender_report(p, now)
                for block in p.reports:
                    if block.ssrc != ours:
                        continue
                    self.reports_received += 1
                    rtt = round_trip_time(arrival_middle(wall), block.lsr, block.dlsr)
                    if rtt is not None:
                        self.rtt = rtt
                    self.remote_fraction_lost = block.fraction_lost / 256
                    self.remote_jitter = block.jitter / clock
            elif isinstance(p, Bye):
                self._rx_seq = _NOT_ARMED
                for ssrc in p.sources:
                    self.sources.forget(ssrc)
                    if self.on_bye is not None:
                        self.on_bye(ssrc)

    # -- RTCP ------------------------------------------------------------------
    def _report(self, now: float) -> list[RtcpPacket]:
        assert self.sender is not None and self.sources is not None
        blocks = self.sources.report_blocks(now)
        report: RtcpPacket
        if self.sender.packets_sent > self._packets_at_last_report and self._schedule:
            sr = self.sender.sender_report(self._schedule, now, time.time())
            sr.reports = blocks
            report = sr
        else:
            report = ReceiverReport(self.sender.ssrc, blocks)
        self._packets_at_last_report = self.sender.packets_sent
        return [report, SourceDescription.cname_for(self.sender.ssrc, self.cname)]

    def _send_report(self, now: float) -> None:
        if self._remote_rtcp is None:
            return
        self._send_rtcp(self._report(now))

    def _send_rtcp(self, packets: list[RtcpPacket]) -> None:
        if self._remote_rtcp is None:
            return
        data = build_compound(packets)
        if self.srtp is not None:
            data = self.srtp.protect_rtcp(data)
        self.transport.send_rtcp(data, self._remote_rtcp)

    # -- reporting and shutdown -----------------------------------------------------
    def stats(self) -> MediaStats:
        current = self.sources.current if self.sources else None
        snap = current.snapshot() if current else None
        jb = self.jitter.stats() if self.jitter else None
        expected = snap.expected if snap else 0
        loss = snap.fraction_lost if snap else 0.0
        # Late packets are heard as loss (G.107 Ppl); the odd frame dropped to
        # shrink the delay is a time-scale adjustment and is not counted.
        # Frames rebuilt from in-band FEC are not heard as lost.
        late = (jb.late / expected) if (jb and expected) else 0.0
        heard_lost = loss
        if jb and expected:
            heard_lost = max(0.0, loss - jb.recovered / expected)
        delay = (self.rtt or 0.0) / 2 + (jb.current_delay if jb else 0.0) + self._ptime
        score = score_call(
            self.info.name if self.info else "PCMU",
            network_loss=heard_lost,
            discarded=late,
            one_way_delay=delay,
        )
        return MediaStats(
            packets_sent=self.sender.packets_sent if self.sender else 0,
            octets_sent=self.sender.octets_sent if self.sender else 0,
            packets_received=snap.received if snap else 0,
            packets_expected=expected,
            packets_lost=snap.lost if snap else 0,
            fraction_lost=loss,
            jitter=snap.jitter if snap else 0.0,
            rtt=self.rtt,
            remote_fraction_lost=self.remote_fraction_lost,
            remote_jitter=self.remote_jitter,
            jitter_buffer=jb,
            invalid=self.invalid,
            rtcp_invalid=self.rtcp_invalid,
            rtcp_received=self.rtcp_received,
            reports_received=self.reports_received,
            foreign=self.foreign,
            ssrc_changes=self.sources.ssrc_changes if self.sources else 0,
            ticks_skipped=(self._clock.skipped - self._skipped0) if self._clock else 0,
            r_factor=score.r,
            mos=score.mos,
            remote_address=self._remote_rtp,
        )

    def close(self) -> None:
        """Send RTCP BYE (RFC 3550 §6.6), stop the timer, close the sockets."""
        if self.closed:
            return
        self._rx_seq = _NOT_ARMED
        if self._clock is not None and self.sender is not None and self._loop is not None:
            try:
                self._send_rtcp([*self._report(self._loop.time())[:1], Bye([self.sender.ssrc])])
            except (OSError, SrtpError) as exc:
                log.debug("RTCP BYE not sent: %s", exc)
        self.closed = True
        if self._clock is not None:
            self._clock.leave(self)
            self._clock = None
        self.transport.close()
