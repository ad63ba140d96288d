"""The ``a=`` lines of an SDP section: lookups, typed views and their validation (RFC 8866 §5.13).

:class:`Attributes` is the base of both levels of a description
(:class:`~trunkline.sip.sdp.SessionDescription` and
:class:`~trunkline.sip.sdp.MediaDescription`): ordered lookups that skip an
attribute a lenient parse marked malformed, the views both levels share
(direction, ICE credentials, DTLS fingerprint and setup) and the validation
of every attribute with a typed view, strict (the first bad one raises 400)
or lenient (it is marked and ignored, RFC 8866 §5.13). Which attributes are
validated at which level is :data:`SESSION_CHECKS` and :data:`MEDIA_CHECKS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from trunkline.sip.errors import SipParseError
from trunkline.sip.sdpcodecs import RtpMap
from trunkline.sip.sdpcrypto import Crypto, Fingerprint
from trunkline.sip.sdpfields import DIRECTIONS, Attribute, Candidate, Direction, Group, Rtcp
from trunkline.sip.sdpsyntax import FRACTION, fail

__all__ = [
    "MEDIA_CHECKS",
    "SESSION_CHECKS",
    "SETUP_ROLES",
    "Attributes",
    "check_milliseconds",
    "check_setup",
]

SETUP_ROLES = frozenset({"active", "passive", "actpass", "holdconn"})


def check_setup(value: str) -> None:
    """``a=setup`` names one of the four roles of RFC 4145 §4."""
    if value not in SETUP_ROLES:
        raise fail(f"unknown setup role: {value[:40]!r}")


def check_milliseconds(name: str) -> Callable[[str], None]:
    """A check that ``a=<name>`` is a (fractional) number of milliseconds (RFC 8866 §6.4)."""

    def check(value: str) -> None:
        if not FRACTION.fullmatch(value.strip()):
            raise fail(f"a={name} is not a number: {value[:40]!r}")

    return check


COMMON_CHECKS: Mapping[str, Callable[[str], object]] = {
    "fingerprint": Fingerprint.parse,
    "setup": check_setup,
}
SESSION_CHECKS: Mapping[str, Callable[[str], object]] = {**COMMON_CHECKS, "group": Group.parse}
MEDIA_CHECKS: Mapping[str, Callable[[str], object]] = {
    **COMMON_CHECKS,
    "rtpmap": RtpMap.parse,
    "ptime": check_milliseconds("ptime"),
    "maxptime": check_milliseconds("maxptime"),
    "rtcp": Rtcp.parse,
    "crypto": Crypto.parse,
    "candidate": Candidate.parse,
}
"""The attributes with typed views at each level, and the parser that validates each."""


class Attributes:
    """The ``a=`` lines of one level (session or media): lookups, typed views, validation."""

    __slots__ = ()
    attributes: list[Attribute]

    def get(self, name: str) -> str | None:
        """The value of the first ``a=name`` ("" for a property attribute)."""
        for attribute in self.attributes:
            if attribute.name == name and attribute.malformed is None:
                return "" if attribute.value is None else attribute.value
        return None

    def get_all(self, name: str) -> list[str]:
        """The values of every well-formed ``a=name`` in order."""
        return [a.value or "" for a in self.attributes if a.name == name and a.malformed is None]

    def has(self, name: str) -> bool:
        return any(a.name == name and a.malformed is None for a in self.attributes)

    def add(self, name: str, value: str | None = None) -> None:
        self.attributes.append(Attribute(name, value))

    def remove(self, name: str) -> int:
        """Remove every ``a=name``; return how many were removed."""
        before = len(self.attributes)
        self.attributes[:] = [a for a in self.attributes if a.name != name]
        return before - len(self.attributes)

    @property
    def direction(self) -> Direction | None:
        """The direction attribute written at this level, if any (RFC 8866 §6.7)."""
        for attribute in self.attributes:
            if attribute.value is None and attribute.name in DIRECTIONS:
                return DIRECTIONS[attribute.name]
        return None

    def set_direction(self, direction: Direction | None) -> None:
        """Replace the direction attributes at this level (None removes them)."""
        kept = [a for a in self.attributes if a.name not in DIRECTIONS]
        if direction is not None:
            kept.append(Attribute(direction.value))
        self.attributes[:] = kept

    @property
    def ice_ufrag(self) -> str | None:
        return self.get("ice-ufrag")

    @property
    def ice_pwd(self) -> str | None:
        return self.get("ice-pwd")

    @property
    def ice_options(self) -> list[str]:
        return [option for value in self.get_all("ice-options") for option in value.split()]

    @property
    def fingerprints(self) -> list[Fingerprint]:
        return [Fingerprint.parse(value) for value in self.get_all("fingerprint")]

    @property
    def setup(self) -> str | None:
        """The DTLS/TCP connection role (RFC 4145 §4): active, passive, actpass, holdconn."""
        value = self.get("setup")
        if value is not None:
            check_setup(value)
        return value

    @property
    def malformed(self) -> list[Attribute]:
        """The attributes a lenient parse kept but could not use, in order."""
        return [a for a in self.attributes if a.malformed is not None]

    def _validate_attributes(
        self, checks: Mapping[str, Callable[[str], object]], strict: bool
    ) -> None:
        """Parse every attribute with a typed view once (RFC 8866 §5.13 when lenient).

        Strict: the first malformed one raises SipParseError (400). Lenient: it
        is marked :attr:`Attribute.malformed` and the typed views skip it (and
        later validations too).
        """
        for attribute in self.attributes:
            name = attribute.name
            if attribute.malformed is not None:
                continue  # already kept as unparsed by a lenient parse
            try:
                if name in DIRECTIONS:
                    if attribute.value is not None:
                        raise fail(f"direction attribute with a value: a={attribute}"[:80])
                    continue
                check = checks.get(name)
                if check is not None:
                    check(attribute.value or "")
            except SipParseError as exc:
                if strict:
                    raise
                attribute.malformed = exc.reason
