"""The per-call message work of a stateful proxy: Trunkline beside sipmessage, same run.

One call through a record-routing stateful proxy is seven messages in and
seven out (RFC 3261 §16): INVITE / 100 / 180 / 200 / ACK / BYE / 200 as SIPp's
``uac_rr.xml`` and ``uas_rr.xml`` (``tests/data/sipp/proxy``) send them, with
the proxy at 127.0.0.1:5060, the uac at :5061 and the uas at :5062. The work
per message is what ``proxy/server.py`` and ``proxy/router.py`` do with it,
through the same public calls, without sockets or transaction state:

- every request: parse; the server-transaction key (top Via branch, sent-by,
  CSeq method, §17.2.3); §16.3 checks (Via, Max-Forwards, Route,
  Proxy-Require, CSeq, To, From, Request-URI, loop detection against our own
  Vias); Route pre-processing (§16.4: our own Route removed from in-dialog
  requests); the To tag; a copy for the branch (§16.6 item 1) with the
  Request-URI rewritten to the registered contact (initial INVITE, item 2),
  Max-Forwards decremented (item 3), our Record-Route on the INVITE (item 4),
  our Via with a loop-detecting branch (item 8, a hash of the §16.6 fields);
  the client-transaction key; serialized, and its size read once more for
  the transport choice (§18.1.1).
- the 2xx ACK is forwarded statelessly (§16.11): same checks, no copy,
  Max-Forwards and Via edited on the request itself.
- every response: parse; the client-transaction key (top Via branch, CSeq
  method, §17.1.3); our Via popped (§16.7 step 3); the next Via read for
  the response's destination (§18.2.2); serialized (the uas's 100 is
  absorbed, §16.7 step 5).
- the 100 Trying the proxy sends for the INVITE (§16.2), built from the
  request and serialized.

Each call is a different one (Call-ID, tags and branches change, as SIPp's
``[call_id]``/``[call_number]``/``[branch]`` make them; :data:`POOL` calls are
cycled), so Trunkline's interning of header values (a call's From, To and Vias
parsed once, ``trunkline.sip.grammar.INTERN_LIMIT``) only helps within a call,
as on the wire. The Request-URI and the proxy's own Route repeat across calls,
as they do with SIPp.

The same work is written against ``sipmessage`` (the faster peer of
``bench/parse.py``) in its own idiom, mutating in place where Trunkline copies,
and both outputs are checked to carry the same header fields before timing.
Calls per CPU-second on one core, best of several interleaved rounds; the last
line is the ratio:

    proxy_path: <value>x sipmessage (goal 3x)

Run: ``.venv/bin/python bench/proxy_path.py [--seconds 1.0] [--rounds 5] [--profile]``.

``--server CALLS`` measures the whole call path instead: a real
``ProxyServer`` (uvloop, one worker, the uac trusted as in ``bench/proxy.py``)
is fed the six messages SIPp's ``uac_rr.xml``/``uas_rr.xml`` send per call,
each call new (Call-ID, tags, branches), built before the timed part; the
sends are captured in place of ``sendto``, so no syscall is counted and other
processes' load does not show up as our CPU (``time.process_time``). The
printout is CPU per call (seven messages in, seven out) and, with
``--profile``, the Python function calls per call (cProfile).

``--register N`` does the same for authenticated registrations: SIPp's
``register_auth.xml`` exchange (REGISTER, 401, REGISTER with an MD5 digest,
200) for ``--users`` distinct users (10,000, as ``bench/proxy.py``), into the
default location service (in memory, SQLite behind). The digest answers are
computed before the timed part from nonces the server's secret issues (the
warm-up answers the real 401s), so SIPp's hashing is not counted.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import re
import secrets
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from trunkline.sip import parse_message
from trunkline.sip.builder import make_response
from trunkline.sip.events import Peer
from trunkline.sip.headers import Via
from trunkline.sip.message import Request, Response
from trunkline.sip.transaction import ServerTransaction
from trunkline.sip.transaction_table import TransactionLayer
from trunkline.sip.uri import SipUri

PROXY = ("127.0.0.1", 5060)
OWN = {"127.0.0.1:5060"}
RECORD_ROUTE = "<sip:127.0.0.1:5060;lr>"
TARGET = "sip:service@127.0.0.1:5062;ob"
COOKIE = "z9hG4bK-tl-"

SDP = (
    b"v=0\r\n"
    b"o=user1 53655765 2353687637 IN IP4 127.0.0.1\r\n"
    b"s=-\r\n"
    b"c=IN IP4 127.0.0.1\r\n"
    b"t=0 0\r\n"
    b"m=audio 6000 RTP/AVP 0\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
)
_LEN = str(len(SDP)).encode()
_FROM = b"From: sipp <sip:sipp@127.0.0.1:5061>;tag=4242SIPpTag00@N@\r\n"
_TO = b"To: service <sip:service@127.0.0.1:5060>"
_TAG = b";tag=@N@SIPpTag01"
_CALL_ID = b"Call-ID: @N@-4242@127.0.0.1\r\n"
_UAC_VIA = b"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-4242-@N@-0\r\n"
_PROXY_VIA = b"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-tl-0123456789abcdef.@N@;rport\r\n"
_UAC_VIA_R = b"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-4242-@N@-0;received=127.0.0.1\r\n"
_RR = b"Record-Route: <sip:127.0.0.1:5060;lr>\r\n"

INVITE = (
    b"INVITE sip:service@127.0.0.1:5060 SIP/2.0\r\n" + _UAC_VIA + _FROM + _TO + b"\r\n"
    b"" + _CALL_ID + b"CSeq: 1 INVITE\r\n"
    b"Contact: sip:sipp@127.0.0.1:5061\r\n"
    b"Max-Forwards: 70\r\n"
    b"Subject: Performance Test\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: " + _LEN + b"\r\n\r\n" + SDP
)


def _response(status: bytes, to_tag: bool, cseq: bytes, rr: bool, body: bytes) -> bytes:
    return (
        b"SIP/2.0 " + status + b"\r\n" + _PROXY_VIA + _UAC_VIA_R + (_RR if rr else b"") + _FROM
        + _TO + (_TAG if to_tag else b"") + b"\r\n" + _CALL_ID + b"CSeq: " + cseq + b"\r\n"
        + (b"Contact: <sip:127.0.0.1:5062;transport=UDP>\r\n" if to_tag else b"")
        + (b"Content-Type: application/sdp\r\n" if body else b"")
        + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )  # fmt: skip


TRYING = _response(b"100 Trying", False, b"1 INVITE", False, b"")
RINGING = _response(b"180 Ringing", True, b"1 INVITE", True, b"")
OK_INVITE = _response(b"200 OK", True, b"1 INVITE", True, SDP)
OK_BYE = _response(b"200 OK", True, b"2 BYE", False, b"").replace(b".@N@;", b".@N@b;")


def _in_dialog(method: bytes, cseq: bytes, branch: bytes) -> bytes:
    return (
        method + b" sip:127.0.0.1:5062;transport=UDP SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=" + branch + b"\r\n"
        b"Route: <sip:127.0.0.1:5060;lr>\r\n" + _FROM + _TO + _TAG + b"\r\n" + _CALL_ID
        + b"CSeq: " + cseq + b"\r\n"
        b"Contact: sip:sipp@127.0.0.1:5061\r\n"
        b"Max-Forwards: 70\r\n"
        b"Content-Length: 0\r\n\r\n"
    )  # fmt: skip


ACK = _in_dialog(b"ACK", b"1 ACK", b"z9hG4bK-4242-@N@-5")
BYE = _in_dialog(b"BYE", b"2 BYE", b"z9hG4bK-4242-@N@-7")

TEMPLATES = (INVITE, TRYING, RINGING, OK_INVITE, ACK, BYE, OK_BYE)
POOL = 2000
"""Distinct calls cycled through: Call-ID, tags and branches differ per call, as
SIPp's ``[call_id]``, ``[call_number]`` and ``[branch]`` make them, so no cache
keyed by header text can carry one call's work over to the next."""


