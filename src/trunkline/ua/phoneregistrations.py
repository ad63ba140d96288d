"""A phone's registrations: its accounts kept registered at their registrars (RFC 3261 §10.2).

:class:`PhoneRegistrations` is the part of :class:`~trunkline.ua.phone.Phone`
that builds an :class:`~trunkline.ua.registration.Account` for the phone's
user, runs one sans-IO :class:`~trunkline.ua.registration.RegistrationClient`
per account over the phone's endpoint (its requests, responses and one timer)
and hands the clients' events to the phone's event queue.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from trunkline.sip.aio.transport import TransportError
from trunkline.sip.errors import LocalSipError, SipError
from trunkline.ua.phoneevents import PhoneConfig, PhoneEvent, RegistrationUpdate, aor_for
from trunkline.ua.registration import (
    Account,
    Registered,
    RegistrationClient,
    RegistrationEvent,
    RegistrationFailed,
    RegistrationState,
    Unregistered,
)

if TYPE_CHECKING:
    from trunkline.sip.aio.endpoint import SipEndpoint

__all__ = ["PhoneRegistrations"]

logger = logging.getLogger("trunkline.ua.phone")


class PhoneRegistrations:
    """The registration part of :class:`~trunkline.ua.phone.Phone` (a mixin)."""

    if TYPE_CHECKING:
        config: PhoneConfig
        endpoint: SipEndpoint
        registrations: dict[str, RegistrationClient]
        registered_aor: str | None
        _reg_timers: dict[str, asyncio.TimerHandle]
        _reg_waiters: dict[str, list[asyncio.Future[RegistrationEvent]]]
        _closing: bool

        def contact(self) -> str: ...

        def route(self) -> tuple[str, ...]: ...

        def _emit(self, event: PhoneEvent) -> None: ...

        def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]: ...

    def account(
        self,
        aor: str | None = None,
        *,
        registrar: str | None = None,
        expires: int = 3600,
    ) -> Account:
        """An :class:`Account` for this phone's user, contact and password."""
        if aor is None:
            if registrar is None:
                raise LocalSipError("an account needs an AOR or a registrar")
            aor = aor_for(self.config.user, registrar)
        return Account(
            aor=aor,
            contact=self.contact(),
            password=self.config.password,
            username=self.config.auth_user,
            registrar=registrar,
            expires=expires,
            display_name=self.config.display_name,
            route=self.route()[:1] if self.config.outbound_proxy else (),
        )

    async def register(self, account: Account, *, timeout: float = 40.0) -> RegistrationEvent:
        """Register ``account`` and keep it registered; returns the first outcome."""
        client = self.registrations.get(account.aor)
        if client is None:
            client = RegistrationClient(account)
            self.registrations[account.aor] = client
        waiter: asyncio.Future[RegistrationEvent] = self.endpoint.loop.create_future()
        self._reg_waiters.setdefault(account.aor, []).append(waiter)
        client.start(self.endpoint.loop.time())
        self._pump_registration(client)
        try:
            event = await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            return RegistrationFailed(408, "no answer from the registrar", None)
        if isinstance(event, Registered) and self.registered_aor is None:
            self.registered_aor = account.aor
        return event

    async def unregister(self, aor: str, *, timeout: float = 10.0) -> RegistrationEvent | None:
        """Remove the binding of ``aor`` (expires=0, §10.2.2)."""
        client = self.registrations.get(aor)
        if client is None or client.state is RegistrationState.UNREGISTERED:
            return None
        waiter: asyncio.Future[RegistrationEvent] = self.endpoint.loop.create_future()
        self._reg_waiters.setdefault(aor, []).append(waiter)
        client.stop(self.endpoint.loop.time())
        self._pump_registration(client)
        try:
            while True:
                event = await asyncio.wait_for(asyncio.shield(waiter), timeout)
                if isinstance(event, Unregistered):
                    return event
                waiter = self.endpoint.loop.create_future()
                self._reg_waiters.setdefault(aor, []).append(waiter)
        except TimeoutError:
            return None

    def _pump_registration(self, client: RegistrationClient) -> None:
        """Send what the client queued, hand its events up, arm its one timer."""
        aor = client.account.aor
        for request in client.requests_to_send():
            self._spawn(self._send_register(client, request))
        while (event := client.next_event()) is not None:
            logger.info("registration %s: %s", aor, event)
            self._emit(RegistrationUpdate(client.account, event))
            for waiter in self._reg_waiters.pop(aor, []):
                if not waiter.done():
                    waiter.set_result(event)
        old = self._reg_timers.pop(aor, None)
        if old is not None:
            old.cancel()
        at = client.get_timer()
        if (at is not None and not self._closing) or (
            at is not None and client.state is RegistrationState.UNREGISTERING
        ):
            self._reg_timers[aor] = self.endpoint.loop.call_at(at, self._registration_timer, client)

    def _registration_timer(self, client: RegistrationClient) -> None:
        self._reg_timers.pop(client.account.aor, None)
        client.handle_timer(self.endpoint.loop.time())
        self._pump_registration(client)

    async def _send_register(self, client: RegistrationClient, request: Any) -> None:
        try:
            response = await self.endpoint.send_request(request)
        except (TransportError, SipError, ValueError, OSError) as exc:
            client.handle_timeout(self.endpoint.loop.time(), str(exc))
        else:
            client.handle_response(response, self.endpoint.loop.time())
        self._pump_registration(client)
