"""The media side of one call: offer/answer (RFC 3264) bound to a MediaSession.

:class:`CallMedia` owns what a :class:`~trunkline.ua.call.Call` sends and
hears: the RTP socket pair (:class:`~trunkline.media.session.MediaSession`),
our ``o=`` line across re-offers (:class:`~trunkline.sip.offeranswer.LocalSession`,
RFC 3264 §8), the address announced in SDP (our socket, or its public
mapping when a NAT or a port forward is in front, RFC 4961 symmetric RTP
doing the rest), what to play (a WAV file or a tone) and where to record.
The SIP signalling stays in the call; this module never sends a request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from trunkline.media.codecs.base import CodecError
from trunkline.media.codecs.telephone_event import DigitReceived
from trunkline.media.session import (
    AudioSource,
    MediaSession,
    MediaStats,
    PcmSource,
    ToneSource,
    WavRecorder,
)
from trunkline.media.transport import RtpTransport
from trunkline.sip.offeranswer import (
    Answer,
    LocalSession,
    NegotiatedAudio,
    create_answer,
    create_offer,
    process_answer,
)
from trunkline.sip.sdp import Direction, SessionDescription
from trunkline.ua.callevents import CallConfig
from trunkline.ua.nat import discover_on_rtp

__all__ = ["CallMedia", "MediaPlan", "parse_peer_sdp"]

logger = logging.getLogger(__name__)


def parse_peer_sdp(body: bytes, call_id: str) -> SessionDescription:
    """The peer's SDP, parsed leniently: a call needs only what it understands.

    RFC 8866 §5.13 has a receiver ignore attributes it does not understand; a
    malformed instance of a known one (``a=rtpmap:31 LPC``) is kept unparsed
    and logged instead of failing the whole offer or answer. Broken structure
    (no ``o=``, a bad ``m=`` or ``c=``) still raises SipParseError (400).
    """
    sdp = SessionDescription.parse(body, strict=False)
    for problem in sdp.problems:
        logger.info("call %s: SDP attribute ignored: %s", call_id, problem)
    return sdp


@dataclass(slots=True)
class MediaPlan:
    """What to play and where to record once media runs."""

    play: Path | None = None
    loop: bool = False
    tone: float | None = None
    record: Path | None = None


class CallMedia:
    """One call's audio: open, negotiate, play, record, report, close."""

    def __init__(self, config: CallConfig, on_dtmf: Callable[[DigitReceived], None]) -> None:
        self.config = config
        self.on_dtmf = on_dtmf
        self.session: MediaSession | None = None
        self.local: LocalSession | None = None
        """Our ``o=`` across offers and answers (RFC 3264 §8)."""
        self.audio: NegotiatedAudio | None = None
        self.final_stats: MediaStats | None = None
        self.plan = MediaPlan()
        self._recorder: WavRecorder | None = None
        self._announced: tuple[str, int] | None = None

    @property
    def running(self) -> bool:
        return self.session is not None and self.session.info is not None

    # -- what to send and where to record -------------------------------------------
    def play(self, path: Path | None, tone: float | None, loop: bool) -> None:
        self.plan.play, self.plan.tone, self.plan.loop = path, tone, loop
        if self.session is not None and self.running:
            self.session.source = self._source(self.session.sample_rate)

    def record(self, path: Path) -> None:
        self.plan.record = path
        if self.session is not None and self.running:
            self._start_recorder(self.session)

    def copy_plan(self, other: CallMedia, tag: str) -> None:
        """Play what ``other`` plays; record next to its file, never over it."""
        plan = other.plan
        record = plan.record
        if record is not None:
            record = record.with_name(f"{record.stem}-{tag}{record.suffix}")
        self.plan = MediaPlan(plan.play, plan.loop, plan.tone, record)

    def _source(self, rate: int) -> AudioSource | None:
        if self.plan.play is not None:
            return PcmSource.from_wav(self.plan.play, rate, loop=self.plan.loop)
        if self.plan.tone is not None:
            return ToneSource(self.plan.tone, rate)
        return None

    def _start_recorder(self, session: MediaSession) -> None:
        path = self.plan.record
        if path is None:
            return
        old = self._recorder
        if old is not None:
            if old.path == path and old.sample_rate == session.sample_rate:
                return
            session.sinks.remove(old)
            old.close()
        self._recorder = WavRecorder(path, session.sample_rate)
        session.sinks.append(self._recorder)

    # -- negotiation -------------------------------------------------------------------
    async def open(self) -> MediaSession:
        if self.session is None:
            config = self.config
            transport = await RtpTransport.open(config.media_host, config.rtp_port)
            if config.stun_server is not None:
                try:
                    await self._discover(transport, config.stun_server)
                except BaseException:  # cancelled while probing: do not leak the sockets
                    transport.close()
                    raise
            self.session = MediaSession(transport)
            self.session.on_dtmf = self.on_dtmf
        return self.session

    async def _discover(self, transport: RtpTransport, server: tuple[str, int]) -> None:
        """Announce the RTP socket's STUN mapping (RFC 5389 §2); keep the local one on failure."""
        try:
            self._announced = await discover_on_rtp(transport, server)
        except OSError as exc:
            logger.warning("STUN for RTP port %d failed: %s", transport.local_rtp[1], exc)
        else:
            logger.info("RTP %s is %s outside", transport.local_rtp, self._announced)

    def announced(self) -> tuple[str, int]:
        """Where the peer must send RTP: our socket, or its public mapping (NAT, STUN)."""
        assert self.session is not None
        if self._announced is None:  # once per socket: the mapping does not change
            local = (self.config.media_host, self.session.local_address[1])
            mapping = self.config.media_address_map
            self._announced = mapping(local) if mapping is not None else local
        return self._announced

    def _local(self, host: str) -> LocalSession:
        if self.local is None:
            self.local = LocalSession(host)
        return self.local

    def offer(self, direction: Direction = Direction.SENDRECV) -> SessionDescription:
        """A new offer (RFC 3264 §5; ``sendonly`` puts the peer on hold, §8.4)."""
        host, port = self.announced()
        return create_offer(
            self.config.offered_codecs,
            host,
            port,
            session=self._local(host),
            direction=direction,
            ptime=self.config.ptime,
        )

    def answer(self, offer: SessionDescription, direction: Direction) -> Answer:
        """Our answer to ``offer`` (RFC 3264 §6); raises NegotiationError (488)."""
        host, port = self.announced()
        return create_answer(
            offer,
            self.config.offered_codecs,
            host,
            port,
            session=self._local(host),
            direction=direction,
            ptime=self.config.ptime,
            rtcp_mux=False,
        )

    def accept_answer(
        self, offer: SessionDescription, body: bytes, call_id: str = ""
    ) -> NegotiatedAudio:
        """Process the answer to our ``offer`` (RFC 3264 §7) and use it; raises SipError."""
        audio = process_answer(offer, parse_peer_sdp(body, call_id))
        self.apply(audio)
        return audio

    def apply(self, audio: NegotiatedAudio) -> bool:
        """Use a negotiated stream: (re)configure, start, attach source and recorder."""
        session = self.session
        if session is None:
            return False
        fresh = session.info is None
        old_rate = session.sample_rate
        try:
            session.apply(audio)
        except CodecError as exc:
            logger.warning("media not usable: %s", exc)
            return False
        self.audio = audio
        if fresh or session.sample_rate != old_rate:
            session.source = self._source(session.sample_rate)
            self._start_recorder(session)
        session.start()
        return True

    # -- reporting and shutdown ----------------------------------------------------------
    def snapshot_stats(self) -> None:
        """Keep the statistics as they are now (a peer's RTCP BYE makes the session forget)."""
        if self.session is not None and not self.session.closed and self.running:
            self.final_stats = self.session.stats()

    def close(self, *, snapshot: bool = True) -> None:
        """Stop media (RTCP BYE) and write the recording."""
        session = self.session
        if session is not None and not session.closed:
            if snapshot:
                self.snapshot_stats()
            session.close()
        recorder, self._recorder = self._recorder, None
        if recorder is not None:
            try:
                recorder.close()
            except OSError as exc:
                logger.warning("recording %s not written: %s", recorder.path, exc)
