"""One phone call as the application sees it (RFC 3261 §13-§15, RFC 3264).

A :class:`Call` ties an INVITE dialog (kept by the endpoint's dialog layer,
:mod:`trunkline.sip.dialog_table`) to the offer/answer exchange
(:mod:`trunkline.sip.offeranswer`) and to a :class:`MediaSession`. Its state
is a declared machine::

    IDLE -> CALLING -> RINGING / EARLY -> CONNECTED <-> ON_HOLD -> ENDED

What it does, by section:

* outgoing INVITE with an SDP offer (RFC 3264 §5); 401/407 answered with
  digest credentials on a new INVITE with the next CSeq (RFC 3261 §22.2);
  180 is ringing, a 1xx with SDP is early media (RFC 3261 §13.2.1, RFC 3960);
  CANCEL before the final response (§9.1); the 2xx ACK is the dialog layer's
  job (§13.2.2.4);
* incoming INVITE: ring (180), answer (200 with the SDP answer, §13.3.1.4),
  reject (486 Busy Here, 603 Decline, 488 when no codec fits, §13.3.1.1);
  a CANCEL from the caller ends it as ``CANCELLED`` (§9.2);
* BYE both ways (§15.1); every end carries a :class:`CallResult` a script
  can rely on (busy, not found, declined, no answer, failed with status);
* hold and resume by re-INVITE with ``sendonly`` and back to ``sendrecv``
  (RFC 3264 §8.4, RFC 6337 §5.3); a peer's hold (sendonly/inactive or the
  legacy ``c=0.0.0.0``) is answered per §6.1;
* DTMF as RFC 4733 telephone-events or SIP INFO ``application/dtmf-relay``.

The call is asyncio application code: the SIP rules it relies on are the
sans-IO layers below it; it only decides and sends. Its vocabulary (states,
results, events, config) is :mod:`trunkline.ua.callevents`; its audio is
:mod:`trunkline.ua.callmedia`; hold, resume and re-offers are
:mod:`trunkline.ua.hold`, DTMF :mod:`trunkline.ua.dtmf`, answering an incoming
INVITE :mod:`trunkline.ua.answering` and REFER/NOTIFY :mod:`trunkline.ua.calltransfer`
(mixins on :class:`~trunkline.ua.callpart.CallPart`, which declares what they share).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path

from trunkline.media.session import MediaSession, MediaStats
from trunkline.sip.aio.endpoint import IncomingRequest, SipEndpoint
from trunkline.sip.aio.routing import Destination
from trunkline.sip.aio.transport import Connection
from trunkline.sip.auth import DigestClient
from trunkline.sip.builder import make_request, new_call_id, new_tag
from trunkline.sip.dialog import Dialog, has_sdp
from trunkline.sip.errors import LocalSipError, SipError
from trunkline.sip.headers import NameAddr
from trunkline.sip.message import Request, Response
from trunkline.sip.offeranswer import (
    LocalSession,
    NegotiatedAudio,
    process_answer,
)
from trunkline.sip.sdp import Direction, SessionDescription
from trunkline.sip.transaction import ClientInviteTransaction
from trunkline.ua.answering import ALLOW, AnsweringMixin
from trunkline.ua.callevents import (
    TRANSITIONS,
    CallConfig,
    CallDirection,
    CallEnded,
    CallEvent,
    CallResult,
    CallState,
    CallStateChanged,
    DtmfReceived,
    TransferProgress,
    result_for_status,
)
from trunkline.ua.callmedia import CallMedia, parse_peer_sdp
from trunkline.ua.calltransfer import TransferMixin
from trunkline.ua.dtmf import DtmfMixin
from trunkline.ua.hold import SDP, HoldMixin

__all__ = [
    "Call",
    "CallConfig",
    "CallDirection",
    "CallEnded",
    "CallEvent",
    "CallResult",
    "CallState",
    "CallStateChanged",
    "DtmfReceived",
    "TransferProgress",
    "result_for_status",
]

logger = logging.getLogger(__name__)

_MAX_AUTH_ROUNDS = 2
BYE_WAIT = 4.0
"""Seconds :meth:`Call.hangup` waits for the BYE's response before calling the call over."""


