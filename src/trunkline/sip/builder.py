"""Building requests and responses (RFC 3261 §8.1.1, §8.2.6).

Identifiers come from the operating system's CSPRNG (:mod:`secrets`): a
branch must be unique in space and time and start with the magic cookie
``z9hG4bK`` (§8.1.1.7), tags need at least 32 bits of randomness (§19.3) and a
Call-ID must be globally unique (§8.1.1.4). Unguessable values also keep
off-path attackers from forging CANCEL/BYE requests.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import TYPE_CHECKING

from trunkline.sip.errors import LocalSipError
from trunkline.sip.headerfields import Headers, Values
from trunkline.sip.headers import CSeq, NameAddr, Via
from trunkline.sip.message import Request, Response

if TYPE_CHECKING:
    from trunkline.sip.uri import Uri

__all__ = [
    "MAGIC_COOKIE",
    "branch_suffix",
    "make_request",
    "make_response",
    "new_branch",
    "new_call_id",
    "new_tag",
    "set_branch_suffix",
]

MAGIC_COOKIE = "z9hG4bK"
"""RFC 3261 §8.1.1.7: every RFC 3261 branch starts with this."""


_branch_suffix = ""


def set_branch_suffix(suffix: str) -> None:
    """End every branch made from now on in this process with ``suffix``.

    A proxy worker names itself in the branches it makes, so a response that
    the kernel gives to another worker of the same port can be handed to it
    (:mod:`trunkline.proxy.handoff`). ``suffix`` must be token characters
    (§25.1); the empty string (the default) adds nothing.
    """
    global _branch_suffix
    _branch_suffix = suffix


def branch_suffix() -> str:
    """What :func:`set_branch_suffix` set ("" unless a proxy worker set it)."""
    return _branch_suffix


def new_branch() -> str:
    """A fresh Via branch: the magic cookie, 128 random bits and :func:`branch_suffix`."""
    return MAGIC_COOKIE + secrets.token_hex(16) + _branch_suffix


def new_tag() -> str:
    """A fresh From/To tag with 64 random bits (§19.3 asks for at least 32)."""
    return secrets.token_hex(8)


def new_call_id(host: str | None = None) -> str:
    """A fresh Call-ID with 128 random bits, ``@host`` appended when given (§8.1.1.4)."""
    local = secrets.token_hex(16)
    return local if not host else f"{local}@{host}"


def _name_addr(value: NameAddr | str) -> NameAddr:
    return NameAddr.parse(value) if isinstance(value, str) else value


def make_request(
    method: str,
    uri: Uri | str,
    *,
    from_: NameAddr | str,
    to: NameAddr | str,
    call_id: str | None = None,
    cseq: int = 1,
    via: Via | str | None = None,
    contact: NameAddr | str | None = None,
    max_forwards: int = 70,
    body: bytes = b"",
    content_type: str | None = None,
    extra_headers: Iterable[tuple[str, str]] = (),
) -> Request:
    """A new request per §8.1.1: To, From (tag added), Call-ID, CSeq, Max-Forwards, Via.

    ``via`` gets a fresh branch unless it has one; pass None to leave the Via
    to the transport layer, which prepends its own (§18.1.1). ``from_`` gets a
    fresh tag unless it has one; ``to`` is used as given (no tag outside a
    dialog, §8.1.1.2). Content-Length always matches ``body``.
    """
    if body and content_type is None:
        raise LocalSipError("a request with a body needs a content_type")
    from_addr = _name_addr(from_)
    if from_addr.tag is None:
        from_addr = from_addr.with_tag(new_tag())
    to_addr = _name_addr(to)
    headers = Headers()
    if via is not None:
        top = Via.parse(via) if isinstance(via, str) else via
        if not top.branch:
            top = top.with_params(branch=new_branch())
        headers.add("Via", str(top))
    headers.add("Max-Forwards", str(max_forwards))
    headers.add("From", str(from_addr))
    headers.add("To", str(to_addr))
    headers.add("Call-ID", call_id or new_call_id())
    headers.add("CSeq", str(CSeq(cseq, method)))
    if contact is not None:
        headers.add("Contact", str(_name_addr(contact)))
    for name, value in extra_headers:
        headers.add(name, value)
    if content_type is not None:
        headers.add("Content-Type", content_type)
    headers.add("Content-Length", str(len(body)))
    return Request(method, uri, headers, body)


def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    content_type: str | None = None,
) -> Response:
    """A response to ``request`` per §8.2.6.

    Copies every Via (in order, as received, so §18.2.2 can route the
    response back), From, Call-ID and CSeq; copies To and adds a tag (the given
    ``to_tag`` or a fresh one) unless the status is 100 or the To already has
    one (§8.2.6.2). Content-Length always matches ``body``.
    """
    if not 100 <= status <= 699:
        raise LocalSipError(f"invalid status code {status}")
    if body and content_type is None:
        raise LocalSipError("a response with a body needs a content_type")
    src = request.headers
    # The copied values were validated and unfolded when the request was
    # parsed (or built), so the lines are written directly, and the typed
    # values the request already parsed are shared (they are immutable):
    # reading the response's Via, From, CSeq... parses nothing again.
    vias = tuple([value.strip() for value in src._lines_by_key("via")])
    from_value = _one(src, "from").strip()
    to_value = _one(src, "to").strip()
    call_id = _one(src, "call-id").strip()
    cseq = _one(src, "cseq").strip()
    to_addr: NameAddr | None = None
    if status != 100 and request.to_tag is None:
        to_addr = request.to.with_tag(to_tag or new_tag())
        to_value = str(to_addr)
    lines = [f"Via: {value}" for value in vias]
    lines += (f"From: {from_value}", f"To: {to_value}", f"Call-ID: {call_id}", f"CSeq: {cseq}")
    keys = ["via"] * len(vias)
    keys += ("from", "to", "call-id", "cseq")
    index: dict[str, Values] = {
        "from": (from_value,),
        "to": (to_value,),
        "call-id": (call_id,),
        "cseq": (cseq,),
    }
    if vias:
        index["via"] = vias
    plain = not headers and content_type is None
    if plain:  # the usual case (a 100 Trying, a proxy's 408): Content-Length written here
        length = str(len(body))
        lines.append(f"Content-Length: {length}")
        keys.append("content-length")
        index["content-length"] = (length,)
    out = Headers._parsed(tuple(lines), tuple(keys), index)
    out.dirty = True
    cache = out._cache
    parsed = src._cache
    for key in ("via", "from", "to", "call-id", "cseq"):
        value = parsed.get(key)
        if value is not None:
            cache[key] = value
    if to_addr is not None:
        cache["to"] = to_addr
    if not plain:
        for name, value in headers:
            out.add(name, value)
        if content_type is not None:
            out.add("Content-Type", content_type)
        out.add("Content-Length", str(len(body)))
    return Response(status, reason, out, body)


def _one(headers: Headers, key: str) -> str:
    values = headers._lines_by_key(key)
    if not values:
        raise LocalSipError(f"request has no {key} header")
    return values[0]