def make_calls(count: int = POOL) -> list[tuple[bytes, ...]]:
    """The seven messages of ``count`` distinct calls."""
    return [
        tuple(t.replace(b"@N@", str(n).encode()) for t in TEMPLATES) for n in range(1, count + 1)
    ]


Call = Callable[[tuple[bytes, ...]], list[bytes]]


def _loop_branch(parts: list[str]) -> str:
    """§16.6 item 8: a branch carrying a hash of the fields a loop leaves unchanged."""
    digest = hashlib.blake2b("\x1e".join(parts).encode("utf-8", "surrogateescape"), digest_size=8)
    return f"{COOKIE}{digest.hexdigest()}.{secrets.token_hex(8)}"


# ------------------------------------------------------------------ Trunkline


def _tl_is_own(uri: object) -> bool:
    return (
        isinstance(uri, SipUri)
        and uri.user is None
        and f"{uri.host}:{uri.port or 5060}" in OWN
    )  # fmt: skip


def _tl_request(
    data: bytes, *, stateful: bool, target: str | None, trying: list[bytes] | None = None
) -> bytes:
    request = parse_message(data)
    assert isinstance(request, Request)
    out = _tl_forward(request, stateful=stateful, target=target, trying=trying)
    wire = bytes(out)
    assert len(bytes(out)) == len(wire)
    return wire


def _tl_forward(
    request: Request, *, stateful: bool, target: str | None, trying: list[bytes] | None = None
) -> Request:
    """The request to send on (§16.3-§16.6, or §16.11 for the 2xx ACK), not yet serialized."""
    top = request.via[0]
    server_key = (top.branch, top.host, top.port, request.cseq.method)
    # route(REQINIT): §16.3 (validation.validate_request)
    request.headers.get("User-Agent")
    vias = request.via
    max_forwards = request.max_forwards
    request.route  # noqa: B018
    request.proxy_require  # noqa: B018
    request.cseq  # noqa: B018
    request.to  # noqa: B018
    request.from_  # noqa: B018
    uri = request.uri
    assert uri.scheme == "sip" and max_forwards != 0
    assert not [v for v in vias if f"{v.host}:{v.port or 5060}" in OWN]
    # route(PREROUTE): §16.4
    if "Route" in request.headers:
        routes = request.route
        while routes and _tl_is_own(routes[0].uri):
            del routes[0]
            request.headers.pop_first("Route")
    in_dialog = request.to_tag is not None
    assert in_dialog or isinstance(uri, SipUri)
    if trying is not None:  # §16.2: the proxy's own 100 for an INVITE
        trying.append(bytes(make_response(request, 100, "Trying")))
    if not stateful:  # §16.11: the 2xx ACK, forwarded statelessly
        out = request
    else:
        out = request.copy()
        if target is not None and target != out.uri_text:
            out.uri = target
    max_forwards = out.max_forwards
    out.headers.set("Max-Forwards", str(70 if max_forwards is None else max_forwards - 1))
    if stateful and not in_dialog:
        out.headers.prepend("Record-Route", RECORD_ROUTE)
    headers = out.headers
    branch = _loop_branch(
        [
            out.uri_text,
            out.to_tag or "",
            out.from_tag or "",
            out.call_id,
            str(out.cseq.number),
            "\x1f".join(headers.get_all("Route")),
            "\x1f".join(headers.get_all("Proxy-Require")),
            "\x1f".join(headers.lines("Proxy-Authorization")),
        ]
    )
    via = Via("UDP", PROXY[0], PROXY[1], {"branch": branch, "rport": None})
    headers.prepend("Via", str(via))
    client_key = (out.via[0].branch, out.cseq.method)
    assert server_key and client_key
    return out


