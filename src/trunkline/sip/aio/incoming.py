"""What the transaction user is handed for each request: :class:`IncomingRequest`.

Also :class:`Source` (the transport, address and connection a message came
from, which RFC 3261 §18.2.2 needs to answer it) and :class:`EndpointStats`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from trunkline.sip.aio.trace import Address, format_address
from trunkline.sip.aio.transport import Connection
from trunkline.sip.builder import make_response
from trunkline.sip.dialog import Dialog
from trunkline.sip.errors import LocalSipError
from trunkline.sip.events import Peer
from trunkline.sip.message import Request, Response
from trunkline.sip.transaction import ServerTransaction

if TYPE_CHECKING:
    from trunkline.sip.aio.endpoint import SipEndpoint


@dataclass(frozen=True, slots=True)
class Source:
    """Where a received message came from (transport, address, connection)."""

    transport: str
    host: str
    port: int
    local: Address
    connection: Connection | None = None

    @property
    def peer(self) -> Peer:
        return Peer(self.transport.lower(), self.host, self.port)

    @property
    def address(self) -> Address:
        return (self.host, self.port)

    def __str__(self) -> str:
        return f"{self.transport} {format_address(self.address)}"


@dataclass(slots=True)
class EndpointStats:
    """Counters for tests, benches and metrics."""

    received: int = 0
    sent: int = 0
    malformed: int = 0
    rejected: int = 0
    """Malformed requests answered with a stateless 4xx/5xx (RFC 3261 §8.2)."""
    foreign: int = 0
    """Non-SIP datagrams taken by :meth:`SipEndpoint.on_foreign_datagram`."""
    requests: int = 0
    responses: int = 0
    stray_responses: int = 0
    transport_errors: int = 0


class IncomingRequest:
    """A request handed to the TU, with its server transaction (None for an ACK)."""

    __slots__ = (
        "_final",
        "cancelled",
        "dialog",
        "dialog_headers",
        "endpoint",
        "request",
        "source",
        "transaction",
        "wire_size",
    )

    def __init__(
        self,
        endpoint: SipEndpoint,
        request: Request,
        transaction: ServerTransaction | None,
        source: Source,
        *,
        wire_size: int = 0,
    ) -> None:
        self.endpoint = endpoint
        self.request = request
        self.transaction = transaction
        self.source = source
        self.wire_size = wire_size
        """The request's size in bytes as received (0 when it did not come off the wire)."""
        self.cancelled = False
        self._final = False
        self.dialog: Dialog | None = None
        """The dialog the request belongs to (None outside a dialog or without a dialog layer)."""
        self.dialog_headers: tuple[tuple[str, str], ...] = ()
        """Headers the dialog layer wants in the 2xx (RFC 4028 Session-Expires)."""

    @property
    def answered(self) -> bool:
        """True once a final response was sent."""
        return self._final

    def respond(
        self,
        status: int,
        reason: str | None = None,
        *,
        to_tag: str | None = None,
        headers: tuple[tuple[str, str], ...] | list[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> Response:
        """Build a response (§8.2.6) and send it through the transaction."""
        response = make_response(
            self.request,
            status,
            reason,
            to_tag=to_tag,
            headers=headers,
            body=body,
            content_type=content_type,
        )
        self.send(response)
        return response

    def send(self, response: Response) -> None:
        """Send an already built response through the server transaction."""
        if self.transaction is None:
            raise LocalSipError(f"{self.request.method} has no transaction to answer through")
        if response.status >= 200:
            self._final = True
        self.endpoint.send_response(self.transaction, response)
