"""Request validation by a proxy (RFC 3261 §16.3) and loop-detecting branches (§16.6 item 8).

:func:`validate_request` runs the six checks of §16.3 in order and returns a
:class:`Reply` for the first one that fails (or, for OPTIONS with
Max-Forwards 0, the local answer), or None when the request may be routed:

1. Reasonable syntax: the headers a proxy needs (Via, From, To, Call-ID,
   CSeq, Max-Forwards, Route, Proxy-Require) parse; the message size is
   within the limit (513, §21.5.14).
2. URI scheme: a Request-URI scheme the proxy can route (416, §21.4.15).
3. Max-Forwards: 483 when it is 0, except OPTIONS answered locally (§16.3 item 3).
4. Optional loop detection: a Via with one of our addresses whose branch
   carries the same loop hash as this request would get means the request
   came back unchanged: 482 (§16.3 item 4). A different hash is a spiral
   (RFC 3261 §16.3, RFC 5393 §1) and goes on.
5. Proxy-Require: option tags we do not support give 420 with Unsupported.
6. Proxy-Authorization is the auth step's business (router).

The loop hash covers the fields that §16.6 item 8 names: Request-URI, To
tag, From tag, Call-ID, CSeq number, and the Route, Proxy-Require and
Proxy-Authorization values. :func:`loop_branch` makes the branch for a
forwarded copy: ``z9hG4bK`` + ``tl`` + hash + ``.`` + random, with the hash
taken over the copy as sent (after the Request-URI and Route changes of
§16.6). A request that comes back exactly as we sent it therefore hashes to
the value in our Via: a loop. One that was retargeted on the way (a new
Request-URI) hashes differently: a spiral, routed again.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Collection
from dataclasses import dataclass, field

from trunkline.sip.builder import MAGIC_COOKIE, branch_suffix
from trunkline.sip.errors import SipParseError
from trunkline.sip.headerfields import Headers
from trunkline.sip.message import Request
from trunkline.sip.statuses import reason_phrase

__all__ = [
    "LOOP_BRANCH_PREFIX",
    "ROUTABLE_SCHEMES",
    "Reply",
    "ValidationPolicy",
    "loop_branch",
    "loop_hash",
    "own_address_keys",
    "random_hex",
    "validate_request",
]

ROUTABLE_SCHEMES: frozenset[str] = frozenset({"sip", "sips"})
"""Request-URI schemes the proxy routes (``tel:`` needs an ENUM/number plan first)."""

LOOP_BRANCH_PREFIX = MAGIC_COOKIE + "tl"
_HASH_LENGTH = 16

ALLOWED_METHODS = (
    "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, PRACK, UPDATE, INFO, MESSAGE, REFER, "
    "SUBSCRIBE, NOTIFY, PUBLISH"
)


@dataclass(frozen=True, slots=True)
class Reply:
    """Answer the request locally with ``status`` (the server builds it, §8.2.6)."""

    status: int
    reason: str = ""
    headers: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not self.reason:
            object.__setattr__(self, "reason", reason_phrase(self.status))


@dataclass(frozen=True, slots=True)
class ValidationPolicy:
    """What the proxy accepts.

    ``own_addresses`` are the ``host:port`` sent-by values the proxy puts in
    its Vias (loop detection); ``proxy_extensions`` the option tags it
    supports in Proxy-Require; ``max_message`` the size above which 513.
    """

    own_addresses: frozenset[str] = frozenset()
    proxy_extensions: frozenset[str] = frozenset()
    schemes: frozenset[str] = ROUTABLE_SCHEMES
    max_message: int = 65535
    loop_detection: bool = True
    allow_header: str = ALLOWED_METHODS
    supported: tuple[str, ...] = field(default=("path",))

    def __post_init__(self) -> None:
        object.__setattr__(self, "own_addresses", own_address_keys(self.own_addresses))
        object.__setattr__(
            self, "proxy_extensions", frozenset(tag.lower() for tag in self.proxy_extensions)
        )

    def is_own(self, host: str, port: int | None) -> bool:
        """Is ``host:port`` one of the proxy's own addresses?"""
        return _sent_by_key(host, port) in self.own_addresses


def loop_hash(request: Request) -> str:
    """The §16.6 item 8 hash of the fields a loop leaves unchanged (hex, 16 chars)."""
    headers = request.headers
    parts = (
        request.uri_text,
        request.to_tag or "",
        request.from_tag or "",
        request.call_id,
        str(request.cseq.number),
        _list_text(headers, "route", "Route"),
        _list_text(headers, "proxy-require", "Proxy-Require"),
        "\x1f".join(headers._index.get("proxy-authorization", ())),
    )
    digest = hashlib.blake2b("\x1e".join(parts).encode("utf-8", "surrogateescape"), digest_size=8)
    return digest.hexdigest()