def _tl_response(data: bytes, *, forward: bool) -> bytes:
    response = parse_message(data)
    assert isinstance(response, Response)
    client_key = (response.via[0].branch, response.cseq.method)
    response.headers.pop_first("Via")
    if not forward:
        return b""
    upstream = response.via[0]
    destination = (upstream.received or upstream.host, upstream.rport or upstream.port)
    assert client_key and destination
    return bytes(response)


def trunkline_call(messages: tuple[bytes, ...]) -> list[bytes]:
    invite_in, trying_in, ringing, ok_invite, ack, bye, ok_bye = messages
    trying: list[bytes] = []
    invite = _tl_request(invite_in, stateful=True, target=TARGET, trying=trying)
    return [
        invite,
        trying[0],
        _tl_response(trying_in, forward=False),
        _tl_response(ringing, forward=True),
        _tl_response(ok_invite, forward=True),
        _tl_request(ack, stateful=False, target=None),
        _tl_request(bye, stateful=True, target=None),
        _tl_response(ok_bye, forward=True),
    ]


# ------------------------------------------------- Trunkline, with transaction state
#
# The same call again, now through the transaction layer a stateful proxy runs
# (RFC 3261 §17, §16.2, §16.7): a server transaction per request, a client
# transaction per forwarded request, responses matched, forwarded upstream
# through the server transaction and serialized, timers fired on a simulated
# clock. Transactions stay alive for their RFC timers (L, M, J: 64*T1 = 32 s;
# K: 5 s), so at ``rate`` calls/s thousands of calls' transactions are live,
# as in a running proxy; that is the state the garbage collector walks.

UAC = Peer("udp", "127.0.0.1", 5061)
UAS = Peer("udp", "127.0.0.1", 5062)
_UAS_BRANCH = re.compile(rb"branch=(z9hG4bK-tl-[^;]+);")


def _relay(layer: TransactionLayer, server: ServerTransaction, data: bytes, now: float) -> None:
    """A response from the uas: its client transaction (§17.1.3), then upstream (§16.7)."""
    response = parse_message(data)
    assert isinstance(response, Response)
    assert layer.receive_response(response, now) is not None
    if response.status == 100:
        return  # §16.7 step 5: a 100 is not forwarded
    response.headers.pop_first("Via")
    server.send_response(response, now)


def _flush(layer: TransactionLayer) -> None:
    """What the transport does with the layer's output: serialize every message."""
    for transmit in layer.drain_transmits():
        bytes(transmit.message)
    layer.drain_events()


def stateful_call(layer: TransactionLayer, messages: tuple[bytes, ...], now: float) -> None:
    """One call (INVITE/100/180/200/ACK/BYE/200) through ``layer``, all at ``now``.

    The uas's responses carry the branch of the proxy's Via in the templates;
    it is replaced by the branch the proxy really sent (what the uas echoes).
    """
    invite_in, trying_in, ringing, ok_invite, ack_in, bye_in, ok_bye = messages
    invite = parse_message(invite_in)
    assert isinstance(invite, Request)
    server = layer.receive_request(invite, UAC, now)
    assert server is not None
    server.send_response(make_response(invite, 100, "Trying"), now)  # §16.2
    out = _tl_forward(invite, stateful=True, target=TARGET)
    layer.send_request(out, UAS, now)
    found = _UAS_BRANCH.search(trying_in)
    assert found is not None
    theirs, ours = found.group(1), str(out.via[0].branch).encode()
    for data in (trying_in, ringing, ok_invite):
        _relay(layer, server, data.replace(theirs, ours), now)
    _flush(layer)
    ack = parse_message(ack_in)  # the 2xx ACK: no transaction (RFC 6026 §8.7), §16.11
    assert isinstance(ack, Request)
    assert layer.receive_request(ack, UAC, now) is None
    bytes(_tl_forward(ack, stateful=False, target=None))
    bye = parse_message(bye_in)
    assert isinstance(bye, Request)
    server = layer.receive_request(bye, UAC, now)
    assert server is not None
    out = _tl_forward(bye, stateful=True, target=None)
    layer.send_request(out, UAS, now)
    _relay(layer, server, ok_bye.replace(theirs + b"b", str(out.via[0].branch).encode()), now)
    _flush(layer)
    layer.handle_timer(now)


def stateful(rate: float, seconds: float, warmup: float = 35.0) -> tuple[float, int]:
    """CPU-seconds per call at ``rate`` calls/s once transactions reach steady state.

    The first ``warmup`` simulated seconds fill the table (past Timer L, M and
    J); then ``seconds`` of simulated calls are timed: make it longer than the
    transactions live, so the full garbage collections that their state costs
    fall into the window in proportion. Every call is new
    (its number goes into Call-ID, tags and branches, built as it starts: that
    ``bytes.replace`` is timed too). Returns (seconds per call, live transactions).
    """
    layer = TransactionLayer(reject_merged=False)  # a proxy forwards merged requests
    step = 1.0 / rate
    now = 0.0
    number = 0

    def run_until(end: float) -> None:
        nonlocal now, number
        while now < end:
            number += 1
            tag = str(number).encode()
            stateful_call(layer, tuple(t.replace(b"@N@", tag) for t in TEMPLATES), now)
            now += step

    run_until(warmup)
    live = len(layer)
    first = number
    start = time.process_time()
    run_until(warmup + seconds)
    return (time.process_time() - start) / (number - first), live


