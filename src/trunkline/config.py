"""``trunkline.toml``: the server's configuration, validated, with errors that point at a line.

The file is TOML (stdlib :mod:`tomllib`) checked by pydantic v2 models. Every
field has a default, so no file at all gives a working server: UDP and TCP on
5060, TLS on 5061, WebSocket on HTTP port 8080, the data directory's default
domain, rate limits and bans on, bindings in memory persisted to SQLite.

A mistake is reported as one :class:`ConfigError` naming the file, the line
and the field, one line per problem::

    trunkline.toml:12: listen.udp.port: Input should be less than 65536

pydantic reports *where in the data* a value is wrong (its ``loc``, e.g.
``("users", 2, "password")``); :class:`TomlLocator` maps that back to the
source line by scanning the text for keys under their table headers
(``[listen.udp]``, ``[[users]]`` counted per array, dotted keys, inline tables
and arrays). A syntax error reports the line :mod:`tomllib` gives.

Example::

    domains = ["example.com"]
    trusted = ["10.0.0.0/8"]

    [listen.udp]
    host = "0.0.0.0"
    port = 5060

    [[users]]
    name = "alice"
    password = "s3cret"

    [location]
    backend = "redis"
    redis_url = "redis://127.0.0.1:6379/0"
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    ValidationError,
    field_validator,
    model_validator,
)

__all__ = [
    "Config",
    "ConfigError",
    "ConfigUser",
    "Limits",
    "Listen",
    "ListenAddress",
    "LocationConfig",
    "LoggingConfig",
    "TomlLocator",
    "apply_overrides",
    "load_config",
    "parse_config",
]

Loc = tuple[str | int, ...]


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names file, line and field."""


# -- models ---------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ListenAddress(_Model):
    """One listening socket: address and port."""

    host: str = "0.0.0.0"
    port: int = Field(gt=0, lt=65536)
    enabled: bool = True


class TlsListenAddress(ListenAddress):
    """A TLS listener; without ``certificate``/``key`` a self-signed pair is generated."""

    certificate: Path | None = None
    key: Path | None = None

    @model_validator(mode="after")
    def _pair(self) -> Self:
        if (self.certificate is None) != (self.key is None):
            raise ValueError("certificate and key must be given together")
        return self


class Listen(_Model):
    """Where the server listens (RFC 3261 §18; RFC 7118 for WebSocket)."""

    udp: ListenAddress = ListenAddress(port=5060)
    tcp: ListenAddress = ListenAddress(port=5060)
    tls: TlsListenAddress = TlsListenAddress(port=5061)
    ws: ListenAddress = ListenAddress(port=8080)


