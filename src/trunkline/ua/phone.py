"""The user agent: one SIP endpoint, its accounts, and its calls.

:class:`Phone` is what the ``trunkline phone`` command, the PBX and the
WebRTC gateway build on. It owns a :class:`~trunkline.sip.aio.endpoint.SipEndpoint`
(transports, transactions, dialogs), drives one sans-IO
:class:`~trunkline.ua.registration.RegistrationClient` per account over it
(RFC 3261 §10.2), places calls and routes every request to the
:class:`~trunkline.ua.call.Call` whose dialog it belongs to::

    phone = await Phone.start(PhoneConfig(host="127.0.0.1", port=5092))
    await phone.register(Account(...))        # optional
    call = phone.call("sip:bob@example.com")  # Call, already dialling
    result = await call.dial_task             # None once connected
    await call.hangup()
    await phone.close()                       # hangs up, unregisters, closes

Incoming calls appear on :attr:`Phone.events` as :class:`IncomingCall`
(the call already sent 180); with ``auto_answer`` they are answered unless
another call is up. A second INVITE while a call is up is call waiting: it
rings too, and answering it puts the first call on hold (RFC 6337 §5.3
practice; the application decides).

Our From is the address-of-record (RFC 3261 §8.1.1.3): the configured one,
else the one we registered. While registered (and without an outbound
proxy) new calls go through the registrar as a pre-loaded loose route
(§8.1.2), as deployed softphones do. Behind a NAT, ``stun_server`` makes the
SIP socket and each call's RTP socket learn their public addresses by STUN
(RFC 5389) for the Contact and the SDP. A caller's CANCEL reaches the ringing
call through :class:`PhoneEndpoint`, the endpoint's CANCEL hook (§9.2).
The configuration and the events are :mod:`trunkline.ua.phoneevents`, the
endpoint :mod:`trunkline.ua.phoneendpoint`, the registrations
:mod:`trunkline.ua.phoneregistrations`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from dataclasses import replace
from typing import Any

from trunkline.sip.aio.endpoint import IncomingRequest, SipEndpoint
from trunkline.sip.aio.routing import Destination
from trunkline.sip.auth import DigestClient
from trunkline.sip.errors import LocalSipError, SipError
from trunkline.sip.events import DialogStateChanged, Event
from trunkline.sip.headers import NameAddr, Replaces
from trunkline.ua.call import Call
from trunkline.ua.callevents import CallDirection, CallEnded, CallEvent, CallResult
from trunkline.ua.nat import StunError, parse_server, resolve_server
from trunkline.ua.phoneendpoint import PhoneEndpoint, local_address_for
from trunkline.ua.phoneevents import (
    TRANSPORTS,
    IncomingCall,
    PhoneConfig,
    PhoneEvent,
    RegistrationUpdate,
    TransferRequested,
    aor_for,
    describe,
    sip_uri,
)
from trunkline.ua.phoneregistrations import PhoneRegistrations
from trunkline.ua.registration import (
    RegistrationClient,
    RegistrationEvent,
    RegistrationState,
)
from trunkline.ua.transfer import ReferTarget

__all__ = [
    "CallResult",
    "IncomingCall",
    "Phone",
    "PhoneConfig",
    "PhoneEndpoint",
    "PhoneEvent",
    "RegistrationUpdate",
    "TransferRequested",
    "aor_for",
    "describe",
    "local_address_for",
]

logger = logging.getLogger(__name__)


class Phone(PhoneRegistrations):
    """A SIP user agent; build it with :meth:`start`."""

    def __init__(self, config: PhoneConfig, endpoint: SipEndpoint) -> None:
        self.config = config
        self.endpoint = endpoint
        self.events: asyncio.Queue[PhoneEvent] = asyncio.Queue()
        self.calls: dict[str, Call] = {}
        self.registrations: dict[str, RegistrationClient] = {}
        self._reg_timers: dict[str, asyncio.TimerHandle] = {}
        self._reg_waiters: dict[str, list[asyncio.Future[RegistrationEvent]]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
        self.public_address: tuple[str, int] | None = None
        """Our SIP socket's address outside the NAT, as STUN reported it."""
        self.stun_error: str | None = None
        """Why STUN discovery failed (the phone then uses its local address)."""
        self.call_config = config.call
        """The :class:`CallConfig` of new calls (with the resolved STUN server)."""
        self.registered_aor: str | None = None
        """The AOR of the first successful registration (our From when none is configured)."""
        self.digest: DigestClient | None = None
        if config.password is not None:
            self.digest = DigestClient(config.auth_user or config.user, config.password)
        endpoint.on_request = self._on_request
        endpoint.on_event = self._on_event
        if isinstance(endpoint, PhoneEndpoint):
            endpoint.on_cancelled = self._on_cancelled

    @classmethod
    async def start(cls, config: PhoneConfig) -> Phone:
        """Open the endpoint and listen on ``config.transport`` at ``host:port``."""
        transport = config.transport.lower()
        if transport not in TRANSPORTS:
            raise LocalSipError(f"unknown transport {config.transport!r}")
        endpoint = PhoneEndpoint(
            client_ssl=config.client_ssl,
            keepalive_interval=config.keepalive_interval,
            user_agent=config.call.user_agent,
        )
        try:
            if transport == "tls" and config.ssl_context is None:
                # Client-only TLS: connections go out (verified with client_ssl) and the
                # server sends back over them (RFC 5626 §5.2 flows); nothing to listen on.
                await endpoint.listen("UDP", config.host, config.port)
            else:
                await endpoint.listen(
                    transport.upper(), config.host, config.port, ssl_context=config.ssl_context
                )
            if transport != "udp" and endpoint.transport.listener_for("UDP") is None:
                # UDP as well, on an ephemeral port: Via fallback and peers that answer on UDP.
                with contextlib.suppress(OSError):
                    await endpoint.listen("UDP", config.host, 0)
        except BaseException:
            await endpoint.close()
            raise
        phone = cls(config, endpoint)
        if config.stun_server and config.contact_address is None:
            try:
                await phone._discover(config.stun_server)
            except BaseException:
                await endpoint.close()
                raise
        return phone

    async def _discover(self, text: str) -> None:
        """STUN (RFC 5389) at start: our public SIP address and the server for RTP."""
        ipv6 = ":" in self.config.host
        try:
            server = await resolve_server(parse_server(text), ipv6=ipv6)
        except (OSError, ValueError) as exc:
            self.stun_error = f"STUN server {text}: {exc}"
            logger.info("%s", self.stun_error)
            return
        self.call_config = replace(self.call_config, stun_server=server)
        if self.transport != "UDP":
            return  # the Contact of a stream flow is fixed by the connection (RFC 5626)
        try:
            local = self.local_address
            assert isinstance(self.endpoint, PhoneEndpoint)
            self.public_address = await self.endpoint.discover_public_address(server, local=local)
        except (StunError, OSError) as exc:
            self.stun_error = f"STUN at {text}: {exc}"
            logger.info("%s", self.stun_error)
        else:
            logger.info("SIP %s is %s outside (STUN)", local, self.public_address)

    @property
    def transport(self) -> str:
        return self.config.transport.upper()

    @property
    def client_only(self) -> bool:
        """True for a TLS phone without a certificate: it accepts no TLS connections,
        requests reach it over the connections it opened (RFC 5626 §5.2)."""
        return self.endpoint.transport.listener_for(self.transport) is None

    @property
    def local_address(self) -> tuple[str, int]:
        """The (host, port) of our main listener (the UDP one of a client-only TLS phone)."""
        ipv6 = ":" in self.config.host
        listener = self.endpoint.transport.listener_for(
            self.transport, ipv6
        ) or self.endpoint.transport.listener_for("UDP", ipv6)
        if listener is None:
            raise LocalSipError("the phone is not listening")
        return listener.host, listener.port

    def contact(self) -> str:
        """Our Contact URI (§8.1.1.8): at ``contact_address`` when one is configured,
        else at the public address STUN reported, else at our listener."""
        ipv6 = ":" in self.config.host
        if self.endpoint.transport.listener_for(self.transport, ipv6) is not None:
            uri = self.endpoint.contact_uri(self.transport, user=self.config.user, ipv6=ipv6)
        else:  # client-only TLS: the server reaches us over our connection, not this address
            host, port = self.local_address
            if ":" in host:
                host = f"[{host}]"
            uri = f"sips:{self.config.user}@{host}:{port};transport=tls"
        public = self.config.contact_address or self.public_address
        if public is None:
            return uri
        host, port = public
        if ":" in host:
            host = f"[{host}]"
        scheme, _, rest = uri.partition(":")
        _, _, params = rest.partition(";")
        suffix = f";{params}" if params else ""
        return f"{scheme}:{self.config.user}@{host}:{port}{suffix}"

    def identity(self) -> NameAddr:
        """Our From (RFC 3261 §8.1.1.3: the address-of-record of the user).

        The configured AOR, else the AOR we registered, else ``user@`` the
        outbound proxy's domain, else ``sip:user@host:port`` (no server at all).
        """
        uri = self.config.identity or self.registered_aor
        if uri is None and self.config.outbound_proxy:
            uri = aor_for(self.config.user, self.config.outbound_proxy)
        if uri is None:
            host, port = self.local_address
            if ":" in host:
                host = f"[{host}]"
            uri = f"sip:{self.config.user}@{host}:{port}"
        return NameAddr(self.config.display_name, uri, {})

    def route(self) -> tuple[str, ...]:
        """The pre-loaded Route of a new call (RFC 3261 §8.1.2).

        The outbound proxy when one is configured; else, while an account is
        registered, its registrar: a registered phone places its calls through
        the server it registered with (which authenticates and locates the
        callee), as deployed softphones do, not straight to the callee's host.
        """
        if self.config.outbound_proxy:
            return (f"<{sip_uri(self.config.outbound_proxy)};lr>",)
        for client in self.registrations.values():
            if client.state in (RegistrationState.REGISTERED, RegistrationState.REFRESHING):
                return (f"<{client.registrar};lr>",)
        return ()

    def _emit(self, event: PhoneEvent) -> None:
        self.events.put_nowait(event)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _watch(self, call: Call) -> None:
        self.calls[call.call_id] = call
        call.on_refer = self._on_refer

        def forward(event: CallEvent) -> None:
            if isinstance(event, CallEnded):
                self.calls.pop(call.call_id, None)
            self._emit(event)

        call.on_event = forward

    @property
    def active_call(self) -> Call | None:
        """The call that is connected (not on hold), else any call that is up."""
        up = [c for c in self.calls.values() if c.is_active]
        return next((c for c in up if not c.local_hold), up[0] if up else None)

    # -- calls ---------------------------------------------------------------------
    def call(
        self,
        uri: str,
        *,
        destination: Destination | None = None,
        extra_headers: tuple[tuple[str, str], ...] = (),
    ) -> Call:
        """Dial ``uri``; the call's :attr:`Call.dial_task` ends at the final response.

        Without an explicit ``destination`` the INVITE goes through :meth:`route`.
        """
        route = self.route() if destination is None else ()
        call = Call.outgoing(
            self.endpoint,
            uri,
            from_=self.identity(),
            contact=f"<{self.contact()}>",
            config=self.call_config,
            digest=self.digest,
            route=route,
            destination=destination,
            extra_headers=extra_headers,
        )
        self._watch(call)
        call.dial_task = self._spawn(call.dial())
        return call

    async def _on_request(self, incoming: IncomingRequest) -> None:
        request = incoming.request
        call = self.calls.get(request.call_id)
        if incoming.dialog is not None or request.to_tag is not None:
            if (
                call is not None
                and call.direction is CallDirection.INCOMING
                and (call.dialog is None)
            ):
                call.dialog = incoming.dialog
            if call is not None:
                await call.handle_request(incoming)
            elif incoming.transaction is not None:
                # The dialog layer accepted it, so the dialog exists: a BYE racing our own end.
                incoming.respond(200 if request.method == "BYE" else 481)
            return
        if request.method == "INVITE":
            if call is not None:  # a retransmission seen as new, or a loop
                incoming.respond(482, "Loop Detected")
                return
            await self._incoming_call(incoming)
        elif request.method == "ACK":
            if call is not None:
                await call.handle_request(incoming)
        elif incoming.transaction is None:
            return
        elif request.method == "OPTIONS":
            incoming.respond(200, headers=[("Accept", "application/sdp")])
        elif request.method == "NOTIFY":
            incoming.respond(200)  # unsolicited message-summary and the like
        else:
            incoming.respond(405, headers=[("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS")])

    async def _incoming_call(self, incoming: IncomingRequest) -> None:
        if self._closing:
            incoming.respond(480, "Temporarily Unavailable")
            return
        replaced: Call | None = None
        value = incoming.request.headers.get("Replaces")
        if value is not None:
            replaced = self._replaced_call(value)
            if replaced is None:  # RFC 3891 §3: no such dialog
                incoming.respond(481, "Call/Transaction Does Not Exist")
                return
        busy = self.active_call is not None and replaced is None
        call = Call.incoming(self.endpoint, incoming, self.call_config)
        call.contact = f"<{self.contact()}>"
        self._watch(call)
        if call.result is not None:  # rejected at once (bad SDP)
            return
        if replaced is not None:
            # RFC 3891 §3: the new call takes over at once, the replaced one ends with BYE.
            call.take_media_from(replaced)
            self._emit(IncomingCall(call, waiting=False))
            if await call.answer():
                await replaced.hangup()
            return
        call.ring()
        self._emit(IncomingCall(call, waiting=busy))
        if self.config.auto_answer and not busy:
            if self.config.answer_delay > 0:
                await asyncio.sleep(self.config.answer_delay)
            await call.answer()

    async def answer_waiting(self, call: Call) -> bool:
        """Call waiting: hold the current call, then answer ``call``."""
        current = self.active_call
        if current is not None and current is not call:
            await current.hold()
        return await call.answer()

    def _replaced_call(self, value: str) -> Call | None:
        try:
            replaces = Replaces.parse(value)
        except SipError:
            return None
        call = self.calls.get(replaces.call_id)
        dialog = call.dialog if call is not None else None
        if dialog is None or dialog.local_tag != replaces.to_tag:
            return None
        if dialog.remote_tag != replaces.from_tag or not call.is_active:  # type: ignore[union-attr]
            return None
        return call

    async def _on_refer(self, call: Call, incoming: IncomingRequest) -> None:
        """Transferee side of RFC 3515: 202, INVITE the target, NOTIFY the progress."""
        value = incoming.request.headers.get("Refer-To")
        try:
            if value is None:
                raise SipError("REFER without Refer-To")
            target = ReferTarget.parse(value)
        except SipError as exc:
            incoming.respond(400, f"Bad Refer-To: {exc}"[:60])
            return
        incoming.respond(202, "Accepted")
        await call.notify_transfer(100, "Trying")
        referred_by = incoming.request.headers.get("Referred-By")
        headers = list(target.extra_headers)
        if referred_by is not None and not any(n.lower() == "referred-by" for n, _ in headers):
            headers.append(("Referred-By", referred_by))
        new_call = self.call(str(target.uri), extra_headers=tuple(headers))
        new_call.take_media_from(call)
        self._emit(TransferRequested(call, new_call, target))
        assert new_call.dial_task is not None
        result = await new_call.dial_task
        if result is None:
            await call.notify_transfer(200, "OK")
            # The transferor hangs up on the final NOTIFY; do it ourselves if it does not.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(call.ended.wait(), 5.0)
            if not call.ended.is_set():
                await call.hangup()
        else:
            await call.notify_transfer(new_call.status or 500)

    def _on_cancelled(self, incoming: IncomingRequest) -> None:
        """The caller cancelled a ringing call (the endpoint already sent 487, §9.2)."""
        call = self.calls.get(incoming.request.call_id)
        if call is not None and call.incoming_request is incoming:
            call.peer_cancelled()

    def _on_event(self, event: Event) -> None:
        if isinstance(event, DialogStateChanged) and event.dialog.terminated:
            call = self.calls.get(event.dialog.call_id)
            if call is not None and call.dialog is event.dialog:
                # After the request handler already queued (a BYE's handler answers 200
                # and ends the call with its own reason): call_soon runs in FIFO order.
                reason = f"dialog ended: {event.reason}"
                self.endpoint.loop.call_soon(call.dialog_ended, reason)

    # -- shutdown ------------------------------------------------------------------
    async def close(self, *, unregister: bool = True) -> None:
        """Hang up every call, remove our bindings, close the endpoint."""
        self._closing = True
        for call in list(self.calls.values()):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(call.hangup(), 5.0)
        if unregister:
            for aor in list(self.registrations):
                with contextlib.suppress(Exception):
                    await self.unregister(aor, timeout=5.0)
        for handle in self._reg_timers.values():
            handle.cancel()
        self._reg_timers.clear()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        await self.endpoint.close()