def micro(calls: list[tuple[bytes, ...]], rounds: int) -> list[tuple[str, float]]:
    """Microseconds of CPU per item for each step a proxy takes per message (best of rounds).

    Parsing (lazy) and reading the top Via, CSeq, Call-ID, tags and
    Max-Forwards; a request's edits (§16.6: Route popped, Max-Forwards
    decremented, Record-Route and Via prepended) and serialization; a
    response's Via popped (§16.7) and serialization; the 100 Trying; one
    server and one client transaction of each kind with its responses and
    timers (§17), fed parsed messages.
    """
    invites = [Request.parse(c[0]) for c in calls]
    byes = [Request.parse(c[5]) for c in calls]
    forwarded = [_tl_forward(m, stateful=True, target=TARGET) for m in invites]
    forwarded_byes = [_tl_forward(m, stateful=True, target=None) for m in byes]

    def responses(requests: list[Request], status: int, tag: str | None) -> list[Response]:
        return [make_response(m, status, to_tag=tag) for m in requests]

    ringing, ok = responses(invites, 180, "t"), responses(invites, 200, "t")
    bye_ok = responses(byes, 200, None)
    ringing_in, ok_in = responses(forwarded, 180, "t"), responses(forwarded, 200, "t")
    bye_ok_in = responses(forwarded_byes, 200, None)

    def parse_invite() -> None:
        for c in calls:
            parse_message(c[0])

    def parse_ringing() -> None:
        for c in calls:
            parse_message(c[2])

    def reads() -> None:
        for m in invites:
            top = m.via[0]
            _ = (top.branch, top.sent_by, m.cseq, m.call_id, m.from_tag, m.to_tag, m.max_forwards)

    def request_edits() -> None:
        for c in calls:
            m = parse_message(c[5])
            max_forwards = m.max_forwards
            m.headers.pop_first("Route")
            m.headers.set("Max-Forwards", str((max_forwards or 70) - 1))
            m.headers.prepend("Record-Route", RECORD_ROUTE)
            m.headers.prepend("Via", f"SIP/2.0/UDP 127.0.0.1:5060;branch={COOKIE}{m.call_id}")
            bytes(m)

    def response_edits() -> None:
        for c in calls:
            m = parse_message(c[2])
            m.headers.pop_first("Via")
            upstream = m.via[0]
            _ = (upstream.received, upstream.rport, upstream.host)
            bytes(m)

    def trying() -> None:
        for m in invites:
            bytes(make_response(m, 100, "Trying"))

    def server_invite() -> None:
        layer = TransactionLayer(reject_merged=False)
        for m, r1, r2 in zip(invites, ringing, ok, strict=True):
            txn = layer.receive_request(m, UAC, 0.0)
            assert txn is not None
            layer.receive_request(m, UAC, 0.0)  # a retransmission
            txn.send_response(r1, 0.0)
            txn.send_response(r2, 0.0)
        layer.handle_timer(100.0)  # Timer L
        _flush(layer)

    def server_bye() -> None:
        layer = TransactionLayer(reject_merged=False)
        for m, r in zip(byes, bye_ok, strict=True):
            txn = layer.receive_request(m, UAC, 0.0)
            assert txn is not None
            txn.send_response(r, 0.0)
        layer.handle_timer(100.0)  # Timer J
        _flush(layer)

    def client_invite() -> None:
        layer = TransactionLayer(reject_merged=False)
        for m, r1, r2 in zip(forwarded, ringing_in, ok_in, strict=True):
            layer.send_request(m, UAS, 0.0)
            layer.receive_response(r1, 0.0)
            layer.receive_response(r2, 0.0)
        layer.handle_timer(100.0)  # Timer M
        _flush(layer)

    def client_bye() -> None:
        layer = TransactionLayer(reject_merged=False)
        for m, r in zip(forwarded_byes, bye_ok_in, strict=True):
            layer.send_request(m, UAS, 0.0)
            layer.receive_response(r, 0.0)
        layer.handle_timer(0.6)  # nothing due: the 200 cancelled Timer E
        layer.handle_timer(100.0)  # Timer K
        _flush(layer)

    steps: list[tuple[str, Callable[[], None]]] = [
        ("parse INVITE", parse_invite),
        ("parse 180", parse_ringing),
        ("read Via/CSeq/Call-ID/tags/Max-Forwards", reads),
        ("parse BYE + §16.6 edits + serialize", request_edits),
        ("parse 180 + pop Via + serialize", response_edits),
        ("100 Trying built + serialized", trying),
        ("server INVITE txn: 180, 200, Timer L", server_invite),
        ("server BYE txn: 200, Timer J", server_bye),
        ("client INVITE txn: 180, 200, Timer M", client_invite),
        ("client BYE txn: 200, Timer K", client_bye),
    ]
    results: list[tuple[str, float]] = []
    for name, step in steps:
        best = float("inf")
        for _ in range(rounds):
            start = time.process_time()
            step()
            best = min(best, time.process_time() - start)
        results.append((name, best / len(calls) * 1e6))
    return results


# ----------------------------------------------------------------- sipmessage


def _sm_is_own(uri: object) -> bool:
    return uri.user is None and f"{uri.host}:{uri.port or 5060}" in OWN  # type: ignore[attr-defined]


def _sm_pop_first(headers: object, name: str) -> None:
    values = headers.getlist(name)  # type: ignore[attr-defined]
    if "," in values[0]:
        values[0] = values[0].split(",", 1)[1].strip()
    else:
        del values[0]
        if not values:
            headers.remove(name)  # type: ignore[attr-defined]