class ConfigUser(_Model):
    """A user defined in the file: a password, or precomputed HA1 values.

    ``ha1`` maps base digest algorithms (``MD5``, ``SHA-256``,
    ``SHA-512-256``) to lower-case hex ``H(user:realm:password)`` with the
    domain as realm; only the algorithms given can authenticate.
    """

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._~+-]{0,63}$")
    domain: str | None = None
    password: str | None = Field(default=None, min_length=1)
    ha1: dict[str, str] | None = None

    @field_validator("ha1")
    @classmethod
    def _ha1_values(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is None:
            return None
        sizes = {"MD5": 32, "SHA-256": 64, "SHA-512-256": 64}
        result: dict[str, str] = {}
        for algorithm, digest in value.items():
            canonical = algorithm.upper()
            if canonical not in sizes:
                raise ValueError(f"unknown algorithm {algorithm!r} (use {', '.join(sizes)})")
            if not re.fullmatch(rf"[0-9a-fA-F]{{{sizes[canonical]}}}", digest):
                raise ValueError(f"{algorithm}: expected {sizes[canonical]} hex digits")
            result[canonical] = digest.lower()
        if not result:
            raise ValueError("give at least one HA1")
        return result

    @model_validator(mode="after")
    def _one_secret(self) -> Self:
        if (self.password is None) == (self.ha1 is None):
            raise ValueError("give exactly one of password and ha1")
        return self


class Limits(_Model):
    """Protection against floods, scanners and password guessing (issue 6, Security)."""

    max_message_size: int = Field(default=65536, ge=1500, le=1 << 20)
    requests_per_second: float = Field(default=50.0, gt=0)
    burst: int = Field(default=100, ge=1)
    auth_failures_before_ban: int = Field(default=10, ge=1)
    ban_seconds: float = Field(default=600.0, ge=0)
    """How long a source that failed auth ``auth_failures_before_ban`` times is banned."""
    auth_failure_window: float = Field(default=600.0, gt=0)
    """Auth failures older than this (seconds) no longer count towards a ban."""
    flood_ban_seconds: float = Field(default=60.0, ge=0)
    """How long a source over ``requests_per_second`` (after ``burst``) is banned."""
    max_transactions_per_source: int = Field(default=200, ge=1)
    max_dialogs_per_source: int = Field(default=100, ge=1)
    drop_user_agents: list[str] = ["friendly-scanner", "sipvicious", "sipcli", "VaxSIPUserAgent"]


class LoggingConfig(_Model):
    """Log level and format; ``sip_trace`` prints full messages as sent and received."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["text", "json"] = "text"
    sip_trace: bool = False
    file: Path | None = None


class LocationConfig(_Model):
    """The location service (RFC 3261 §10.3) and its backend.

    ``memory``: bindings in this process, persisted to the data directory's
    SQLite database (flushed every ``flush_interval`` seconds and on
    shutdown). ``redis``: bindings in Redis at ``redis_url``, shared by
    several servers.
    """

    backend: Literal["memory", "redis"] = "memory"
    redis_url: str = Field(default="redis://127.0.0.1:6379/0", pattern=r"^(redis|rediss|unix)://")
    redis_prefix: str = "trunkline:"
    default_expires: int = Field(default=3600, ge=1)
    min_expires: int = Field(default=60, ge=0)
    max_expires: int = Field(default=86400, ge=1)
    max_contacts: int = Field(default=16, ge=1)
    flush_interval: float = Field(default=1.0, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if not self.min_expires <= self.default_expires <= self.max_expires:
            raise ValueError("need min_expires <= default_expires <= max_expires")
        return self


class DispatcherSetConfig(_Model):
    """A set of next hops (carriers, media servers) with health checks (OPTIONS probes)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    destinations: list[str] = Field(min_length=1)
    """SIP URIs, e.g. ``sip:gw1.example.net:5060;transport=tcp``."""
    weights: list[int] | None = None
    algorithm: Literal["round-robin", "weighted", "hash"] = "round-robin"
    probe: bool = True
    probe_interval: float = Field(default=30.0, gt=0)
    down_probe_interval: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _weights(self) -> Self:
        if self.weights is not None and len(self.weights) != len(self.destinations):
            raise ValueError("weights must have one entry per destination")
        return self


class DispatcherRuleConfig(_Model):
    """Requests whose Request-URI host is ``domain`` and/or user starts with ``user_prefix``."""

    set: str
    domain: str | None = None
    user_prefix: str | None = None

    @model_validator(mode="after")
    def _something(self) -> Self:
        if self.domain is None and self.user_prefix is None:
            raise ValueError("a dispatcher rule needs domain or user_prefix")
        return self


class DispatcherConfig(_Model):
    """``[[dispatcher.sets]]`` and ``[[dispatcher.rules]]`` (first matching rule wins)."""

    sets: list[DispatcherSetConfig] = []
    rules: list[DispatcherRuleConfig] = []

    @model_validator(mode="after")
    def _known_sets(self) -> Self:
        names = [s.name for s in self.sets]
        if len(set(names)) != len(names):
            raise ValueError("dispatcher set names must be unique")
        for rule in self.rules:
            if rule.set not in names:
                raise ValueError(f"dispatcher rule names an unknown set {rule.set!r}")
        return self


class Config(_Model):
    """The whole ``trunkline.toml``."""

    data_dir: Path | None = None
    domains: list[str] = []
    """Domains served; empty means the data directory's default domain."""
    listen: Listen = Listen()
    users: list[ConfigUser] = []
    limits: Limits = Limits()
    trusted: list[IPvAnyNetwork] = []
    """Sources whose requests need no digest and are routed anywhere (carriers, media servers)."""

    @field_validator("trusted", mode="before")
    @classmethod
    def _networks_are_text(cls, value: Any) -> Any:
        """Only CIDR text: ``ipaddress`` would take ``true`` or ``1`` as an address."""
        if isinstance(value, list):
            for item in value:
                if not isinstance(item, str | ipaddress.IPv4Network | ipaddress.IPv6Network):
                    raise ValueError("each trusted network must be a CIDR string like '10.0.0.0/8'")
        return value

    logging: LoggingConfig = LoggingConfig()
    location: LocationConfig = LocationConfig()
    dispatcher: DispatcherConfig = DispatcherConfig()
    workers: int = Field(default=0, ge=0, le=64)
    """SIP worker processes of ``trunkline serve``: 0 (the default) means one per CPU
    (at most 4; one when a SIP port is 0), N means N. Several workers share the SIP
    port (SO_REUSEPORT), send UDP from it (phones behind NAT see one address; a
    response reaching the wrong worker is handed to the right one) and share the
    registrations (the data directory's SQLite database, or Redis); see
    ``trunkline.proxy.workers`` and docs/server.md."""

    @field_validator("domains")
    @classmethod
    def _domains(cls, value: list[str]) -> list[str]:
        for domain in value:
            if not re.fullmatch(r"[A-Za-z0-9.:\[\]-]{1,255}", domain):
                raise ValueError(f"invalid domain {domain!r}")
        return [d.lower() for d in value]

    @model_validator(mode="after")
    def _unique_users(self) -> Self:
        seen: set[tuple[str, str | None]] = set()
        for user in self.users:
            key = (user.name, user.domain)
            if key in seen:
                raise ValueError(f"user {user.name!r} is defined twice")
            seen.add(key)
        return self


# -- locating errors ---------------------------------------------------------------

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


class TomlLocator:
    """Maps a data path (a pydantic ``loc``) to the 1-based line that defines it.

    The source must already be valid TOML (it is scanned after
    :func:`tomllib.loads` succeeded), so the scanner can be lenient.
    """

    def __init__(self, text: str) -> None:
        self._text = text
        self._pos = 0
        self._line = 1
        self.lines: dict[Loc, int] = {}
        self._array_tables: dict[Loc, int] = {}
        self._scan()

    def line_of(self, loc: Sequence[str | int]) -> int | None:
        """The line of the longest prefix of ``loc`` the source defines, or None."""
        path = tuple(loc)
        while path:
            line = self.lines.get(path)
            if line is not None:
                return line
            path = path[:-1]
        return None

    # The scanner: a cursor over the text that counts lines.

    def _peek(self, size: int = 1) -> str:
        return self._text[self._pos : self._pos + size]

    def _advance(self, count: int = 1) -> None:
        chunk = self._text[self._pos : self._pos + count]
        self._line += chunk.count("\n")
        self._pos += count

    def _skip_blank(self, newlines: bool) -> None:
        """Skip spaces, tabs, comments and (when ``newlines``) line breaks."""
        while self._pos < len(self._text):
            char = self._text[self._pos]
            if char in " \t\r" or (newlines and char == "\n"):
                self._advance()
            elif char == "#":
                end = self._text.find("\n", self._pos)
                self._pos = len(self._text) if end < 0 else end
            else:
                return

    def _key(self) -> tuple[str, ...]:
        """A dotted key: bare and quoted parts separated by dots."""
        parts: list[str] = []
        while True:
            self._skip_blank(newlines=False)
            char = self._peek()
            if char in ('"', "'"):
                start = self._pos + 1
                self._skip_string()
                parts.append(self._text[start : self._pos - 1])
            else:
                match = _BARE_KEY.match(self._text, self._pos)
                if match is None:
                    return tuple(parts)
                parts.append(match.group())
                self._pos = match.end()
            self._skip_blank(newlines=False)
            if self._peek() != ".":
                return tuple(parts)
            self._advance()

    def _skip_string(self) -> None:
        quote = self._peek()
        if self._peek(3) == quote * 3:
            end = self._text.find(quote * 3, self._pos + 3)
            end = len(self._text) if end < 0 else end + 3
            # A closing run may be up to 5 quotes long (TOML 1.0 §String).
            while end < len(self._text) and self._text[end] == quote:
                end += 1
            self._advance(end - self._pos)
            return
        self._advance()
        while self._pos < len(self._text):
            char = self._text[self._pos]
            if char == "\\" and quote == '"':
                self._advance(2)
            elif char == quote:
                self._advance()
                return
            else:
                self._advance()

    def _resolve(self, keys: tuple[str, ...]) -> Loc:
        """A header's key path with the current index of every array of tables in it."""
        path: list[str | int] = []
        for key in keys:
            path.append(key)
            index = self._array_tables.get(tuple(path))
            if index is not None:
                path.append(index)
        return tuple(path)

    def _scan(self) -> None:
        table: Loc = ()
        while True:
            self._skip_blank(newlines=True)
            if self._pos >= len(self._text):
                return
            line = self._line
            if self._peek(2) == "[[":
                self._advance(2)
                keys = self._key()
                self._advance(2)
                parent = (*self._resolve(keys[:-1]), keys[-1])
                index = self._array_tables.get(parent, -1) + 1
                self._array_tables[parent] = index
                table = (*parent, index)
                self.lines.setdefault(parent, line)
                self.lines[table] = line
            elif self._peek() == "[":
                self._advance()
                keys = self._key()
                self._advance()
                table = self._resolve(keys)
                self.lines.setdefault(table, line)
            else:
                self._key_value(table)
            self._skip_blank(newlines=False)

    def _key_value(self, table: Loc) -> None:
        line = self._line
        keys = self._key()
        path = (*table, *keys)
        for size in range(len(table) + 1, len(path) + 1):
            self.lines.setdefault(path[:size], line)
        self._skip_blank(newlines=False)
        if self._peek() == "=":
            self._advance()
        self._value(path)

    def _value(self, path: Loc) -> None:
        self._skip_blank(newlines=False)
        char = self._peek()
        if char in ('"', "'"):
            self._skip_string()
        elif char == "[":
            self._advance()
            index = 0
            while self._pos < len(self._text):
                self._skip_blank(newlines=True)
                if self._peek() == "]":
                    self._advance()
                    return
                self.lines[(*path, index)] = self._line
                self._value((*path, index))
                self._skip_blank(newlines=True)
                if self._peek() == ",":
                    self._advance()
                    index += 1
        elif char == "{":
            self._advance()
            while self._pos < len(self._text):
                self._skip_blank(newlines=False)
                if self._peek() == "}":
                    self._advance()
                    return
                if self._peek() == ",":
                    self._advance()
                    continue
                self._key_value(path)
        else:
            match = re.compile(r"[^,\]}\n#]*").match(self._text, self._pos)
            assert match is not None
            self._pos = match.end()


# -- loading ----------------------------------------------------------------------

_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


def _format_loc(loc: Iterable[str | int]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def _messages(error: ValidationError, name: str, locator: TomlLocator | None) -> list[str]:
    lines: list[str] = []
    for item in error.errors(include_url=False):
        loc = tuple(item["loc"])
        message = str(item["msg"]).removeprefix("Value error, ")
        line = locator.line_of(loc) if locator is not None else None
        where = f"{name}:{line}" if line is not None else name
        field = _format_loc(loc)
        lines.append(f"{where}: {field}: {message}" if field else f"{where}: {message}")
    return lines


def parse_config(text: str, name: str = "trunkline.toml") -> Config:
    """Validate TOML ``text``; errors name ``name`` and the line."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = _TOML_POSITION.search(message)
        if match is None:
            raise ConfigError(f"{name}: {message}") from None
        reason = message[: match.start()]
        raise ConfigError(f"{name}:{match.group(1)}: {reason} (column {match.group(2)})") from None
    return _validate(data, name, text)


def _validate(data: Mapping[str, Any], name: str, text: str | None) -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        locator = TomlLocator(text) if text is not None else None
        raise ConfigError("\n".join(_messages(exc, name, locator))) from None


def load_config(path: Path | str | None) -> Config:
    """Read and validate ``path``; None gives the zero-config defaults."""
    if path is None:
        return Config()
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    return parse_config(text, str(path))


def apply_overrides(
    config: Config,
    *,
    data_dir: Path | None = None,
    host: str | None = None,
    sip_port: int | None = None,
    http_port: int | None = None,
    trusted: Sequence[str] = (),
) -> Config:
    """The command line flags (``--host``, ``--sip-port`` ...) applied over ``config``, revalidated.

    ``--sip-port`` sets UDP and TCP; ``--host`` sets every listener;
    ``--trusted`` adds networks.
    """
    data = config.model_dump(mode="python")
    if data_dir is not None:
        data["data_dir"] = data_dir
    for kind in ("udp", "tcp", "tls", "ws"):
        if host is not None:
            data["listen"][kind]["host"] = host
    if sip_port is not None:
        data["listen"]["udp"]["port"] = sip_port
        data["listen"]["tcp"]["port"] = sip_port
    if http_port is not None:
        data["listen"]["ws"]["port"] = http_port
    data["trusted"] = [*data["trusted"], *trusted]
    return _validate(data, "command line", None)
