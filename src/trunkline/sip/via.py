"""The Via header value (RFC 3261 §20.42, §18.2.1; RFC 3581 rport; RFC 5118 §4.5).

A Via is parsed with one regular expression in the usual canonical form
(``SIP/2.0/UDP host:port;params``) and by a scanner that allows LWS around
``/`` and ``:`` otherwise (RFC 4475 §3.1.1.1). Parameters stay text until
used; ``branch`` is found without building the dict (the hot path of every
transaction match, §17.2.3).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from typing import Any

from trunkline.sip.errors import SipParseError
from trunkline.sip.grammar import (
    CANON_PARAMS,
    INTERN_LIMIT,
    TOKEN,
    LazyParams,
    is_digits,
    is_token,
    parse_params,
    set_slot,
    split_commas,
    split_host_port,
)

__all__ = ["Via", "parse_vias"]

_WS = " \t"
_VIA_FAST_RE = re.compile(
    rf"SIP/2\.0/({TOKEN}) ([A-Za-z0-9\-._]+|\[[0-9A-Fa-f:.]+\])(?::([0-9]{{1,5}}))?{CANON_PARAMS}"
)
_BRANCH_RE = re.compile(r";branch=([^;]+)", re.IGNORECASE)
_RECEIVED_RE = re.compile(r";received=([^;]+)", re.IGNORECASE)
_MADDR_RE = re.compile(r";maddr=([^;]+)", re.IGNORECASE)
_RPORT_RE = re.compile(r";rport(?:=([^;]*))?(?=;|$)", re.IGNORECASE)


class _Unset(enum.Enum):
    """Marks a cached value not computed yet (None is a valid branch: RFC 2543 peers)."""

    UNSET = 0


class Via(LazyParams):
    """One ``via-parm`` (RFC 3261 §20.42, §25.1), e.g. ``SIP/2.0/UDP h:5060;branch=z9..``.

    ``transport`` is upper-case; ``host`` keeps IPv6 brackets. RFC 3581
    ``rport`` and RFC 5118 §4.5 ``received`` with or without brackets are
    accepted. Immutable: use :meth:`with_params` to derive a changed copy.
    """

    __slots__ = ("_branch", "host", "port", "protocol", "transport")

    transport: str
    host: str
    port: int | None
    protocol: str
    _branch: str | _Unset | None

    def __init__(
        self,
        transport: str,
        host: str,
        port: int | None = None,
        params: Mapping[str, str | None] | str | None = None,
        protocol: str = "SIP/2.0",
    ) -> None:
        set_slot(self, "transport", transport)
        set_slot(self, "host", host)
        set_slot(self, "port", port)
        set_slot(self, "protocol", protocol)
        set_slot(self, "_branch", _Unset.UNSET)
        self._init_params(params)

    @classmethod
    def parse(cls, text: str) -> Via:
        """Parse one via-parm (no commas)."""
        m = _VIA_FAST_RE.fullmatch(text)
        if m is not None:
            transport, host, port, params = m.groups()
            number: int | None = None
            if port is not None:
                number = int(port)
                if number > 65535:
                    raise SipParseError("Invalid port in Via")
            via = cls.__new__(cls)
            set_slot(via, "transport", transport if transport.isupper() else transport.upper())
            set_slot(via, "host", host)
            set_slot(via, "port", number)
            set_slot(via, "protocol", "SIP/2.0")
            set_slot(via, "_params", None)
            set_slot(via, "_params_text", params)
            set_slot(via, "_branch", _Unset.UNSET)
            return via
        return cls._parse_slow(text)

    @classmethod
    def canonical(cls, transport: str, host: str, port: int | None, params_text: str) -> Via:
        """The Via an element writes itself, from its parts; no parsing.

        ``transport`` upper-case, ``host`` a hostname or an IP (IPv6 in
        brackets), ``params_text`` canonical (``;branch=z9hG4bK..;rport``):
        the caller's own values, as :meth:`parse` would have produced them
        from ``str(via)``, but without the regular expression.
        """
        via = cls.__new__(cls)
        set_slot(via, "transport", transport)
        set_slot(via, "host", host)
        set_slot(via, "port", port)
        set_slot(via, "protocol", "SIP/2.0")
        set_slot(via, "_params", None)
        set_slot(via, "_params_text", params_text)
        set_slot(via, "_branch", _Unset.UNSET)
        return via

    @classmethod
    def _parse_slow(cls, text: str) -> Via:
        # sent-protocol = protocol-name SLASH protocol-version SLASH transport,
        # where SLASH allows LWS on both sides (RFC 4475 §3.1.1.1 wsinv).
        parts = text.split("/", 2)
        if len(parts) != 3:
            raise SipParseError("Malformed Via header")
        name, version, rest = parts[0].strip(_WS), parts[1].strip(_WS), parts[2].lstrip(_WS)
        if not is_token(name) or not is_token(version):
            raise SipParseError("Malformed Via sent-protocol")
        end = 0
        n = len(rest)
        while end < n and rest[end] not in " \t;":
            end += 1
        transport = rest[:end]
        if not is_token(transport):
            raise SipParseError("Malformed Via transport")
        rest = rest[end:]
        semi = rest.find(";")
        sent_by = rest if semi < 0 else rest[:semi]
        params_text = "" if semi < 0 else rest[semi:]
        sent_by = "".join(sent_by.split())
        if not sent_by:
            raise SipParseError("Missing Via sent-by")
        host, port = split_host_port(sent_by, "Via")
        return cls(
            transport.upper(),
            host,
            port,
            parse_params(params_text, "Via"),
            f"{name.upper()}/{version}",
        )

    @property
    def branch(self) -> str | None:
        """The ``branch`` parameter (RFC 3261 §8.1.1.7), None when absent.

        Read for every transaction match (§17.1.3, §17.2.3), so it is found
        once per (immutable, interned) value and kept.
        """
        branch = self._branch
        if branch is _Unset.UNSET:
            if self._params is None:
                m = _BRANCH_RE.search(self._params_text)
                branch = None if m is None else m.group(1)
            else:
                branch = self._params.get("branch")
            set_slot(self, "_branch", branch)
        return branch

    @property
    def received(self) -> str | None:
        """The ``received`` parameter (RFC 3261 §18.2.1)."""
        if self._params is None:  # canonical text: found without building the dict
            m = _RECEIVED_RE.search(self._params_text)
            return None if m is None else m.group(1)
        return self._params.get("received")

    def _rport_value(self) -> tuple[bool, str | None]:
        if self._params is None:
            m = _RPORT_RE.search(self._params_text)
            return (False, None) if m is None else (True, m.group(1))
        return "rport" in self._params, self._params.get("rport")

    @property
    def rport(self) -> int | None:
        """The ``rport`` value filled in by a server (RFC 3581 §4), else None."""
        value = self._rport_value()[1]
        if value is None or not is_digits(value) or len(value) > 5:
            return None
        return int(value)

    @property
    def rport_requested(self) -> bool:
        """True when the client asked for ``rport`` (RFC 3581 §3)."""
        return self._rport_value()[0]

    @property
    def maddr(self) -> str | None:
        """The ``maddr`` parameter (read for every response sent, RFC 3261 §18.2.2).

        Canonical text is searched without building the parameter dict, as
        for ``branch`` and ``received``.
        """
        if self._params is None:
            m = _MADDR_RE.search(self._params_text)
            return None if m is None else m.group(1)
        return self._params.get("maddr")

    @property
    def ttl(self) -> int | None:
        """The ``ttl`` parameter (0-255), None when absent or invalid."""
        value = self.params.get("ttl")
        if value is None or not is_digits(value) or len(value) > 3 or int(value) > 255:
            return None
        return int(value)

    @property
    def sent_by(self) -> str:
        """``host`` or ``host:port`` as sent (used for transaction matching, §17.2.3)."""
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def with_params(self, **params: str | None) -> Via:
        """A copy with ``params`` added or replaced (``None`` gives a bare ``;name``)."""
        merged = dict(self.params)
        merged.update(params)
        return Via(self.transport, self.host, self.port, merged, self.protocol)

    def without_params(self, *names: str) -> Via:
        """A copy without the named parameters."""
        kept = {k: v for k, v in self.params.items() if k not in names}
        return Via(self.transport, self.host, self.port, kept, self.protocol)

    def __str__(self) -> str:
        return f"{self.protocol}/{self.transport} {self.sent_by}{self._render_params()}"

    def __repr__(self) -> str:
        return f"Via({str(self)!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Via.parse, (str(self),))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Via):
            return NotImplemented
        return (
            self.transport == other.transport
            and self.host.lower() == other.host.lower()
            and self.port == other.port
            and self.protocol == other.protocol
            and dict(self.params) == dict(other.params)
        )

    def __hash__(self) -> int:
        return hash((self.transport, self.host.lower(), self.port))


_VIAS: dict[str, Via] = {}


def parse_vias(values: Iterable[str]) -> list[Via]:
    """Parse Via header-field values (each possibly comma-separated), top first.

    Single values are interned: every response of a transaction carries the
    same Vias (see :data:`~trunkline.sip.grammar.INTERN_LIMIT`).
    """
    vias: list[Via] = []
    memo = _VIAS
    for value in values:
        if "," not in value:
            via = memo.get(value)
            if via is None:
                via = Via.parse(value)
                if len(memo) >= INTERN_LIMIT:
                    memo.clear()
                memo[value] = via
            vias.append(via)
            continue
        items = split_commas(value)
        for item in items:
            if not item:
                raise SipParseError("Empty Via value")
            vias.append(Via.parse(item))
    return vias
