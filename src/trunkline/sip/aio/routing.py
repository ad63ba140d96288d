"""Where SIP messages go: the transport-layer rules of RFC 3261 §18 and RFC 3581.

Pure functions (no sockets, no clock) used by the endpoint:

- :func:`stamp_received`: the server side of §18.2.1 and RFC 3581 §4 -- add
  ``received`` when the top Via's sent-by is not the packet's source address
  (always when the client asked for ``rport``) and fill in ``rport``.
- :func:`response_destination`: §18.2.2 for a response that cannot simply go
  back on the connection its request came on: ``maddr``, then
  ``received``/``rport``, then sent-by.
- :func:`next_hop`: §8.1.2 -- the URI a request is sent to (the first Route
  when there is a route set, else the Request-URI) -- and
  :func:`choose_transport`, the transport to reach it with, including the
  §18.1.1 rule that a request over UDP longer than the MTU limit (1300 bytes
  when the path MTU is unknown) goes over TCP instead.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from trunkline.sip.aio.transport import DEFAULT_PORTS, normalize_host
from trunkline.sip.headers import NameAddr, Via
from trunkline.sip.message import Request
from trunkline.sip.uri import SipUri, parse_uri

#: RFC 3261 §18.1.1: "... 1300 bytes, if the MTU is unknown".
MTU_LIMIT = 1300

_URI_TRANSPORTS = {"udp": "UDP", "tcp": "TCP", "tls": "TLS", "ws": "WS", "wss": "WSS"}


@dataclass(frozen=True, slots=True)
class Destination:
    """A transport name (upper case) and an address to send to."""

    transport: str
    host: str
    port: int
    server_name: str | None = None


def is_ip_literal(host: str) -> bool:
    """True for an IPv4 or (bracketed or bare) IPv6 address.

    Asked for the next hop of every request sent, mostly about the same few
    hosts: answers are remembered (up to :data:`_LITERAL_CACHE_SIZE` hosts).
    """
    known = _literal_cache.get(host)
    if known is not None:
        return known
    try:
        ipaddress.ip_address(normalize_host(host))
        known = True
    except ValueError:
        known = False
    if len(_literal_cache) >= _LITERAL_CACHE_SIZE:
        _literal_cache.clear()
    _literal_cache[host] = known
    return known


_LITERAL_CACHE_SIZE = 4096
_literal_cache: dict[str, bool] = {}


def same_address(a: str, b: str) -> bool:
    """Compare two hosts as addresses when both are IPs, else as text."""
    if a == b:
        return True
    na, nb = normalize_host(a), normalize_host(b)
    try:
        return ipaddress.ip_address(na) == ipaddress.ip_address(nb)
    except ValueError:
        return na == nb


def stamp_received(request: Request, source: tuple[str, int]) -> bool:
    """Add ``received``/``rport`` to the top Via (RFC 3261 §18.2.1, RFC 3581 §4).

    Returns True when the Via was changed. ``received`` holds the bare
    source IP (no brackets, RFC 5118 §4.5). With ``rport`` requested the
    server MUST add ``received`` even when it equals sent-by (RFC 3581 §4).
    """
    top = request.top_via
    if top is None:
        return False
    host, port = source
    params: dict[str, str | None] = {}
    if top.rport_requested:
        params["rport"] = str(port)
        params["received"] = normalize_host(host)
    elif not same_address(top.host, host):
        params["received"] = normalize_host(host)
    if not params:
        return False
    request.via = [top.with_params(**params), *request.via[1:]]
    return True


def response_destination(via: Via) -> Destination:
    """Where to send a response when its request's connection is gone (§18.2.2).

    Unreliable transports: ``maddr`` (port from sent-by or the default), else
    ``received`` with the ``rport`` value or sent-by port, else sent-by.
    Reliable ones use the same address (the caller tries the original
    connection first).
    """
    # Via values are immutable and interned (every response of a transaction
    # carries the same object): the answer is remembered per object.
    known = _destinations.get(id(via))
    if known is not None and known[0] is via:
        return known[1]
    transport = via.transport.upper()
    default = DEFAULT_PORTS.get(transport, 5060)
    if via.maddr is not None:
        found = Destination(transport, normalize_host(via.maddr), via.port or default)
    else:
        host = via.received if via.received is not None else via.host
        port = via.rport if via.rport is not None else via.port or default
        found = Destination(transport, normalize_host(host), port)
    if len(_destinations) >= _DESTINATION_CACHE_SIZE:
        _destinations.clear()
    _destinations[id(via)] = (via, found)  # the Via is held: its id is not reused meanwhile
    return found


_DESTINATION_CACHE_SIZE = 4096
_destinations: dict[int, tuple[Via, Destination]] = {}


def next_hop(request: Request) -> SipUri:
    """The URI the request is sent to (RFC 3261 §8.1.2, §16.12 loose routing).

    The first Route entry when there is a route set (a strict router there
    gets the request all the same; rewriting the Request-URI for strict
    routing is the dialog layer's job, §12.2.1.1), else the Request-URI.
    """
    routes: list[NameAddr] = request.route
    uri = routes[0].uri if routes else request.uri
    if not isinstance(uri, SipUri):
        raise ValueError(f"cannot route to a {uri.scheme}: URI")
    return uri


def choose_transport(uri: SipUri, size: int, *, mtu_limit: int = MTU_LIMIT) -> str:
    """The transport to send a request of ``size`` bytes to ``uri`` with.

    The URI's ``transport`` parameter wins; ``sips`` means TLS (RFC 3261
    §26.2.2); otherwise UDP, switched to TCP when the request is larger than
    ``mtu_limit`` (§18.1.1). Returns an upper-case name.
    """
    param = uri.transport
    if param is not None:
        name = _URI_TRANSPORTS.get(param.lower(), param.upper())
        if uri.scheme == "sips" and name == "TCP":
            return "TLS"
        if uri.scheme == "sips" and name == "WS":
            return "WSS"
        if name == "UDP" and size > mtu_limit:
            return "TCP"
        return name
    if uri.scheme == "sips":
        return "TLS"
    return "TCP" if size > mtu_limit else "UDP"


def uri_destination(uri: SipUri, transport: str) -> Destination:
    """A destination for ``uri`` without DNS: ``maddr`` or host, port or default.

    Remembered per URI object (immutable; the Request-URIs and Routes of
    parsed requests are interned, so a proxy asks about the same few).
    """
    known = _uri_destinations.get(id(uri))
    if known is not None and known[0] is uri and known[1] == transport:
        return known[2]
    host = uri.maddr or uri.host
    port = uri.port or DEFAULT_PORTS.get(transport, 5060)
    found = Destination(transport, normalize_host(host), port, server_name=normalize_host(uri.host))
    if len(_uri_destinations) >= _DESTINATION_CACHE_SIZE:
        _uri_destinations.clear()
    _uri_destinations[id(uri)] = (uri, transport, found)  # held: its id is not reused meanwhile
    return found


_uri_destinations: dict[int, tuple[SipUri, str, Destination]] = {}


def parse_sip_uri(text: str) -> SipUri:
    """Parse ``text`` and insist on a sip/sips URI (for Contact and Route values)."""
    uri = parse_uri(text)
    if not isinstance(uri, SipUri):
        raise ValueError(f"not a SIP URI: {text}")
    return uri
