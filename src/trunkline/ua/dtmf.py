"""DTMF of a call: RFC 4733 telephone-events or SIP INFO, both ways.

Sending prefers RFC 4733 events on the call's RTP stream (the media layer
encodes them) and falls back to SIP INFO with an ``application/dtmf-relay``
body when no telephone-event payload was negotiated; receiving accepts both,
INFO bodies as ``Signal=5`` / ``Duration=160`` lines (the de facto
``application/dtmf-relay`` format) or a bare digit (``application/dtmf``).
:class:`DtmfMixin` is the part of :class:`~trunkline.ua.call.Call` that does it.
"""

from __future__ import annotations

import asyncio

from trunkline.media.codecs.base import CodecError
from trunkline.media.codecs.telephone_event import DigitReceived
from trunkline.sip.aio.endpoint import IncomingRequest
from trunkline.sip.message import Request
from trunkline.ua.callevents import DtmfReceived
from trunkline.ua.callpart import CallPart

__all__ = ["DTMF_DIGITS", "DTMF_RELAY", "DtmfMixin", "dtmf_relay_body", "parse_dtmf_info"]

DTMF_RELAY = "application/dtmf-relay"
DTMF_DIGITS = frozenset("0123456789*#ABCD")
"""The sixteen DTMF events (RFC 4733 §3.2, events 0-15)."""


def dtmf_relay_body(digit: str, duration_ms: int) -> bytes:
    """An ``application/dtmf-relay`` INFO body for one digit."""
    return f"Signal={digit}\r\nDuration={duration_ms}\r\n".encode()


def parse_dtmf_info(request: Request) -> tuple[str, float] | None:
    """(digit, duration in ms) of a DTMF INFO request, or None when it carries none."""
    ctype = (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    digit: str | None = None
    duration = 0.0
    if ctype == DTMF_RELAY:
        for line in request.body.decode("utf-8", "replace").splitlines():
            name, _, value = line.partition("=")
            name, value = name.strip().lower(), value.strip()
            if name == "signal" and value:
                digit = value.upper()
            elif name == "duration" and value.isdigit():
                duration = float(value)
    elif ctype == "application/dtmf" and request.body.strip():
        digit = request.body.decode("utf-8", "replace").strip().upper()
    if digit is None or digit not in DTMF_DIGITS:
        return None
    return digit, duration


class DtmfMixin(CallPart):
    """Sending and receiving DTMF; mixed into :class:`~trunkline.ua.call.Call`."""

    def _on_rfc4733(self, digit: DigitReceived) -> None:
        self._emit(DtmfReceived(self._as_call(), digit.digit, digit.duration_ms, "rfc4733"))

    def _info(self, incoming: IncomingRequest) -> None:
        """SIP INFO DTMF (``application/dtmf-relay``, ``Signal=5``); answered 200 always."""
        found = parse_dtmf_info(incoming.request)
        incoming.respond(200)
        if found is not None:
            self._emit(DtmfReceived(self._as_call(), found[0], found[1], "info"))

    async def send_dtmf(
        self, digits: str, *, method: str = "rfc4733", duration_ms: int = 160
    ) -> None:
        """Send ``digits`` as RFC 4733 events (falls back to INFO) or SIP INFO."""
        for digit in digits.upper():
            if digit not in DTMF_DIGITS:
                continue
            if method == "rfc4733" and self.media is not None:
                try:
                    self.media.send_dtmf(digit, duration_ms)
                except CodecError:
                    method = "info"
                else:
                    await asyncio.sleep(duration_ms / 1000 + 0.1)
                    continue
            body = dtmf_relay_body(digit, duration_ms)
            await self._request("INFO", body=body, content_type=DTMF_RELAY)