def _sm_request(
    data: bytes, *, target: str | None, stateful: bool, trying: list[bytes] | None = None
) -> bytes:
    import sipmessage

    request = sipmessage.Message.parse(data)
    assert isinstance(request, sipmessage.Request)
    top = request.via[0]
    server_key = (top.parameters.get("branch"), top.host, top.port, request.cseq.method)
    headers = request.headers
    headers.get("User-Agent")
    vias = request.via
    max_forwards = request.max_forwards
    request.route  # noqa: B018
    request.proxy_require  # noqa: B018
    request.cseq  # noqa: B018
    request.to_address  # noqa: B018
    request.from_address  # noqa: B018
    uri = request.uri
    assert uri.scheme == "sip" and max_forwards != 0
    assert not [v for v in vias if f"{v.host}:{v.port or 5060}" in OWN]
    if headers.get("Route") is not None:
        routes = request.route
        while routes and _sm_is_own(routes[0].uri):
            del routes[0]
            _sm_pop_first(headers, "Route")
    to_tag = request.to_address.parameters.get("tag")
    in_dialog = to_tag is not None
    if trying is not None:
        trying.append(_sm_trying(request))
    if target is not None:
        request.uri = sipmessage.URI.parse(target)
    max_forwards = request.max_forwards
    request.max_forwards = 70 if max_forwards is None else max_forwards - 1
    if stateful and not in_dialog:
        rr = headers.getlist("Record-Route")
        if rr:
            rr.insert(0, RECORD_ROUTE)
        else:
            headers.add("Record-Route", RECORD_ROUTE)
    cseq = request.cseq
    branch = _loop_branch(
        [
            str(request.uri),
            to_tag or "",
            request.from_address.parameters.get("tag") or "",
            request.call_id,
            str(cseq.sequence),
            "\x1f".join(str(r) for r in request.route),
            "\x1f".join(request.proxy_require),
            "\x1f".join(headers.getlist("Proxy-Authorization")),
        ]
    )
    via = sipmessage.Via(
        "UDP", PROXY[0], PROXY[1], sipmessage.Parameters(branch=branch, rport=None)
    )
    headers.getlist("Via").insert(0, str(via))
    client_key = (request.via[0].parameters.get("branch"), request.cseq.method)
    wire = bytes(request)
    assert len(bytes(request)) == len(wire) and server_key and client_key
    return wire


def _sm_response(data: bytes, *, forward: bool) -> bytes:
    import sipmessage

    response = sipmessage.Message.parse(data)
    client_key = (response.via[0].parameters.get("branch"), response.cseq.method)
    _sm_pop_first(response.headers, "Via")
    if not forward:
        return b""
    upstream = response.via[0]
    received = upstream.parameters.get("received")
    rport = upstream.parameters.get("rport")
    destination = (received or upstream.host, int(rport) if rport else upstream.port)
    assert client_key and destination
    return bytes(response)


def _sm_trying(request: object) -> bytes:
    import sipmessage

    response = sipmessage.Response(100, "Trying")
    src, out = request.headers, response.headers  # type: ignore[attr-defined]
    for value in src.getlist("Via"):
        out.add("Via", value)
    for name in ("From", "To", "Call-ID", "CSeq"):
        out.add(name, src[name])
    out.add("Content-Length", "0")
    return bytes(response)


def sipmessage_call(messages: tuple[bytes, ...]) -> list[bytes]:
    invite_in, trying_in, ringing, ok_invite, ack, bye, ok_bye = messages
    trying: list[bytes] = []
    invite = _sm_request(invite_in, target=TARGET, stateful=True, trying=trying)
    return [
        invite,
        trying[0],
        _sm_response(trying_in, forward=False),
        _sm_response(ringing, forward=True),
        _sm_response(ok_invite, forward=True),
        _sm_request(ack, target=None, stateful=False),
        _sm_request(bye, target=None, stateful=True),
        _sm_response(ok_bye, forward=True),
    ]


# ------------------------------------------------- the whole server, in process


_SERVER_INVITE = (
    "INVITE sip:service@127.0.0.2:5062 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-100-{n}-0\r\n"
    "From: sipp <sip:sipp@127.0.0.1:5061>;tag=100SIPpTag00{n}\r\n"
    "To: service <sip:service@127.0.0.2:5062>\r\n"
    "Call-ID: {n}-100@127.0.0.1\r\n"
    "CSeq: 1 INVITE\r\n"
    "Contact: sip:sipp@127.0.0.1:5061\r\n"
    "Max-Forwards: 70\r\n"
    "Subject: Performance Test\r\n"
    "Content-Type: application/sdp\r\n"
    "Content-Length: {length}\r\n\r\n"
)
_SERVER_UAC = ("127.0.0.1", 5061)
_SERVER_UAS = ("127.0.0.2", 5062)


