"""SIP dialogs (RFC 3261 §12), the state one peer keeps about a call.

A :class:`Dialog` is identified by Call-ID, local tag and remote tag
(:class:`DialogId`, §12). It is created

* on the UAC side from a 1xx-with-tag or 2xx to the initial INVITE
  (:meth:`Dialog.from_uac`, §12.1.2); a forked INVITE creates one early
  dialog per To tag;
* on the UAS side from the request and the response we send
  (:meth:`Dialog.from_uas`, §12.1.1).

It builds in-dialog requests (:meth:`Dialog.create_request`, §12.2.1.1:
Request-URI and Route for loose and strict routing, local CSeq), checks
incoming ones (:meth:`Dialog.check_request`, §12.2.2: CSeq order;
:meth:`Dialog.refresh_target`) and follows responses (:meth:`Dialog.receive_response`,
§12.2.1.2). It also keeps the offer/answer bookkeeping that RFC 3311 §5.2
and RFC 3261 §14 need to choose between 491 and 500. Timers (2xx/ACK,
glare, PRACK, session timers) live in :mod:`trunkline.sip.dialog_table`.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

from trunkline.sip.builder import new_branch
from trunkline.sip.errors import LocalSipError
from trunkline.sip.headers import Headers, NameAddr, Via
from trunkline.sip.message import Request, Response
from trunkline.sip.uri import SipUri, Uri

logger = logging.getLogger(__name__)

TARGET_REFRESH_METHODS = frozenset({"INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER"})
"""Requests whose Contact replaces the remote target (§12.2, RFC 3311, RFC 6665)."""

_NO_CSEQ_BUMP = frozenset({"ACK", "CANCEL"})


class DialogState(enum.Enum):
    """Early, Confirmed and Terminated (RFC 3261 §12)."""

    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"

    __hash__ = object.__hash__  # C identity hash for the transition table (Enum's is Python)


class Role(enum.Enum):
    """Whether we sent (UAC) or received (UAS) the request that made the dialog."""

    UAC = "uac"
    UAS = "uas"


@dataclass(frozen=True, slots=True)
class DialogId:
    """Call-ID, local tag, remote tag (RFC 3261 §12)."""

    call_id: str
    local_tag: str
    remote_tag: str

    @classmethod
    def of_incoming(cls, request: Request) -> DialogId | None:
        """The id, seen from us, of the dialog an incoming request belongs to."""
        if request.to_tag is None or request.from_tag is None:
            return None
        return cls(request.call_id, request.to_tag, request.from_tag)

    @classmethod
    def of_response(cls, response: Response) -> DialogId | None:
        """The id, seen from the UAC, of the dialog a response belongs to."""
        if response.to_tag is None or response.from_tag is None:
            return None
        return cls(response.call_id, response.from_tag, response.to_tag)


@dataclass(slots=True)
class OfferAnswerState:
    """Which side has an SDP offer outstanding (RFC 3264, RFC 3311 §5.2).

    A message with an SDP body is an answer when the other side has an
    offer outstanding, and an offer otherwise. A failed (non-2xx final)
    answer to a request that carried an offer withdraws that offer.
    """

    local_offer: bool = False
    remote_offer: bool = False

    def sent_sdp(self) -> str:
        """We send SDP; returns ``"offer"`` or ``"answer"``."""
        if self.remote_offer:
            self.remote_offer = False
            return "answer"
        self.local_offer = True
        return "offer"

    def received_sdp(self) -> str:
        """We received SDP; returns ``"offer"`` or ``"answer"``."""
        if self.local_offer:
            self.local_offer = False
            return "answer"
        self.remote_offer = True
        return "offer"


def has_sdp(message: Request | Response) -> bool:
    """True when ``message`` carries a session description."""
    if not message.body:
        return False
    ctype = message.headers.get("Content-Type")
    return ctype is not None and ctype.split(";", 1)[0].strip().lower() == "application/sdp"


class Dialog:
    """One dialog: ids, sequence numbers, route set, remote target (§12)."""

    TRANSITIONS: ClassVar[dict[DialogState, frozenset[DialogState]]] = {
        DialogState.EARLY: frozenset({DialogState.CONFIRMED, DialogState.TERMINATED}),
        DialogState.CONFIRMED: frozenset({DialogState.TERMINATED}),
        DialogState.TERMINATED: frozenset(),
    }

    def __init__(
        self,
        *,
        role: Role,
        state: DialogState,
        call_id: str,
        local: NameAddr,
        remote: NameAddr,
        local_seq: int | None,
        remote_seq: int | None,
        remote_target: Uri,
        route_set: list[NameAddr],
        secure: bool = False,
        local_contact: str | None = None,
    ) -> None:
        if local.tag is None or remote.tag is None:
            raise LocalSipError("a dialog needs both tags")
        self.role = role
        self.state = state
        self.call_id = call_id
        self.local = local
        self.remote = remote
        self.local_seq = local_seq
        self.remote_seq = remote_seq
        self.remote_target = remote_target
        self.route_set = route_set
        self.secure = secure
        self.local_contact = local_contact
        self.offer_answer = OfferAnswerState()
        self.invite_cseq: int | None = None
        """CSeq number of the INVITE that created or last re-negotiated the dialog."""
        self.outgoing_invite: int | None = None
        """CSeq of our re-INVITE/UPDATE still waiting for its final response (§14.1)."""
        self.incoming_invite: int | None = None
        """CSeq of the peer's re-INVITE we have not answered yet (§14.2)."""
        self.termination_reason = ""

    # -- identity -----------------------------------------------------------

    @property
    def local_tag(self) -> str:
        """Our tag (From of our requests, To of theirs)."""
        tag = self.local.tag
        assert tag is not None
        return tag

    @property
    def remote_tag(self) -> str:
        """The peer's tag."""
        tag = self.remote.tag
        assert tag is not None
        return tag

    @property
    def id(self) -> DialogId:
        """Call-ID, local tag, remote tag."""
        return DialogId(self.call_id, self.local_tag, self.remote_tag)

    @property
    def owns_call_id(self) -> bool:
        """True when we generated the Call-ID (we were the UAC, §14.1)."""
        return self.role is Role.UAC

    def __repr__(self) -> str:
        return f"<Dialog {self.role.value} {self.state.value} {self.id}>"

    # -- creation (§12.1) ---------------------------------------------------

    @classmethod
    def from_uac(
        cls, request: Request, response: Response, *, local_contact: str | None = None
    ) -> Dialog:
        """The dialog a UAC gets from a 1xx-with-tag or 2xx (§12.1.2).

        Route set: the response's Record-Route in reverse order; remote
        target: its Contact; local CSeq: the request's; remote CSeq: empty.
        """
        if response.to_tag is None:
            raise LocalSipError("a response without To tag creates no dialog")
        state = DialogState.CONFIRMED if 200 <= response.status < 300 else DialogState.EARLY
        contacts = response.contact
        target = contacts[0].uri if contacts else request.uri
        return cls(
            role=Role.UAC,
            state=state,
            call_id=request.call_id,
            local=request.from_,
            remote=response.to,
            local_seq=request.cseq.number,
            remote_seq=None,
            remote_target=target,
            route_set=list(reversed(response.record_route)),
            secure=_is_sips(request.uri),
            local_contact=local_contact if local_contact is not None else _first_contact(request),
        )

    @classmethod
    def from_uas(
        cls, request: Request, response: Response, *, local_contact: str | None = None
    ) -> Dialog:
        """The dialog a UAS gets when it sends a 1xx-with-tag or 2xx (§12.1.1).

        Route set: the request's Record-Route in order; remote target: its
        Contact; remote CSeq: the request's; local CSeq: empty.
        """
        if response.to_tag is None or request.from_tag is None:
            raise LocalSipError("a dialog needs a From tag and a To tag")
        state = DialogState.CONFIRMED if 200 <= response.status < 300 else DialogState.EARLY
        contacts = request.contact
        if not contacts:
            raise LocalSipError("the request has no Contact to use as remote target")
        return cls(
            role=Role.UAS,
            state=state,
            call_id=request.call_id,
            local=response.to,
            remote=request.from_,
            local_seq=None,
            remote_seq=request.cseq.number,
            remote_target=contacts[0].uri,
            route_set=list(request.record_route),
            secure=_is_sips(request.uri),
            local_contact=local_contact if local_contact is not None else _first_contact(response),
        )

    # -- state --------------------------------------------------------------

    def _set_state(self, new: DialogState) -> None:
        old = self.state
        if new is old:
            return
        if new not in self.TRANSITIONS[old]:
            raise LocalSipError(f"dialog: illegal transition {old.value} -> {new.value}")
        self.state = new
        logger.debug(
            "dialog %s Call-ID %s: %s -> %s", self.role.value, self.call_id, old.value, new.value
        )

    def confirm(self) -> None:
        """Early -> Confirmed (a 2xx was sent or received, §12.1)."""
        self._set_state(DialogState.CONFIRMED)

    def terminate(self, reason: str = "") -> None:
        """-> Terminated (BYE, a failed INVITE, 481/408 to a request, §12.3, §15)."""
        if self.state is not DialogState.TERMINATED:
            self.termination_reason = reason
            self._set_state(DialogState.TERMINATED)

    @property
    def terminated(self) -> bool:
        """True once the dialog is over."""
        return self.state is DialogState.TERMINATED

    # -- building requests (§12.2.1.1) ----------------------------------------

    def next_cseq(self) -> int:
        """Increment and return the local CSeq (starts at 1 when empty)."""
        self.local_seq = 1 if self.local_seq is None else self.local_seq + 1
        return self.local_seq

    def request_uri_and_routes(self) -> tuple[Uri, list[str]]:
        """Request-URI and Route values for a request in this dialog (§12.2.1.1).

        Loose routing (first route has ``lr``): the remote target is the
        Request-URI and the route set goes into Route. Strict routing: the
        first route's URI (without parameters not allowed in a Request-URI)
        is the Request-URI, then the rest of the route set, then the remote
        target as the last Route.
        """
        if not self.route_set:
            return self.remote_target, []
        first = self.route_set[0].uri
        if isinstance(first, SipUri) and first.lr:
            return self.remote_target, [str(r) for r in self.route_set]
        request_uri = _strip_for_request_uri(first)
        routes = [str(r) for r in self.route_set[1:]]
        routes.append(f"<{self.remote_target}>")
        return request_uri, routes

    def create_request(
        self,
        method: str,
        *,
        cseq: int | None = None,
        via: Via | None = None,
        body: bytes = b"",
        content_type: str | None = None,
        extra_headers: Iterable[tuple[str, str]] = (),
    ) -> Request:
        """A request within this dialog (§12.2.1.1).

        CSeq is the next local number unless ``cseq`` is given (ACK and
        CANCEL reuse the INVITE's). ``via`` is used as top Via with a fresh
        branch; without it the transport adds the Via. Target refresh
        methods carry our Contact. Tell the dialog layer when it is sent
        (``DialogLayer.request_sent``), which does the offer/answer count.
        """
        if self.terminated and method not in ("ACK", "BYE"):
            raise LocalSipError(f"cannot send {method} in a terminated dialog")
        if cseq is None:
            if method in _NO_CSEQ_BUMP:
                raise LocalSipError(f"{method} reuses the CSeq of the request it goes with")
            cseq = self.next_cseq()
        uri, routes = self.request_uri_and_routes()
        headers = Headers()
        if via is not None:
            headers.add("Via", str(via.with_params(branch=new_branch())))
        for route in routes:
            headers.add("Route", route)
        headers.add("Max-Forwards", "70")
        headers.add("From", str(self.local))
        headers.add("To", str(self.remote))
        headers.add("Call-ID", self.call_id)
        headers.add("CSeq", f"{cseq} {method}")
        if method in TARGET_REFRESH_METHODS and self.local_contact is not None:
            headers.add("Contact", self.local_contact)
        for name, value in extra_headers:
            headers.add(name, value)
        if body and content_type is not None:
            headers.add("Content-Type", content_type)
        headers.add("Content-Length", str(len(body)))
        return Request(method, uri, headers=headers, body=body)

    # -- receiving (§12.2.2, §12.2.1.2) ---------------------------------------

    def check_request(self, request: Request) -> int | None:
        """Check the CSeq of an in-dialog request (§12.2.2).

        Returns 500 when it is lower than the remote CSeq (out of order),
        else None after recording it. ACK and CANCEL reuse the INVITE's
        number and are not checked.
        """
        if request.method in _NO_CSEQ_BUMP:
            return None
        number = request.cseq.number
        if self.remote_seq is not None and number < self.remote_seq:
            return 500
        self.remote_seq = number
        return None

    def refresh_target(self, message: Request | Response) -> None:
        """Replace the remote target with the Contact of an accepted target
        refresh request or of the 2xx to ours (§12.2.2, §12.2.1.2)."""
        contacts = message.contact
        if contacts and not contacts[0].star:
            self.remote_target = contacts[0].uri

    def receive_response(self, response: Response) -> None:
        """Follow a response to one of our in-dialog requests (§12.2.1.2).

        A 2xx to a target refresh request replaces the remote target with its
        Contact. A 481 or 408 ends the dialog.
        """
        status = response.status
        method = response.cseq.method
        if 200 <= status < 300 and method in TARGET_REFRESH_METHODS:
            self.refresh_target(response)
        if status in (481, 408):
            self.terminate(f"{status} to {method}")


def _is_sips(uri: Uri) -> bool:
    return uri.scheme == "sips"


def _first_contact(message: Request | Response) -> str | None:
    return message.headers.get("Contact")


def _strip_for_request_uri(uri: Uri) -> Uri:
    """A strict router's Route URI made fit for a Request-URI (§12.2.1.1).

    "With any parameters not allowed in the Request-URI stripped": Table 1
    of §19.1.1 forbids ``method`` and URI headers there.
    """
    if not isinstance(uri, SipUri):
        return uri
    return uri.without_params("method").without_headers()