def _list_text(headers: Headers, key: str, name: str) -> str:
    """The elements of a list header joined by US (its lines as they are when none holds
    a comma, the usual case: no list is split)."""
    text = "\x1f".join(headers._index.get(key, ()))
    return "\x1f".join(headers.get_all(name)) if "," in text else text


class _RandomPool:
    """Kernel CSPRNG bytes (``os.urandom``) fetched 4 KiB at a time, each byte used once.

    Branches must be unguessable (RFC 3261 §8.1.1.7, §26.1.5: a forged
    response or CANCEL needs the branch); they stay so, since every byte is
    CSPRNG output handed out once. Only the ``getrandom`` call is shared by
    256 branches. A forked worker starts with an empty pool, so no two
    processes hand out the same bytes.
    """

    __slots__ = ("_buffer", "_position")

    CHUNK = 4096

    def __init__(self) -> None:
        self._buffer = b""
        self._position = 0

    def hex(self, size: int) -> str:
        """``size`` fresh random bytes as hex."""
        start = self._position
        end = start + size
        if end > len(self._buffer):
            self._buffer = os.urandom(max(self.CHUNK, size))
            start, end = 0, size
        self._position = end
        return self._buffer[start:end].hex()

    def reset(self) -> None:
        """Drop the unused bytes (after ``fork``: the parent may use them)."""
        self._buffer = b""
        self._position = 0


_POOL = _RandomPool()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_POOL.reset)


def random_hex(size: int = 8) -> str:
    """``size`` unpredictable bytes as hex, for branches (from :class:`_RandomPool`)."""
    return _POOL.hex(size)


def loop_branch(request: Request) -> str:
    """A fresh branch for a copy of ``request`` that carries its loop hash (§16.6 item 8).

    It ends with the worker's :func:`~trunkline.sip.builder.branch_suffix`
    (:mod:`trunkline.proxy.handoff`)."""
    return f"{LOOP_BRANCH_PREFIX}{loop_hash(request)}.{_POOL.hex(8)}{branch_suffix()}"


def _branch_hash(branch: str | None) -> str | None:
    if branch is None or not branch.startswith(LOOP_BRANCH_PREFIX):
        return None
    value = branch[len(LOOP_BRANCH_PREFIX) : len(LOOP_BRANCH_PREFIX) + _HASH_LENGTH]
    return value if len(value) == _HASH_LENGTH else None


def _sent_by_key(host: str, port: int | None) -> str:
    return f"{host.lower()}:{port or 5060}"


def own_address_keys(addresses: Collection[str]) -> frozenset[str]:
    """Normalize ``host[:port]`` strings to ``host:port`` (5060 when absent)."""
    keys: set[str] = set()
    for address in addresses:
        if address.startswith("["):
            host, _, rest = address.partition("]")
            host += "]"
            port = int(rest[1:]) if rest.startswith(":") else None
        else:
            host, colon, port_text = address.rpartition(":")
            if not colon:
                host, port = port_text, None
            else:
                port = int(port_text)
        keys.add(_sent_by_key(host, port))
    return frozenset(keys)


def validate_request(
    request: Request, policy: ValidationPolicy, *, size: int | None = None
) -> Reply | None:
    """RFC 3261 §16.3 items 1-5; None when the request may be routed."""
    # 1. Reasonable syntax (the parser already checked the rest, §16.3 item 1).
    if size is not None and size > policy.max_message:
        return Reply(513, "Message Too Large")
    try:
        vias = request.via
        max_forwards = request.max_forwards
        request.route  # noqa: B018 - parsed for the check, used by the router
        proxy_require = request.proxy_require
        request.cseq  # noqa: B018
        request.to  # noqa: B018
        request.from_  # noqa: B018
        uri = request.uri
    except SipParseError as error:
        return Reply(error.status, error.reason)
    if not vias:
        return Reply(400, "Missing Via header")

    # 2. URI scheme.
    if uri.scheme.lower() not in policy.schemes:
        return Reply(416, "Unsupported URI Scheme")

    # 3. Max-Forwards.
    if max_forwards == 0:
        if request.method == "OPTIONS":
            return Reply(
                200,
                "OK",
                (
                    ("Allow", policy.allow_header),
                    ("Accept", "application/sdp"),
                    ("Supported", ", ".join(policy.supported)),
                ),
            )
        return Reply(483, "Too Many Hops")

    # 4. Loop detection (not for ACK/CANCEL, whose branches follow the INVITE's).
    if policy.loop_detection and request.method not in ("ACK", "CANCEL"):
        ours = [via for via in vias if policy.is_own(via.host, via.port)]
        if ours:
            current = loop_hash(request)
            if any(_branch_hash(via.branch) == current for via in ours):
                return Reply(482, "Loop Detected")

    # 5. Proxy-Require.
    unsupported = [tag for tag in proxy_require if tag.lower() not in policy.proxy_extensions]
    if unsupported:
        return Reply(420, "Bad Extension", (("Unsupported", ", ".join(unsupported)),))
    return None
