"""The transaction layer: matching messages to transactions (RFC 3261 §17).

:class:`TransactionLayer` owns every live transaction of an endpoint. The
driver feeds it parsed messages and ``now``; it answers with
:class:`~trunkline.sip.events.Transmit` outputs and
:class:`~trunkline.sip.events.Event` for the TU, and one deadline::

    layer.receive_request(request, peer, now)      # from the transport
    layer.receive_response(response, now)
    txn = layer.send_request(request, peer, now)   # from the TU
    layer.send_response(txn, response, now)
    for t in layer.drain_transmits(): ...          # to the transport
    for e in layer.drain_events(): ...             # to the TU
    loop.call_at(layer.get_timer(), ...)           # -> layer.handle_timer(now)

Matching follows §17.1.3 for responses (top Via branch + CSeq method) and
§17.2.3 for requests (branch + sent-by + method, ACK matching its INVITE),
with the RFC 2543 fallback for branches without the magic cookie. A CANCEL
finds the INVITE it cancels with :meth:`TransactionLayer.find_cancelled`
(§9.2). Merged requests (§8.2.2.2) are answered 482 by the layer when
``reject_merged`` is on (a UAS; a proxy turns it off).
"""

from __future__ import annotations

import heapq
import itertools
import logging
from dataclasses import dataclass

from trunkline.sip.builder import make_response
from trunkline.sip.errors import LocalSipError, SipParseError
from trunkline.sip.events import (
    Event,
    MergedRequestRejected,
    Outbox,
    Peer,
    RequestReceived,
    ResponseReceived,
    Transmit,
)
from trunkline.sip.message import Request, Response
from trunkline.sip.timers import DEFAULT_TIMERS, TimerConfig
from trunkline.sip.transaction import (
    MAGIC_COOKIE,
    ClientInviteTransaction,
    ClientNonInviteTransaction,
    ClientTransaction,
    ServerInviteTransaction,
    ServerNonInviteTransaction,
    ServerTransaction,
    Transaction,
    TransactionState,
    is_rfc3261_branch,
)

logger = logging.getLogger(__name__)

_TERMINATED = TransactionState.TERMINATED

ClientKey = tuple[str, str]
"""(branch, method) of §17.1.3."""

ServerKey = tuple[str, ...]
"""("3261", branch, sent-by host, sent-by port, method) or the RFC 2543 tuple."""


@dataclass(frozen=True, slots=True)
class _Rfc2543Id:
    """The fields RFC 2543 matching compares (§17.2.3, last paragraphs)."""

    request_uri: str
    from_tag: str | None
    call_id: str
    cseq: int
    top_via: str


def client_key(message: Request | Response) -> ClientKey | None:
    """The §17.1.3 key: top Via branch and CSeq method (None without a branch)."""
    top = message.top_via
    branch = top.branch if top is not None else None
    if not branch:
        return None
    return (branch, message.cseq.method)


def server_key(request: Request) -> ServerKey:
    """The §17.2.3 key of ``request``; an ACK gets the key of its INVITE.

    With the magic cookie: branch, sent-by and method. Without it (RFC 2543
    peers): Request-URI, To tag, From tag, Call-ID, CSeq and top Via.
    """
    via = request.top_via
    if via is None:
        raise SipParseError("Missing Via header")
    branch = via.branch
    method = request.method
    if method == "ACK":
        method = "INVITE"
    if branch is not None and branch.startswith(MAGIC_COOKIE):
        port = via.port
        return ("3261", branch, via.host.lower(), "" if port is None else str(port), method)
    return (
        "2543",
        str(request.uri),
        request.to_tag or "",
        request.from_tag or "",
        request.call_id,
        str(request.cseq.number),
        method,
        str(via),
    )


def _rfc2543_id(request: Request) -> _Rfc2543Id:
    return _Rfc2543Id(
        str(request.uri),
        request.from_tag,
        request.call_id,
        request.cseq.number,
        str(request.via[0]),
    )


