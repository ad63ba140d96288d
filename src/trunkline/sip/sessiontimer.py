"""Session timers (RFC 4028), sans-IO.

Negotiation is a pair of pure functions:

* :func:`uas_negotiate` (§9): a UAS looks at an INVITE or UPDATE; answers
  422 with its Min-SE when the requested interval is too small, otherwise
  picks the interval and the refresher (the one the UAC asked for; else
  ``uac`` when the UAC supports ``timer`` and ``uas`` when it does not) and
  says which headers the 2xx carries.
* :func:`uac_negotiate` (§7.2): a UAC reads the 2xx to learn the interval
  and who refreshes; without Session-Expires in the 2xx the UAS does not
  do session timers and the UAC refreshes on its own if it asked for them.
* :func:`interval_after_422` (§7.4): the interval to retry with.

:class:`SessionTimer` then holds one deadline per dialog: the refresher
refreshes at half the interval (§10); the other side sends BYE when no
refresh arrived by ``interval - min(32, interval / 3)`` (§10).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from trunkline.sip.errors import SipParseError
from trunkline.sip.grammar import parse_uint
from trunkline.sip.message import Request, Response

OPTION_TAG = "timer"
MIN_SE_FLOOR = 90
"""The smallest Min-SE allowed (RFC 4028 §4: "MUST NOT be less than 90")."""


@dataclass(frozen=True, slots=True)
class SessionTimerConfig:
    """Our wishes: the interval we ask for and the smallest we accept."""

    session_expires: int = 1800
    min_se: int = MIN_SE_FLOOR

    def request_headers(self, interval: int | None = None) -> list[tuple[str, str]]:
        """Headers for an INVITE/UPDATE that asks for session timers (§7.1)."""
        return [
            ("Supported", OPTION_TAG),
            ("Session-Expires", str(interval if interval is not None else self.session_expires)),
            ("Min-SE", str(self.min_se)),
        ]


@dataclass(frozen=True, slots=True)
class Negotiated:
    """The agreed interval and who refreshes (``"uac"`` or ``"uas"``)."""

    interval: int
    refresher: str

    def local_refreshes(self, we_are_uac: bool) -> bool:
        """True when we must send the refreshes."""
        return (self.refresher == "uac") == we_are_uac


@dataclass(frozen=True, slots=True)
class UasDecision:
    """What :func:`uas_negotiate` decided."""

    status: int | None
    """422 when the interval is too small, else None (go on)."""
    headers: list[tuple[str, str]]
    """Headers for the 422, or for the 2xx."""
    negotiated: Negotiated | None


def _interval(message: Request | Response) -> tuple[int | None, str | None]:
    se = message.session_expires
    if se is None:
        return None, None
    try:
        value = parse_uint(se.value, "Session-Expires")
    except SipParseError:
        return None, None
    refresher = se.param("refresher")
    return value, refresher.lower() if refresher else None


def min_se_of(message: Request | Response) -> int | None:
    """The Min-SE header value, or None (§5)."""
    text = message.headers.get("Min-SE")
    if text is None:
        return None
    try:
        return parse_uint(text.split(";", 1)[0].strip(), "Min-SE")
    except SipParseError:
        return None


def uas_negotiate(request: Request, config: SessionTimerConfig) -> UasDecision:
    """The UAS side of RFC 4028 §9 for an INVITE or UPDATE."""
    asked, refresher = _interval(request)
    uac_supports = OPTION_TAG in request.supported or OPTION_TAG in request.require
    if asked is not None and asked < config.min_se:
        return UasDecision(422, [("Min-SE", str(config.min_se))], None)
    if asked is None:
        # The UAC did not ask; we may still run the timer ourselves (§9).
        floor = max(config.min_se, min_se_of(request) or MIN_SE_FLOOR)
        interval = max(config.session_expires, floor)
    else:
        # We may shorten the interval, but never below the request's Min-SE.
        floor = max(config.min_se, min_se_of(request) or MIN_SE_FLOOR)
        interval = max(min(asked, config.session_expires), floor)
    if refresher not in ("uac", "uas"):
        refresher = "uac" if uac_supports else "uas"
    if not uac_supports:
        refresher = "uas"  # a UAC without the extension cannot refresh (§9)
    headers = [("Session-Expires", f"{interval};refresher={refresher}")]
    if uac_supports:
        headers.append(("Require", OPTION_TAG))
    return UasDecision(None, headers, Negotiated(interval, refresher))


def uac_negotiate(request: Request, response: Response) -> Negotiated | None:
    """The UAC side of RFC 4028 §7.2, from the 2xx to our INVITE/UPDATE."""
    interval, refresher = _interval(response)
    if interval is not None:
        return Negotiated(interval, refresher if refresher in ("uac", "uas") else "uac")
    asked, _ = _interval(request)
    if asked is not None:
        return Negotiated(asked, "uac")  # the UAS lacks the extension: we refresh
    return None


def interval_after_422(response: Response, config: SessionTimerConfig) -> int:
    """The Session-Expires to retry with after a 422 (§7.4)."""
    return max(min_se_of(response) or MIN_SE_FLOOR, config.min_se, MIN_SE_FLOOR)


class SessionTimerAction(enum.Enum):
    """What a fired session timer asks for."""

    REFRESH = "refresh"
    EXPIRE = "expire"


class SessionTimer:
    """The one deadline a dialog's session timer keeps (RFC 4028 §10)."""

    def __init__(self) -> None:
        self.negotiated: Negotiated | None = None
        self.local_refresher = False
        self.deadline: float | None = None

    def start(self, negotiated: Negotiated, *, we_are_uac: bool, now: float) -> None:
        """(Re)start after a successful INVITE/UPDATE carrying the timer."""
        self.negotiated = negotiated
        self.local_refresher = negotiated.local_refreshes(we_are_uac)
        interval = float(negotiated.interval)
        if self.local_refresher:
            self.deadline = now + interval / 2
        else:
            self.deadline = now + interval - min(32.0, interval / 3)

    def stop(self) -> None:
        """The dialog ended."""
        self.deadline = None

    def get_timer(self) -> float | None:
        """The refresh or expiry deadline."""
        return self.deadline

    def handle_timer(self, now: float) -> SessionTimerAction | None:
        """REFRESH when we must refresh, EXPIRE when the peer failed to."""
        if self.deadline is None or now < self.deadline:
            return None
        self.deadline = None
        return SessionTimerAction.REFRESH if self.local_refresher else SessionTimerAction.EXPIRE