def _server_response(
    status: str, vias: list[str], rr: list[str], n: int, *, cseq: str, body: bytes
) -> bytes:
    """What SIPp's ``uas_rr.xml`` answers: the received Vias and Record-Routes copied."""
    lines = [
        f"SIP/2.0 {status}",
        *vias,
        *rr,
        f"From: sipp <sip:sipp@127.0.0.1:5061>;tag=100SIPpTag00{n}",
        f"To: service <sip:service@127.0.0.2:5062>;tag=uas{n}",
        f"Call-ID: {n}-100@127.0.0.1",
        f"CSeq: {cseq}",
        "Contact: <sip:127.0.0.2:5062;transport=UDP>",
    ]
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _server_in_dialog(method: str, n: int, cseq: int, routes: list[str], branch: int) -> bytes:
    """What SIPp's ``uac_rr.xml`` sends in the dialog: Route from the 200's Record-Route."""
    return (
        f"{method} sip:127.0.0.2:5062;transport=UDP SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-100-{n}-{branch}\r\n"
        + "".join(f"Route: {route}\r\n" for route in routes)
        + f"From: sipp <sip:sipp@127.0.0.1:5061>;tag=100SIPpTag00{n}\r\n"
        f"To: service <sip:service@127.0.0.2:5062>;tag=uas{n}\r\n"
        f"Call-ID: {n}-100@127.0.0.1\r\n"
        f"CSeq: {cseq} {method}\r\n"
        "Contact: sip:sipp@127.0.0.1:5061\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def _server_calls(first: int, count: int, proxy_via: str, rr: str) -> list[tuple[bytes, ...]]:
    """The six messages the proxy receives per call (the uas sends no 100, as SIPp's);
    ``@BRANCH@`` stands for the proxy's branch, known once it forwarded the request."""
    uac_via = "Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-100-{n}-{b}"
    calls: list[tuple[bytes, ...]] = []
    for n in range(first, first + count):
        invite = _SERVER_INVITE.format(n=n, length=len(SDP)).encode() + SDP
        vias = [proxy_via, uac_via.format(n=n, b=0)]
        bye_vias = [proxy_via, uac_via.format(n=n, b=6)]
        calls.append(
            (
                invite,
                _server_response("180 Ringing", vias, [rr], n, cseq="1 INVITE", body=b""),
                _server_response("200 OK", vias, [rr], n, cseq="1 INVITE", body=SDP),
                _server_in_dialog("ACK", n, 1, [rr[len("Record-Route: ") :]], 5),
                _server_in_dialog("BYE", n, 2, [rr[len("Record-Route: ") :]], 6),
                _server_response("200 OK", bye_vias, [], n, cseq="2 BYE", body=b""),
            )
        )
    return calls


def _branch_of(data: bytes) -> bytes:
    """The branch of the first Via of a message the proxy sent."""
    start = data.index(b";branch=") + 8
    end = start
    while data[end : end + 1] not in (b";", b"\r", b","):
        end += 1
    return data[start:end]


Sent = list[tuple[bytes, tuple[str, int]]]


@contextlib.contextmanager
def _captured_sends() -> Iterator[Sent]:
    """Every UDP send of a ProxyServer in this process goes to the yielded list instead."""
    from trunkline.sip.aio import transport as transport_module

    sent: Sent = []

    def capture(self: object, data: bytes, peer: tuple[str, int]) -> None:
        sent.append((data, peer))

    real_sendto = transport_module.UdpSocket.sendto
    transport_module.UdpSocket.sendto = capture  # type: ignore[method-assign]
    try:
        yield sent
    finally:
        transport_module.UdpSocket.sendto = real_sendto  # type: ignore[method-assign]


def _in_process_config(data_dir: str, port: int, **limits: int) -> Any:
    """bench/proxy.py's server configuration on ``port``, UDP and TCP only, limits lifted."""
    from trunkline.config import Config

    listen = {"host": "127.0.0.1", "port": port}
    return Config.model_validate(
        {
            "data_dir": data_dir,
            "domains": ["127.0.0.1"],
            "trusted": ["127.0.0.1/32"],
            "workers": 1,
            "listen": {
                "udp": listen,
                "tcp": listen,
                "tls": {**listen, "enabled": False},
                "ws": {**listen, "enabled": False},
            },
            "limits": {
                "requests_per_second": 10**6,
                "burst": 10**6,
                "max_transactions_per_source": 10**6,
                "max_dialogs_per_source": 10**6,
                **limits,
            },
        }
    )


def _free_udp_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _timed(
    run: Callable[[], Awaitable[None]], count: int, turns: int, profile: bool
) -> tuple[float, float, int]:
    """Run ``run`` (``count`` items) once: (us of CPU per item, us per item of ``turns``
    empty loop turns, the driver's own cost, Python function calls per item if ``profile``)."""
    import asyncio
    import cProfile
    import pstats

    profiler = cProfile.Profile() if profile else None
    start = time.process_time()
    if profiler is not None:
        profiler.enable()
    await run()
    if profiler is not None:
        profiler.disable()
    elapsed = time.process_time() - start
    start = time.process_time()
    for _ in range(count):  # the driver's own loop turns, nothing delivered
        for _ in range(turns):
            await asyncio.sleep(0)
    idle = time.process_time() - start
    function_calls = 0
    if profiler is not None:
        stats = pstats.Stats(profiler)
        function_calls = int(stats.total_calls)  # type: ignore[attr-defined]
        stats.sort_stats("tottime").print_stats(45)
        stats.sort_stats("cumtime").print_stats(45)
    return 1e6 * elapsed / count, 1e6 * idle / count, function_calls // count


async def _server_run(
    count: int, profile: bool, warmup: int = 300
) -> tuple[float, float, int, int]:
    """(us of CPU per call, us of the driver's empty loop turns, function calls per call,
    calls completed) for ``count`` calls through a real :class:`ProxyServer`."""
    with _captured_sends() as sent:
        return await _server_calls_timed(count, profile, warmup, sent)


async def _server_calls_timed(
    count: int, profile: bool, warmup: int, sent: Sent
) -> tuple[float, float, int, int]:
    import asyncio
    import tempfile

    from trunkline.proxy.server import ProxyServer
    from trunkline.sip.aio.transport import Inbound

    port = _free_udp_port()
    config = _in_process_config(tempfile.mkdtemp(prefix="proxy-path-"), port)
    server = ProxyServer(config)
    await server.start()
    endpoint = server.endpoint
    assert endpoint is not None
    listener = endpoint.transport.listeners[0]
    local = (listener.host, listener.port)
    deliver = endpoint.transport._deliver
    proxy_via = f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=@BRANCH@;rport=5062"
    rr = f"Record-Route: <sip:127.0.0.1:{port};lr>"

    async def feed(data: bytes, peer: tuple[str, int], until: int) -> None:
        deliver(Inbound(data, "UDP", peer, local, None))
        await asyncio.sleep(0)  # one loop turn per datagram, as on the wire
        for _ in range(20):
            if len(sent) >= until:
                return
            await asyncio.sleep(0)
        raise SystemExit(f"the proxy sent {len(sent)} of {until} messages: {sent!r}")

    async def call(messages: tuple[bytes, ...]) -> None:
        invite, ringing, ok, ack, bye, ok_bye = messages
        sent.clear()
        await feed(invite, _SERVER_UAC, 2)  # 100 Trying upstream, the INVITE downstream
        branch = _branch_of(next(d for d, p in sent if p == _SERVER_UAS))
        await feed(ringing.replace(b"@BRANCH@", branch), _SERVER_UAS, 3)
        await feed(ok.replace(b"@BRANCH@", branch), _SERVER_UAS, 4)
        await feed(ack, _SERVER_UAC, 5)
        await feed(bye, _SERVER_UAC, 6)
        branch = _branch_of(sent[-1][0])
        await feed(ok_bye.replace(b"@BRANCH@", branch), _SERVER_UAS, 7)
        assert sent[-1][1] == _SERVER_UAC and sent[-1][0].startswith(b"SIP/2.0 200"), sent

    for messages in _server_calls(1, warmup, proxy_via, rr):  # warm up
        await call(messages)
    calls = _server_calls(100_000, count, proxy_via, rr)

    async def run() -> None:
        for messages in calls:
            await call(messages)

    per_call, idle, function_calls = await _timed(run, count, 6, profile)
    await server.stop(grace=0.1)
    return per_call, idle, function_calls, count


def server_path(count: int, profile: bool) -> None:
    """Print the CPU per call of a real ProxyServer, sends captured (no syscalls)."""
    import asyncio

    from trunkline.sip.aio import new_event_loop

    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        per_call, idle, function_calls, done = runner.run(_server_run(count, profile))
    extra = f", {function_calls} function calls per call" if profile else ""
    print(
        f"server: {per_call:.0f} us of CPU per call in process ({done} calls, sends captured; "
        f"{idle:.0f} us of it the driver's 6 empty loop turns{extra})"
    )


# ----------------------------------------------------------- --register: the REGISTER path

_REGISTER_UAC = ("127.0.0.1", 5063)
_REGISTER = (
    "REGISTER sip:127.0.0.1:{port} SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5063;branch=z9hG4bK-{n}-{cseq}-0\r\n"
    "From: <sip:{user}@127.0.0.1>;tag={n}\r\n"
    "To: <sip:{user}@127.0.0.1>\r\n"
    "Call-ID: {n}-4242@127.0.0.1\r\n"
    "CSeq: {cseq} REGISTER\r\n"
    "Contact: <sip:{user}@127.0.0.1:5063>\r\n"
    "{auth}"
    "Max-Forwards: 70\r\n"
    "Expires: 3600\r\n"
    "Content-Length: 0\r\n\r\n"
)
"""What SIPp's ``register_auth.xml`` (``tests/data/sipp/proxy``) sends, per call."""


def _register_user(index: int) -> tuple[str, str]:
    return f"u{index:05d}", f"pw-u{index:05d}"


def _authorization(challenge_values: list[str], user: str, password: str, uri: str, n: int) -> str:
    """The Authorization line SIPp computes from a 401 (MD5, qop=auth, nc 1)."""
    from trunkline.sip.authheaders import Challenge
    from trunkline.sip.digest import DigestClient

    client = DigestClient(user, password, algorithms=("MD5",), cnonce_factory=lambda: f"{n:08x}")
    if not client.challenged([Challenge.parse(value) for value in challenge_values]):
        raise SystemExit(f"the 401 carried no usable challenge: {challenge_values!r}")
    ((name, value),) = client.authorization("REGISTER", uri)
    return f"{name}: {value}\r\n"


def _challenges(data: bytes) -> list[str]:
    """The WWW-Authenticate values of a 401 the proxy sent."""
    return [
        value for name, value in parse_message(data).headers if name.lower() == "www-authenticate"
    ]


async def _register_run(
    count: int, users: int, profile: bool, warmup: int = 300
) -> tuple[float, float, int, int]:
    """(us of CPU per registration, us of the driver's empty loop turns, function calls
    per registration, registrations done) through a real :class:`ProxyServer`."""
    with _captured_sends() as sent:
        return await _register_timed(count, users, profile, warmup, sent)


async def _register_timed(
    count: int,
    users: int,
    profile: bool,
    warmup: int,
    sent: Sent,
) -> tuple[float, float, int, int]:
    import asyncio
    import tempfile

    from trunkline.proxy.server import ProxyServer
    from trunkline.sip.aio.transport import Inbound
    from trunkline.store.datadir import DataDir
    from trunkline.store.users import UserStore

    port = _free_udp_port()
    data_dir = tempfile.mkdtemp(prefix="proxy-register-")
    config = _in_process_config(data_dir, port, auth_failures_before_ban=10**6)
    db = DataDir(data_dir).database()
    store = UserStore(db)
    for index in range(users):
        user, password = _register_user(index)
        store.add(user, "127.0.0.1", password, time.time())
    db.close()
    server = ProxyServer(config, legacy_digest=True)  # MD5 only, as bench/proxy.py runs it
    await server.start()
    endpoint = server.endpoint
    assert endpoint is not None and server.registrar is not None
    authenticator = server.registrar.authenticator
    assert authenticator is not None
    listener = endpoint.transport.listeners[0]
    local = (listener.host, listener.port)
    deliver = endpoint.transport._deliver
    uri = f"sip:127.0.0.1:{port}"

    async def feed(data: bytes, until: int, status: bytes) -> None:
        deliver(Inbound(data, "UDP", _REGISTER_UAC, local, None))
        await asyncio.sleep(0)  # one loop turn per datagram, as on the wire
        for _ in range(20):
            if len(sent) >= until:
                if not sent[-1][0].startswith(b"SIP/2.0 " + status):
                    raise SystemExit(f"expected {status!r}, the proxy sent {sent[-1][0]!r}")
                return
            await asyncio.sleep(0)
        raise SystemExit(f"the proxy sent {len(sent)} of {until} messages: {sent!r}")

    def message(n: int, cseq: int, auth: str = "") -> bytes:
        user, _ = _register_user(n % users)
        return _REGISTER.format(port=port, n=n, cseq=cseq, user=user, auth=auth).encode()

    # Warm up through the real exchange: the second REGISTER answers the 401's nonce.
    for n in range(warmup):
        sent.clear()
        await feed(message(n, 1), 1, b"401")
        auth = _authorization(_challenges(sent[-1][0]), *_register_user(n % users), uri, n)
        await feed(message(n, 2, auth), 2, b"200")
    # Timed: the answers are computed beforehand (SIPp's MD5 is not the proxy's work)
    # from nonces of the server's own secret, issued now as a 401 would issue them.
    first = 1_000_000
    digest = authenticator.server("127.0.0.1")
    registrations = []
    for n in range(first, first + count):
        values = digest.challenge_values(server.clock())
        auth = _authorization(values, *_register_user(n % users), uri, n)
        registrations.append((message(n, 1), message(n, 2, auth)))

    async def run() -> None:
        for plain, authorized in registrations:
            sent.clear()
            await feed(plain, 1, b"401")
            await feed(authorized, 2, b"200")

    per_registration, idle, function_calls = await _timed(run, count, 2, profile)
    await server.stop(grace=0.1)
    return per_registration, idle, function_calls, count


def register_path(count: int, users: int, profile: bool) -> None:
    """Print the CPU per authenticated registration of a real ProxyServer, sends captured."""
    import asyncio

    from trunkline.sip.aio import new_event_loop

    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        per_reg, idle, function_calls, done = runner.run(_register_run(count, users, profile))
    extra = f", {function_calls} function calls per registration" if profile else ""
    print(
        f"register: {per_reg:.0f} us of CPU per registration in process ({done} registrations "
        f"of {min(users, done)} users, sends captured; {idle:.0f} us of it the driver's "
        f"2 empty loop turns{extra})"
    )


# ----------------------------------------------------------------- the bench


def _fields(data: bytes) -> list[tuple[str, str]]:
    """Start line and header fields (names canonical, Via branches blanked) for comparison."""
    if not data:
        return []
    msg = parse_message(data)
    start = bytes(msg).split(b"\r\n", 1)[0].decode()
    fields = [(start, "")]
    for name, value in sorted(msg.headers, key=lambda f: f[0].lower()):
        ours = name.lower() == "via" and COOKIE in value
        fields.append((name.lower(), value.split(";branch=")[0] if ours else value))
    return fields


def check_same_work(calls: list[tuple[bytes, ...]]) -> None:
    """Both libraries must produce the same messages (up to header order and our branch)."""
    for messages in (calls[0], calls[-1]):
        ours = [_fields(m) for m in trunkline_call(messages)]
        theirs = [_fields(m) for m in sipmessage_call(messages)]
        for index, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            if a != b:
                raise SystemExit(f"message {index} differs:\n{a}\n{b}")


def one_round(call: Call, calls: list[tuple[bytes, ...]], seconds: float) -> float:
    """Calls per CPU-second (``time.process_time``) over one round of about ``seconds``."""
    count = 0
    start = time.process_time()
    deadline = start + seconds
    while True:
        for messages in calls[count % POOL : count % POOL + 20]:
            call(messages)
        count += 20
        now = time.process_time()
        if now >= deadline:
            return count / (now - start)


def profile(calls: list[tuple[bytes, ...]], seconds: float) -> None:
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    deadline = time.process_time() + seconds
    profiler.enable()
    count = 0
    while time.process_time() < deadline:
        trunkline_call(calls[count % POOL])
        count += 1
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="length of one round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per library (best kept)")
    parser.add_argument("--profile", action="store_true", help="cProfile Trunkline's side")
    parser.add_argument(
        "--stateful",
        action="store_true",
        help="Trunkline only: the calls through the transaction layer, with live state",
    )
    parser.add_argument("--rate", type=float, default=300.0, help="calls/s for --stateful")
    parser.add_argument(
        "--window",
        type=float,
        default=40.0,
        help="simulated seconds timed by --stateful (long enough to include full collections)",
    )
    parser.add_argument(
        "--micro", action="store_true", help="Trunkline only: microseconds per proxy step"
    )
    parser.add_argument(
        "--server",
        type=int,
        metavar="CALLS",
        help="Trunkline only: CALLS calls through a real ProxyServer in process, sends captured",
    )
    parser.add_argument(
        "--register",
        type=int,
        metavar="N",
        help="Trunkline only: N authenticated registrations (REGISTER, 401, REGISTER, 200) "
        "through a real ProxyServer in process, sends captured",
    )
    parser.add_argument("--users", type=int, default=10000, help="distinct users for --register")
    args = parser.parse_args()
    if args.register:
        register_path(args.register, args.users, args.profile)
        return
    if args.server:
        server_path(args.server, args.profile)
        return
    if args.micro:
        for name, micros in micro(make_calls(300), max(args.rounds, 20)):
            print(f"{name:>42}: {micros:7.2f} us")
        return
    if args.stateful:
        per_call, live = stateful(args.rate, args.window)
        print(
            f"stateful: {per_call * 1e6:.0f} us of CPU per call at {args.rate:g} calls/s "
            f"({live} live transactions)"
        )
        return

    calls = make_calls()
    check_same_work(calls)
    if args.profile:
        profile(calls, args.seconds * args.rounds)
        return
    libraries: dict[str, Call] = {"trunkline": trunkline_call, "sipmessage": sipmessage_call}
    results = dict.fromkeys(libraries, 0.0)
    for _ in range(args.rounds):
        for name, call in libraries.items():
            results[name] = max(results[name], one_round(call, calls, args.seconds))
    for name, value in results.items():
        print(f"{name:>10}: {value:>8,.0f} calls/s  {1e6 / value:6.1f} us of CPU per call")
    print(f"proxy_path: {results['trunkline'] / results['sipmessage']:.2f}x sipmessage (goal 3x)")


if __name__ == "__main__":
    main()