class TransactionLayer:
    """Every client and server transaction of one endpoint (RFC 3261 §17)."""

    def __init__(
        self,
        timers: TimerConfig = DEFAULT_TIMERS,
        *,
        auto_trying: bool = True,
        reject_merged: bool = True,
    ) -> None:
        self.timers = timers
        self.auto_trying = auto_trying
        self.reject_merged = reject_merged
        self.outbox = Outbox()
        self._clients: dict[ClientKey, ClientTransaction] = {}
        self._servers: dict[ServerKey, ServerTransaction] = {}
        self._rfc2543_invites: dict[_Rfc2543Id, list[ServerInviteTransaction]] = {}
        self._merge_index: dict[tuple[str, str, int, str], ServerTransaction] = {}
        self._keys: dict[int, tuple[ServerKey, tuple[str, str, int, str] | None]] = {}
        """Per server transaction: its table key and merge key, for removal."""
        self._pending_cancels: dict[int, ClientInviteTransaction] = {}
        self._heap: list[tuple[float, int, Transaction]] = []
        self._filed: dict[int, float] = {}
        self._seq = itertools.count()
        self._on_change = self._changed
        """One bound method shared by every transaction (not one object per transaction)."""

    # -- outputs ------------------------------------------------------------

    def drain_transmits(self) -> list[Transmit]:
        """Messages to hand to the transport, in order."""
        return self.outbox.drain_transmits()

    def drain_events(self) -> list[Event]:
        """Events for the TU, in order."""
        return self.outbox.drain_events()

    # -- from the TU ----------------------------------------------------------

    def send_request(
        self, request: Request, peer: Peer | None, now: float, *, reliable: bool | None = None
    ) -> ClientTransaction:
        """Start a client transaction for ``request`` (§17.1) and send it."""
        if request.method == "ACK":
            raise LocalSipError("an ACK is not a transaction: use send_ack()")
        key = client_key(request)
        if key is None:
            raise LocalSipError("a request needs a top Via with a branch")
        if key in self._clients:
            raise LocalSipError(f"a client transaction with branch {key[0]} already exists")
        txn: ClientTransaction
        kind = ClientInviteTransaction if request.method == "INVITE" else ClientNonInviteTransaction
        txn = kind(request, peer=peer, reliable=reliable, timers=self.timers, outbox=self.outbox)
        self._clients[key] = txn
        txn.on_change = self._on_change
        txn.start(now)
        return txn

    def send_ack(self, ack: Request, peer: Peer | None) -> None:
        """Send the ACK of a 2xx: the UAC core's, outside any transaction (§13.2.2.4)."""
        self.outbox.transmits.append(Transmit(ack, peer))

    def send_response(self, transaction: ServerTransaction, response: Response, now: float) -> None:
        """Answer through ``transaction`` (same as ``transaction.send_response``)."""
        transaction.send_response(response, now)

    def cancel(self, invite: ClientInviteTransaction, now: float) -> ClientTransaction | None:
        """Cancel a pending INVITE (RFC 3261 §9.1).

        The CANCEL goes out at once when a provisional response has arrived,
        or as soon as one does (a CANCEL must not overtake the INVITE). After
        a final response nothing is sent and None is returned.
        """
        if invite.state is TransactionState.PROCEEDING:
            return self.send_request(invite.make_cancel(), invite.peer, now)
        if invite.state is TransactionState.CALLING:
            self._pending_cancels[id(invite)] = invite
        return None

    # -- from the transport -----------------------------------------------

    def receive_response(self, response: Response, now: float) -> ClientTransaction | None:
        """Match a response to its client transaction (§17.1.3), or pass it up.

        A response matching nothing is reported with ``transaction=None``
        (RFC 6026 §8.9 hands it to the core).
        """
        key = client_key(response)
        txn = self._clients.get(key) if key is not None else None
        if txn is None:
            self.outbox.events.append(ResponseReceived(response, None))
            return None
        txn.receive_response(response, now)
        if (
            response.status < 200
            and isinstance(txn, ClientInviteTransaction)
            and self._pending_cancels.pop(id(txn), None) is not None
        ):
            self.send_request(txn.make_cancel(), txn.peer, now)
        elif response.status >= 200:
            self._pending_cancels.pop(id(txn), None)
        return txn

    def receive_request(
        self, request: Request, peer: Peer | None, now: float
    ) -> ServerTransaction | None:
        """Match a request to its server transaction (§17.2.3) or create one.

        Returns the new transaction for a new request (also reported as
        :class:`RequestReceived`); None for a retransmission, an ACK, or a
        merged request answered 482. A request without Via raises
        :class:`~trunkline.sip.errors.SipParseError` (answer 400 statelessly).
        """
        if request.top_via is None:
            raise SipParseError("Missing Via header")
        if request.method == "ACK":
            self._receive_ack(request, peer, now)
            return None
        key = server_key(request)
        existing = self._servers.get(key)
        if existing is not None:
            existing.receive_request(request, now)
            return None
        txn: ServerTransaction
        if request.method == "INVITE":
            invite = ServerInviteTransaction(
                request, peer=peer, timers=self.timers, outbox=self.outbox
            )
            invite.auto_trying = self.auto_trying
            txn = invite
        else:
            txn = ServerNonInviteTransaction(
                request, peer=peer, timers=self.timers, outbox=self.outbox
            )
        self._servers[key] = txn
        self._keys[id(txn)] = (key, None)
        if key[0] == "2543" and isinstance(txn, ServerInviteTransaction):
            self._rfc2543_invites.setdefault(_rfc2543_id(request), []).append(txn)
        txn.on_change = self._on_change
        merged = self.reject_merged and self._is_merged(request, txn)
        txn.start(now)
        if merged:
            logger.info(
                "482 Loop Detected for merged %s Call-ID %s", request.method, request.call_id
            )
            txn.send_response(make_response(request, 482, "Loop Detected"), now)
            self.outbox.events.append(MergedRequestRejected(request))
            return None
        self.outbox.events.append(RequestReceived(request, txn, peer))
        return txn

    def _receive_ack(self, ack: Request, peer: Peer | None, now: float) -> None:
        key = server_key(ack)
        txn: ServerTransaction | None = None
        if key[0] == "3261":
            txn = self._servers.get(key)
        else:
            for candidate in self._rfc2543_invites.get(_rfc2543_id(ack), ()):
                if candidate.response_to_tag == ack.to_tag:
                    txn = candidate
                    break
        if txn is None:
            # The ACK of a 2xx: a fresh branch, for the TU (§17.2.3, §13.3.2.5).
            self.outbox.events.append(RequestReceived(ack, None, peer))
            return
        txn.receive_request(ack, now)

    def _is_merged(self, request: Request, txn: ServerTransaction) -> bool:
        """§8.2.2.2: same From tag, Call-ID and CSeq as a live transaction.

        Only with ``reject_merged`` (a proxy neither rejects nor indexes).
        """
        if request.to_tag is not None or request.from_tag is None:
            return False
        mkey = (request.from_tag, request.call_id, request.cseq.number, request.cseq.method)
        other = self._merge_index.get(mkey)
        if other is not None and not other.terminated:
            return self.reject_merged
        self._merge_index[mkey] = txn
        skey, _ = self._keys[id(txn)]
        self._keys[id(txn)] = (skey, mkey)
        return False

    def find_cancelled(self, cancel: Request) -> ServerInviteTransaction | None:
        """The INVITE server transaction a CANCEL targets (§9.2), if any.

        The CANCEL matches with the §17.2.3 rules as if its method were
        INVITE; for RFC 2543 peers the To tag of the CANCEL is ignored since
        it carries none.
        """
        via = cancel.top_via
        if via is None:
            return None
        if is_rfc3261_branch(via.branch):
            key = server_key(cancel)
            txn = self._servers.get((*key[:-1], "INVITE"))
            return txn if isinstance(txn, ServerInviteTransaction) else None
        for candidate in self._rfc2543_invites.get(_rfc2543_id(cancel), ()):
            return candidate
        return None

    def transport_error(self, transaction: Transaction, now: float, reason: str) -> None:
        """The transport failed for ``transaction``: terminate it, tell the TU."""
        transaction.transport_error(now, reason)

    def discard(self, txn: Transaction) -> None:
        """Forget ``txn`` without answering or terminating it.

        For a proxy that drops a request on purpose (a flood, a banned
        source): the request gets no answer, so no state may stay behind;
        a retransmission creates a new transaction and is judged again.
        """
        txn.on_change = None
        self._forget(txn)

    # -- introspection ------------------------------------------------------

    def find_client(self, message: Request | Response) -> ClientTransaction | None:
        """The client transaction ``message`` belongs to (§17.1.3)."""
        key = client_key(message)
        return self._clients.get(key) if key is not None else None

    def find_server(self, request: Request) -> ServerTransaction | None:
        """The server transaction ``request`` belongs to (§17.2.3)."""
        return self._servers.get(server_key(request))

    def __len__(self) -> int:
        return len(self._clients) + len(self._servers)

    # -- timers -------------------------------------------------------------

    def get_timer(self) -> float | None:
        """The earliest deadline of any transaction, or None."""
        heap = self._heap
        while heap:
            at, _, txn = heap[0]
            if self._filed.get(id(txn)) == at:
                return at
            heapq.heappop(heap)
        return None

    def handle_timer(self, now: float) -> None:
        """Fire every transaction timer due at ``now``."""
        heap = self._heap
        filed = self._filed
        pop = heapq.heappop
        while heap and heap[0][0] <= now:
            at, _, txn = pop(heap)
            key = id(txn)
            if filed.get(key) != at:
                continue  # stale: re-filed or forgotten since
            del filed[key]
            txn.handle_timer(now)

    def _changed(self, txn: Transaction) -> None:
        """Re-file the deadline of ``txn``; forget it once terminated."""
        if txn.state is _TERMINATED:
            self._forget(txn)
            return
        at = txn.deadlines.earliest()
        key = id(txn)
        filed = self._filed
        if at is None:
            filed.pop(key, None)
        elif filed.get(key) != at:  # only a moved deadline costs a heap push
            filed[key] = at
            heapq.heappush(self._heap, (at, next(self._seq), txn))

    def _forget(self, txn: Transaction) -> None:
        self._filed.pop(id(txn), None)
        self._pending_cancels.pop(id(txn), None)
        if isinstance(txn, ClientTransaction):
            key = client_key(txn.request)
            if key is not None and self._clients.get(key) is txn:
                del self._clients[key]
            return
        keys = self._keys.pop(id(txn), None)
        if keys is None:
            return
        skey, mkey = keys
        if self._servers.get(skey) is txn:
            del self._servers[skey]
        if mkey is not None and self._merge_index.get(mkey) is txn:
            del self._merge_index[mkey]
        if isinstance(txn, ServerInviteTransaction) and skey[0] == "2543":
            rid = _rfc2543_id(txn.request)
            group = self._rfc2543_invites.get(rid, [])
            if txn in group:
                group.remove(txn)
            if not group:
                self._rfc2543_invites.pop(rid, None)
