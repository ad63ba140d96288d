"""Call transfer: REFER with NOTIFY sipfrag progress (RFC 3515) and Replaces (RFC 3891).

The pieces a :class:`~trunkline.ua.call.Call` and the
:class:`~trunkline.ua.phone.Phone` combine, kept free of I/O:

* :class:`ReferTarget` -- the ``Refer-To`` of a REFER (RFC 3515 §2.1) split
  into the URI to INVITE and the header fields the URI carries, notably
  ``Replaces`` (RFC 3891 §3; attended transfer) -- and
  :func:`refer_to_value`, which builds one (``?Replaces=`` escaped as
  RFC 3261 §19.1.1 asks);
* :func:`sipfrag` / :func:`parse_sipfrag` -- the ``message/sipfrag`` body of
  the NOTIFYs that report the referred call's progress (RFC 3515 §2.4.5,
  RFC 3420): a status line such as ``SIP/2.0 180 Ringing``;
* :func:`notify_headers` -- ``Event: refer`` and ``Subscription-State``
  (``active`` while provisional, ``terminated;reason=noresource`` once final,
  RFC 3515 §2.4.7, RFC 6665 §4.1.3);
* :func:`replaces_for` -- the ``Replaces`` value naming one of our dialogs
  as the UA that will receive the INVITE sees it (to-tag = its tag).
"""

from __future__ import annotations

from dataclasses import dataclass

from trunkline.sip.dialog import Dialog
from trunkline.sip.errors import SipParseError
from trunkline.sip.headers import NameAddr, Replaces
from trunkline.sip.statuses import reason_phrase
from trunkline.sip.uri import SipUri

__all__ = [
    "SIPFRAG",
    "ReferTarget",
    "notify_headers",
    "parse_sipfrag",
    "refer_to_value",
    "replaces_for",
    "sipfrag",
]

SIPFRAG = "message/sipfrag;version=2.0"
"""Content-Type of REFER progress (RFC 3515 §2.4.5, RFC 3420)."""

_CARRIED = ("replaces", "referred-by")


@dataclass(frozen=True, slots=True)
class ReferTarget:
    """Where a REFER sends us: the URI to INVITE and what to put in that INVITE."""

    uri: SipUri
    replaces: Replaces | None = None
    extra_headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, value: str) -> ReferTarget:
        """Parse a ``Refer-To`` value (name-addr or addr-spec, RFC 3515 §2.1)."""
        addr = NameAddr.parse(value)
        uri = addr.uri
        if not isinstance(uri, SipUri):
            raise SipParseError("Refer-To must be a sip: or sips: URI", status=400)
        replaces: Replaces | None = None
        extra: list[tuple[str, str]] = []
        for name, header in uri.headers.items():
            lower = name.lower()
            if lower == "replaces":
                replaces = Replaces.parse(header)
                extra.append(("Replaces", header))
            elif lower in _CARRIED:
                extra.append((name, header))
        return cls(uri.copy(headers={}), replaces, tuple(extra))

    @property
    def attended(self) -> bool:
        """True for an attended transfer (the INVITE replaces a dialog, RFC 3891)."""
        return self.replaces is not None


def replaces_for(dialog: Dialog) -> Replaces:
    """``Replaces`` naming ``dialog`` as its remote end sees it (RFC 3891 §3).

    The INVITE goes to the remote party of ``dialog``; for that UA its own
    tag is the to-tag and ours is the from-tag.
    """
    return Replaces(
        dialog.call_id,
        dialog.remote_tag,
        dialog.local_tag,
        params={"to-tag": dialog.remote_tag, "from-tag": dialog.local_tag},
    )


def refer_to_value(target: str | SipUri, replaces: Replaces | None = None) -> str:
    """A ``Refer-To`` value for ``target``, with ``?Replaces=`` for an attended transfer."""
    uri = target if isinstance(target, SipUri) else SipUri.parse(target)
    if replaces is not None:
        uri = uri.copy(headers={**uri.headers, "Replaces": str(replaces)})
    return f"<{uri}>"


def sipfrag(status: int, reason: str | None = None) -> bytes:
    """The ``message/sipfrag`` body reporting ``status`` (RFC 3515 §2.4.5)."""
    return f"SIP/2.0 {status} {reason or reason_phrase(status)}\r\n".encode()


def parse_sipfrag(body: bytes) -> tuple[int, str]:
    """The status code and reason of a sipfrag status line; raises SipParseError."""
    line = body.split(b"\n", 1)[0].decode("utf-8", "replace").strip()
    parts = line.split(" ", 2)
    if len(parts) < 2 or not parts[0].upper().startswith("SIP/") or not parts[1].isdigit():
        raise SipParseError(f"not a sipfrag status line: {line[:60]!r}")
    status = int(parts[1])
    if not 100 <= status <= 699:
        raise SipParseError(f"sipfrag status out of range: {status}")
    return status, parts[2] if len(parts) > 2 else ""


def notify_headers(status: int, *, expires: int = 60) -> list[tuple[str, str]]:
    """``Event`` and ``Subscription-State`` for a NOTIFY reporting ``status``."""
    state = "terminated;reason=noresource" if status >= 200 else f"active;expires={expires}"
    return [("Event", "refer"), ("Subscription-State", state)]