class Call(AnsweringMixin, TransferMixin, HoldMixin, DtmfMixin):
    """One call; build it with :meth:`outgoing` or :meth:`incoming`."""

    def __init__(
        self,
        endpoint: SipEndpoint,
        direction: CallDirection,
        config: CallConfig,
    ) -> None:
        self.endpoint = endpoint
        self.direction = direction
        self.config = config
        self.state = CallState.IDLE
        self.result: CallResult | None = None
        self.status: int | None = None
        self.reason = ""
        self.dialog: Dialog | None = None
        self._media = CallMedia(config, self._on_rfc4733)
        self.local_hold = False
        self.remote_hold = False
        self.remote_uri = ""
        self.call_id = ""
        self.on_event: Callable[[CallEvent], None] | None = None
        self.ended = asyncio.Event()
        self.connected = asyncio.Event()
        self.connected_at: float | None = None
        self.digest: DigestClient | None = None
        self.incoming_request: IncomingRequest | None = None
        self.destination: Destination | None = None
        self.connection: Connection | None = None
        self._offer: SessionDescription | None = None  # our outstanding offer
        self._remote_offer: SessionDescription | None = None
        self._invite: Request | None = None
        self._txn: object | None = None
        self._cancel_requested = False
        self._bye_sent = False
        self._bye_task: asyncio.Future[Response] | None = None
        self._cancel_result = CallResult.CANCELLED
        self._to_tag = new_tag()
        self._tasks: set[asyncio.Task[object]] = set()
        self._busy = asyncio.Lock()  # one re-INVITE at a time (§14.1)
        self.dial_task: asyncio.Task[CallResult | None] | None = None
        self._from = NameAddr(None, "sip:anonymous@anonymous.invalid", {})
        self._contact = ""
        self.contact = ""
        """Our Contact for an incoming call (the phone sets it); derived when empty."""
        self._route: tuple[str, ...] = ()
        self._extra_headers: tuple[tuple[str, str], ...] = ()
        self._transfer_status: asyncio.Queue[tuple[int, str]] | None = None
        self.on_refer: Callable[[Call, IncomingRequest], Awaitable[None]] | None = None
        """Handles a REFER in this call (the phone sets it); without it REFER gets 603."""

    def __repr__(self) -> str:
        return f"<Call {self.direction.value} {self.remote_uri} {self.state.value}>"

    # -- state ---------------------------------------------------------------------
    def _set_state(self, new: CallState, reason: str = "") -> None:
        old = self.state
        if new is old:
            return
        if new not in TRANSITIONS[old]:
            raise LocalSipError(f"call: illegal transition {old.value} -> {new.value}")
        logger.info("call %s: %s -> %s %s", self.call_id, old.value, new.value, reason)
        self.state = new
        if new is CallState.CONNECTED and self.connected_at is None:
            self.connected_at = self.endpoint.loop.time()
            self.connected.set()
        self._emit(CallStateChanged(self, old, new, reason))

    def _emit(self, event: CallEvent) -> None:
        if self.on_event is not None:
            self.on_event(event)

    @property
    def is_active(self) -> bool:
        """True while connected or on hold."""
        return self.state in (CallState.CONNECTED, CallState.ON_HOLD)

    def _finish(self, result: CallResult, status: int | None, reason: str) -> None:
        """End the call once: stop media, close the recording, emit :class:`CallEnded`."""
        if self.state is CallState.ENDED:
            return
        self.result = result
        self.status = status
        self.reason = reason
        self._stop_media()
        self._set_state(CallState.ENDED, reason)
        self.ended.set()
        self._emit(CallEnded(self, result, status, reason))
        for task in list(self._tasks):
            if task is not asyncio.current_task():
                task.cancel()

    def _spawn(self, coro: Coroutine[object, object, object]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- audio -----------------------------------------------------------------------
    @property
    def media(self) -> MediaSession | None:
        """The RTP session once the call has media."""
        return self._media.session

    @property
    def audio(self) -> NegotiatedAudio | None:
        """The negotiated stream in use (codec, addresses, direction)."""
        return self._media.audio

    @property
    def final_stats(self) -> MediaStats | None:
        """The media statistics as the call ended."""
        return self._media.final_stats

    @property
    def local_session(self) -> LocalSession | None:
        """Our ``o=`` line across offers and answers (RFC 3264 §8)."""
        return self._media.local

    def play(
        self, path: str | Path | None = None, *, tone: float | None = None, loop: bool = False
    ) -> None:
        """Send a WAV file (or a sine ``tone`` in Hz) once media runs (or at once)."""
        self._media.play(Path(path) if path is not None else None, tone, loop)

    def record(self, path: str | Path) -> None:
        """Record what the peer sends to ``path`` (mono 16-bit WAV, written at the end)."""
        self._media.record(Path(path))

    def take_media_from(self, other: Call) -> None:
        """Play what ``other`` played (a transferred or replacing call); record next to it."""
        self._media.copy_plan(other._media, self.call_id[:8])

    def _apply_media(self, audio: NegotiatedAudio) -> None:
        if self._media.apply(audio):
            self.remote_hold = audio.held_by_remote

    def _stop_media(self) -> None:
        # After our BYE the statistics were kept already (hangup); the peer's RTCP BYE
        # may have reset them since.
        self._media.close(snapshot=not self._bye_sent)

    def _new_offer(self, direction: Direction = Direction.SENDRECV) -> SessionDescription:
        offer = self._media.offer(direction)
        self._offer = offer
        return offer

    # -- outgoing ----------------------------------------------------------------------
    @classmethod
    def outgoing(
        cls,
        endpoint: SipEndpoint,
        uri: str,
        *,
        from_: NameAddr,
        contact: str,
        config: CallConfig | None = None,
        digest: DigestClient | None = None,
        route: Sequence[str] = (),
        destination: Destination | None = None,
        extra_headers: Sequence[tuple[str, str]] = (),
    ) -> Call:
        """A call to ``uri``; start it with :meth:`dial`."""
        call = cls(endpoint, CallDirection.OUTGOING, config or CallConfig())
        call.remote_uri = uri
        call.call_id = new_call_id()
        call.digest = digest
        call.destination = destination
        call._from = from_ if from_.tag else from_.with_tag(new_tag())
        call._contact = contact
        call._route = tuple(route)
        call._extra_headers = tuple(extra_headers)
        return call

    async def dial(self) -> CallResult | None:
        """Send the INVITE and wait for the final response.

        Returns None when the call connected, else the result it ended with.
        """
        self._set_state(CallState.CALLING, f"INVITE {self.remote_uri}")
        try:
            await self._media.open()
        except OSError as exc:
            self._finish(CallResult.FAILED, None, f"media: {exc}")
            return self.result
        offer = self._new_offer()
        cseq = 1
        auth: list[tuple[str, str]] = []
        if self.config.no_answer_timeout is not None:
            self._spawn(self._ring_timeout(self.config.no_answer_timeout))
        for _ in range(_MAX_AUTH_ROUNDS + 1):
            request = make_request(
                "INVITE",
                self.remote_uri,
                from_=self._from,
                to=NameAddr(None, self.remote_uri, {}),
                call_id=self.call_id,
                cseq=cseq,
                contact=self._contact,
                body=bytes(offer),
                content_type=SDP,
                extra_headers=[
                    *(("Route", r) for r in self._route),
                    ("Allow", ALLOW),
                    *self._extra_headers,
                    *auth,
                ],
            )
            self._invite = request
            try:
                txn = await self.endpoint.start_request(
                    request, self.destination, on_provisional=self._provisional
                )
            except (OSError, SipError, ValueError) as exc:
                self._finish(CallResult.FAILED, 503, f"cannot send INVITE: {exc}")
                return self.result
            self._txn = txn
            if self._cancel_requested:
                self._cancel_now()
            response = await self.endpoint.wait_final(txn)
            if self.state is CallState.ENDED:
                if 200 <= response.status < 300:
                    self._bye_stray(response)
                return self.result
            if response.status in (401, 407) and not self._cancel_requested:
                retry = self._challenge(response)
                if retry:
                    cseq += 1
                    auth = retry
                    continue
            return self._final(response)
        return self.result

    def _challenge(self, response: Response) -> list[tuple[str, str]]:
        """Credentials for a retry of the INVITE after 401/407 (§22.2), or []."""
        if self._invite is None:
            return []
        body = bytes(self._offer) if self._offer is not None else b""
        return self._credentials(response, "INVITE", str(self._invite.uri), body)

    def _credentials(
        self, response: Response, method: str, uri: str, body: bytes
    ) -> list[tuple[str, str]]:
        """Authorization headers answering the challenge of ``response``, or []."""
        if self.digest is None:
            return []
        proxy = response.status == 407
        try:
            challenges = response.proxy_authenticate if proxy else response.www_authenticate
        except SipError:
            return []
        if not self.digest.challenged(challenges, proxy=proxy):
            return []
        return self.digest.authorization(method, uri, body)

    def _provisional(self, response: Response) -> None:
        if self.state is CallState.ENDED or response.status == 100:
            return
        if has_sdp(response) and self._offer is not None:
            try:
                audio = process_answer(self._offer, parse_peer_sdp(response.body, self.call_id))
            except SipError as exc:
                logger.info("call %s: early SDP ignored: %s", self.call_id, exc)
            else:
                self._apply_media(audio)
                self._set_state(CallState.EARLY, f"{response.status} {response.reason}")
                return
        if self.state is CallState.CALLING:
            self._set_state(CallState.RINGING, f"{response.status} {response.reason}")

    def _final(self, response: Response) -> CallResult | None:
        status = response.status
        text = f"{status} {response.reason}"
        if not 200 <= status < 300:
            result = result_for_status(status)
            if status == 487 and self._cancel_requested:
                result = self._cancel_result
            self._finish(result, status, text)
            return self.result
        dialog = self.endpoint.dialogs.find(response) if self.endpoint.dialogs else None
        if dialog is None:
            self._finish(CallResult.FAILED, status, f"{text} without a dialog")
            return self.result
        self.dialog = dialog
        if has_sdp(response) and self._offer is not None:
            try:
                audio = process_answer(self._offer, parse_peer_sdp(response.body, self.call_id))
            except SipError as exc:
                self._set_state(CallState.CONNECTED, text)
                self._spawn(self.hangup())
                self.reason = f"bad SDP answer: {exc}"
                return None
            self._apply_media(audio)
        self._offer = None
        self._set_state(CallState.CONNECTED, text)
        return None

    def _bye_stray(self, response: Response) -> None:
        """A 2xx after we gave up (CANCEL lost the race): ACKed by the layer, then BYE (§15)."""
        dialog = self.endpoint.dialogs.find(response) if self.endpoint.dialogs else None
        if dialog is not None and not dialog.terminated:
            self.dialog = dialog
            self._spawn(self._request("BYE"))

    async def _ring_timeout(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        if self.direction is CallDirection.OUTGOING:
            self.cancel(CallResult.NO_ANSWER)
        elif not self.is_active:
            self.reject(480)

    def cancel(self, result: CallResult = CallResult.CANCELLED) -> None:
        """Give up on an outgoing call before it is answered (CANCEL, §9.1)."""
        if self.direction is not CallDirection.OUTGOING or self.state not in (
            CallState.IDLE,
            CallState.CALLING,
            CallState.RINGING,
            CallState.EARLY,
        ):
            return
        self._cancel_requested = True
        self._cancel_result = result
        if self._txn is not None:
            self._cancel_now()

    def _cancel_now(self) -> None:
        txn = self._txn
        if isinstance(txn, ClientInviteTransaction):
            self.endpoint.cancel(txn)

    # -- incoming ----------------------------------------------------------------------
    @classmethod
    def incoming(
        cls, endpoint: SipEndpoint, incoming: IncomingRequest, config: CallConfig | None = None
    ) -> Call:
        """A call for a new INVITE; :meth:`ring`, :meth:`answer` or :meth:`reject` it."""
        request = incoming.request
        call = cls(endpoint, CallDirection.INCOMING, config or CallConfig())
        call.incoming_request = incoming
        call.call_id = request.call_id
        call.remote_uri = str(request.from_.uri)
        call.connection = incoming.source.connection
        if has_sdp(request):
            try:
                call._remote_offer = parse_peer_sdp(request.body, call.call_id)
            except SipError as exc:
                call._remote_offer = None
                call.reject(400, f"Bad SDP: {exc}")
        return call

    # -- in-dialog requests from the peer -----------------------------------------------
    async def handle_request(self, incoming: IncomingRequest) -> None:
        """A request inside this call's dialog (the phone routes it here)."""
        request = incoming.request
        method = request.method
        if method == "ACK":
            if has_sdp(request) and self._offer is not None:
                self._take_answer(request.body)
            return
        if incoming.transaction is None:
            return
        if method == "BYE":
            incoming.respond(200)
            self._finish(CallResult.COMPLETED, None, "BYE received")
        elif method in ("INVITE", "UPDATE"):
            await self._reinvite(incoming)
        elif method == "INFO":
            self._info(incoming)
        elif method == "REFER":
            if self.on_refer is None or not self.is_active:
                incoming.respond(603, "Decline")
            else:
                await self.on_refer(self, incoming)
        elif method == "NOTIFY":
            self._notify(incoming)
        elif method == "OPTIONS":
            incoming.respond(200, headers=[("Allow", ALLOW)])
        else:
            incoming.respond(501)

    # -- in-dialog requests from us -----------------------------------------------------
    def _route_now(self) -> tuple[Destination | None, Connection | None]:
        """Where in-dialog requests go: the route set, else the flow it came on."""
        if self.dialog is not None and self.dialog.route_set:
            return None, None
        if self.connection is not None and not self.connection.closed:
            return None, self.connection
        return None, None

    async def _request(
        self,
        method: str,
        *,
        body: bytes = b"",
        content_type: str | None = None,
        extra_headers: Sequence[tuple[str, str]] = (),
    ) -> Response:
        """Send ``method`` in the dialog (§12.2.1.1), answering one challenge."""
        dialog = self.dialog
        if dialog is None:
            raise LocalSipError(f"{method} outside a dialog")
        auth: list[tuple[str, str]] = []
        response: Response | None = None
        for _ in range(_MAX_AUTH_ROUNDS + 1):
            request = dialog.create_request(
                method,
                body=body,
                content_type=content_type,
                extra_headers=[*extra_headers, *auth],
            )
            destination, connection = self._route_now()
            response = await self.endpoint.send_request(request, destination, connection=connection)
            if response.status not in (401, 407) or (method == "BYE" and auth):
                return response
            auth = self._credentials(response, method, str(request.uri), body)
            if not auth:
                return response
        assert response is not None
        return response

    async def hangup(self) -> None:
        """End the call whatever its state: CANCEL, reject or BYE (§15.1.1)."""
        if self.state is CallState.ENDED:
            return
        if self.direction is CallDirection.OUTGOING and not self.is_active:
            self.cancel()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.ended.wait(), 40.0)
            return
        if self.direction is CallDirection.INCOMING and not self.is_active:
            self.reject(603)
            return
        status: int | None = None
        self._bye_sent = True
        self._media.snapshot_stats()  # before the peer's RTCP BYE makes the media layer forget it
        reason = "hung up"
        bye = asyncio.ensure_future(self._request("BYE"))
        try:
            # The dialog ends as the BYE is sent (§15.1.1); the user need not wait out
            # Timer F when the peer is gone, the transaction finishes on its own.
            response = await asyncio.wait_for(asyncio.shield(bye), BYE_WAIT)
            status = response.status
        except TimeoutError:
            reason = "hung up (no answer to BYE)"
            self._bye_task = bye  # keep a reference; its outcome is only logged
            bye.add_done_callback(_log_late_bye)
        except (LocalSipError, OSError, ValueError) as exc:
            logger.info("call %s: BYE not sent: %s", self.call_id, exc)
        # A 481 means the peer hung up at the same moment: the call is over all the same.
        self._finish(CallResult.COMPLETED, status, reason)

    def dialog_ended(self, reason: str) -> None:
        """The dialog layer ended the dialog (no ACK, session expired, our own BYE)."""
        if self._bye_sent:
            return  # hangup() finishes with the BYE's status
        self._finish(
            CallResult.FAILED if not self.is_active else CallResult.COMPLETED, None, reason
        )


def _log_late_bye(task: asyncio.Future[Response]) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        logger.info("late BYE failed: %s", exc)
    else:
        logger.info("late BYE answered: %d", task.result().status)
