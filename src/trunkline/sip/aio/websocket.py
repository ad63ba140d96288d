"""SIP over WebSocket and secure WebSocket (RFC 7118).

A WS/WSS connection is a :class:`~trunkline.sip.aio.transport.Connection`
whose bytes go through the sans-IO WebSocket engine of the ``websockets``
package instead of SIP's Content-Length framing: RFC 7118 §5 puts each SIP
message in exactly one WebSocket message (text or binary), so no SIP framing
is needed. The opening handshake negotiates the ``sip`` subprotocol
(RFC 7118 §4.1); a server refuses a client that does not offer it. TLS for
WSS comes from asyncio's ``ssl`` support exactly as for SIP over TLS.

Importing this module registers ``WS`` and ``WSS`` in
:data:`~trunkline.sip.aio.transport.CONNECTION_FACTORIES`.
"""

from __future__ import annotations

import logging

from websockets.client import ClientProtocol
from websockets.exceptions import InvalidState
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from trunkline.sip.aio.trace import format_address, trace_message
from trunkline.sip.aio.transport import (
    CONNECTION_FACTORIES,
    Connection,
    TransportError,
    TransportLayer,
)

logger = logging.getLogger("trunkline.sip.transport")

SIP_SUBPROTOCOL = Subprotocol("sip")


class WebSocketConnection(Connection):
    """One SIP-over-WebSocket connection, client or server side."""

    def __init__(
        self,
        layer: TransportLayer,
        name: str,
        *,
        outbound: bool,
        server_name: str | None = None,
        path: str = "/",
    ) -> None:
        super().__init__(layer, name, outbound=outbound, server_name=server_name)
        self.path = path
        self._fragments: list[bytes] = []
        self._ws: ClientProtocol | ServerProtocol
        if outbound:
            scheme = "wss" if name == "WSS" else "ws"
            host = server_name or "localhost"
            if ":" in host and not host.startswith("["):
                host = f"[{host}]"
            self._ws = ClientProtocol(
                parse_uri(f"{scheme}://{host}{path}"),
                subprotocols=[SIP_SUBPROTOCOL],
                max_size=layer.max_message,
            )
        else:
            self._ws = ServerProtocol(subprotocols=[SIP_SUBPROTOCOL], max_size=layer.max_message)

    def on_open(self) -> None:
        """Start the opening handshake; ``ready`` resolves when it completes."""
        if isinstance(self._ws, ClientProtocol):
            self._ws.send_request(self._ws.connect())
            self._flush()

    def data_received(self, data: bytes) -> None:
        self.last_activity = self.layer.loop.time()
        self._ws.receive_data(data)
        for event in self._ws.events_received():
            if isinstance(event, Request):
                self._answer_handshake(event)
            elif isinstance(event, Response):
                self._handshake_answered()
            elif isinstance(event, Frame):
                self._frame(event)
        self._flush()

    def eof_received(self) -> bool | None:
        self._ws.receive_eof()
        self._flush()
        return None

    def _answer_handshake(self, request: Request) -> None:
        assert isinstance(self._ws, ServerProtocol)
        response = self._ws.accept(request)
        if response.status_code == 101 and self._ws.subprotocol != SIP_SUBPROTOCOL:
            response = self._ws.reject(400, "the sip subprotocol is required (RFC 7118)\n")
        self._ws.send_response(response)
        if response.status_code == 101:
            self.path = request.path
            if not self.ready.done():
                self.ready.set_result(None)
        else:
            logger.info("%r: WebSocket handshake refused (%d)", self, response.status_code)

    def _handshake_answered(self) -> None:
        if self._ws.state is State.OPEN and self._ws.subprotocol == SIP_SUBPROTOCOL:
            if not self.ready.done():
                self.ready.set_result(None)
            return
        reason = self._ws.handshake_exc or "server did not accept the sip subprotocol"
        if not self.ready.done():
            self.ready.set_exception(TransportError(f"WebSocket handshake failed: {reason}"))
        self.abort()

    def _frame(self, frame: Frame) -> None:
        if frame.opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT):
            self._fragments.append(bytes(frame.data))
            if frame.fin:
                message = b"".join(self._fragments)
                self._fragments.clear()
                if message.strip(b"\r\n"):
                    self.deliver(message)

    def _flush(self) -> None:
        out = self._ws.data_to_send()
        if self._transport is None or self._transport.is_closing():
            return
        for chunk in out:
            if chunk:
                self._transport.write(chunk)
            elif self._transport.can_write_eof():  # the engine asks for a half-close
                self._transport.write_eof()
        if self._ws.close_expected() and self._ws.state is State.CLOSED:
            self._transport.close()

    def send(self, data: bytes) -> None:
        if self.closed or self._ws.state is not State.OPEN:
            raise TransportError(f"{self!r} is not open")
        try:
            self._ws.send_text(data)
        except InvalidState as exc:
            raise TransportError(str(exc)) from exc
        self._flush()
        self.last_activity = self.layer.loop.time()
        trace_message(True, self.name, self.peer, data)

    def ping(self) -> None:
        """WebSocket ping as the keep-alive (RFC 7118 has no CRLF keep-alive)."""
        self.ping_sent_at = None  # the WebSocket engine answers pongs itself
        if self._ws.state is State.OPEN:
            self._ws.send_ping(b"")
            self._flush()

    def close(self) -> None:
        if not self.closed and self._ws.state is State.OPEN:
            try:
                self._ws.send_close()
                self._flush()
            except InvalidState:
                pass
        super().close()

    def __repr__(self) -> str:
        direction = "out" if self.outbound else "in"
        return f"<{self.name} {direction} {format_address(self.peer)}{self.path}>"


CONNECTION_FACTORIES["WS"] = WebSocketConnection
CONNECTION_FACTORIES["WSS"] = WebSocketConnection
