"""Transfer from a call's side: REFER out, NOTIFY progress both ways (RFC 3515, RFC 3891).

:meth:`TransferMixin.transfer` sends REFER (with ``Replaces`` for an attended
transfer) and follows the NOTIFYs to the referred call's final status;
:meth:`TransferMixin.notify_transfer` reports a referred call's progress to
the transferor; an incoming NOTIFY of the refer subscription becomes a
:class:`~trunkline.ua.callevents.TransferProgress` event. The I/O-free pieces
(sipfrag, ``Refer-To``, ``Subscription-State``) are :mod:`trunkline.ua.transfer`.
:class:`TransferMixin` is the part of :class:`~trunkline.ua.call.Call` that does it.
"""

from __future__ import annotations

import asyncio
import logging

from trunkline.sip.aio.endpoint import IncomingRequest
from trunkline.sip.errors import LocalSipError, SipError
from trunkline.sip.headers import Replaces
from trunkline.ua.callevents import TransferProgress
from trunkline.ua.callpart import CallPart
from trunkline.ua.transfer import SIPFRAG, notify_headers, parse_sipfrag, refer_to_value, sipfrag

__all__ = ["TransferMixin"]

logger = logging.getLogger("trunkline.ua.call")


class TransferMixin(CallPart):
    """REFER and its NOTIFYs; mixed into :class:`~trunkline.ua.call.Call`."""

    def _notify(self, incoming: IncomingRequest) -> None:
        """A NOTIFY of the refer subscription (RFC 3515 §2.4.4): the referred call's status."""
        request = incoming.request
        event = (request.headers.get("Event") or "").split(";")[0].strip().lower()
        if event != "refer":
            incoming.respond(489, "Bad Event")
            return
        incoming.respond(200)
        try:
            status, reason = parse_sipfrag(request.body)
        except SipError as exc:
            logger.info("call %s: NOTIFY without a usable sipfrag: %s", self.call_id, exc)
            return
        self._emit(TransferProgress(self._as_call(), status, reason))
        if self._transfer_status is not None:
            self._transfer_status.put_nowait((status, reason))

    async def transfer(
        self, target: str, *, replaces: Replaces | None = None, timeout: float = 32.0
    ) -> int:
        """Transfer the peer to ``target`` with REFER (RFC 3515); hang up on success.

        ``replaces`` names a dialog for an attended transfer (RFC 3891). Returns
        the final status of the referred call as the NOTIFYs report it (or the
        REFER's own failure status; 408 when no final NOTIFY came in time).
        """
        if not self.is_active or self.dialog is None:
            raise LocalSipError("only a connected call can be transferred")
        self._transfer_status = asyncio.Queue()
        headers = [
            ("Refer-To", refer_to_value(target, replaces)),
            ("Referred-By", f"<{self.dialog.local.uri}>"),
        ]
        response = await self._request("REFER", extra_headers=headers)
        if not 200 <= response.status < 300:
            self._transfer_status = None
            return response.status
        status = 408
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            try:
                status, _ = await asyncio.wait_for(
                    self._transfer_status.get(), deadline - loop.time()
                )
            except TimeoutError:
                status = 408
                break
            if status >= 200:
                break
        self._transfer_status = None
        if 200 <= status < 300 and not self.ended.is_set():
            await self.hangup()
        return status

    async def notify_transfer(self, status: int, reason: str | None = None) -> None:
        """Report a referred call's progress to the transferor (NOTIFY, RFC 3515 §2.4.5)."""
        if self.dialog is None or self.dialog.terminated:
            return
        try:
            await self._request(
                "NOTIFY",
                body=sipfrag(status, reason),
                content_type=SIPFRAG,
                extra_headers=notify_headers(status),
            )
        except (LocalSipError, OSError, ValueError) as exc:
            logger.info("call %s: NOTIFY not sent: %s", self.call_id, exc)
