"""RFC 3261 §16.3 request validation and §16.6 item 8 loop hashes."""

from __future__ import annotations

import os

from trunkline.proxy.validation import (
    LOOP_BRANCH_PREFIX,
    Reply,
    ValidationPolicy,
    _RandomPool,
    loop_branch,
    loop_hash,
    own_address_keys,
    random_hex,
    validate_request,
)
from trunkline.sip.builder import make_request
from trunkline.sip.message import Request

POLICY = ValidationPolicy(own_addresses=frozenset({"192.0.2.10:5060", "proxy.example.com"}))


def _request(method: str = "INVITE", uri: str = "sip:bob@example.com", **kw: object) -> Request:
    extra = kw.pop("extra", ())
    return make_request(
        method,
        uri,
        from_="<sip:alice@example.com>;tag=a1",
        to="<sip:bob@example.com>",
        via="SIP/2.0/UDP 198.51.100.7:5060",
        call_id="call-1@x",
        extra_headers=extra,  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


def test_valid_request_passes() -> None:
    assert validate_request(_request(), POLICY) is None


def test_too_large_is_513() -> None:
    reply = validate_request(_request(), POLICY, size=70000)
    assert reply is not None and reply.status == 513


def test_unsupported_scheme_is_416() -> None:
    reply = validate_request(_request(uri="mailto:bob@example.com"), POLICY)
    assert reply == Reply(416, "Unsupported URI Scheme")


def test_tel_uri_refused_unless_allowed() -> None:
    request = _request(uri="tel:+15551234567")
    assert validate_request(request, POLICY) == Reply(416, "Unsupported URI Scheme")
    allowing = ValidationPolicy(schemes=frozenset({"sip", "sips", "tel"}))
    assert validate_request(request, allowing) is None


def test_max_forwards_zero_is_483() -> None:
    reply = validate_request(_request(max_forwards=0), POLICY)
    assert reply is not None and (reply.status, reply.reason) == (483, "Too Many Hops")


def test_options_with_max_forwards_zero_answered_locally() -> None:
    reply = validate_request(_request("OPTIONS", max_forwards=0), POLICY)
    assert reply is not None and reply.status == 200
    names = dict(reply.headers)
    assert "INVITE" in names["Allow"] and names["Supported"] == "path"


def test_bad_header_gives_parse_status() -> None:
    request = _request(extra=[("Route", "<sip:bad")])
    reply = validate_request(request, POLICY)
    assert reply is not None and reply.status == 400


def test_proxy_require_unsupported_is_420() -> None:
    request = _request(extra=[("Proxy-Require", "foo, bar")])
    reply = validate_request(request, POLICY)
    assert reply is not None and reply.status == 420
    assert dict(reply.headers)["Unsupported"] == "foo, bar"
    supported = ValidationPolicy(proxy_extensions=frozenset({"FOO", "bar"}))
    assert validate_request(request, supported) is None


def test_loop_detected_when_our_via_carries_same_hash() -> None:
    request = _request()
    branch = loop_branch(request)
    assert branch.startswith(LOOP_BRANCH_PREFIX + loop_hash(request))
    request.headers.prepend("Via", f"SIP/2.0/UDP 192.0.2.10:5060;branch={branch}")
    # The next hop sends it back unchanged, with its own Via on top.
    request.headers.prepend("Via", "SIP/2.0/UDP 203.0.113.5;branch=z9hG4bKother")
    assert validate_request(request, POLICY) == Reply(482, "Loop Detected")


def test_spiral_with_changed_request_uri_is_not_a_loop() -> None:
    request = _request()
    branch = loop_branch(request)
    request.headers.prepend("Via", f"SIP/2.0/UDP proxy.example.com;branch={branch}")
    request.uri = "sip:bob-mobile@example.com"
    assert validate_request(request, POLICY) is None


def test_foreign_via_with_same_branch_shape_ignored() -> None:
    request = _request()
    request.headers.prepend("Via", f"SIP/2.0/UDP 203.0.113.9;branch={loop_branch(request)}")
    assert validate_request(request, POLICY) is None


def test_loop_hash_changes_with_fields() -> None:
    a, b = _request(), _request()
    assert loop_hash(a) == loop_hash(b)
    b.headers.add("Route", "<sip:192.0.2.10;lr>")
    assert loop_hash(a) != loop_hash(b)


def test_own_address_keys_normalizes() -> None:
    keys = own_address_keys(["Proxy.Example.com", "[2001:db8::1]:5070", "192.0.2.1:5062"])
    assert keys == {"proxy.example.com:5060", "[2001:db8::1]:5070", "192.0.2.1:5062"}
    assert POLICY.is_own("192.0.2.10", None)
    assert not POLICY.is_own("192.0.2.10", 5070)


def test_cancel_and_ack_with_max_forwards_zero_are_483() -> None:
    for method in ("CANCEL", "ACK"):
        reply = validate_request(_request(method, max_forwards=0), POLICY)
        assert reply is not None and reply.status == 483, method


def test_random_hex_hands_out_each_pool_byte_once() -> None:
    pool = _RandomPool()
    size = 8
    count = 2 * _RandomPool.CHUNK // size + 3  # crosses two refills
    values = [pool.hex(size) for _ in range(count)]
    assert all(len(value) == 2 * size for value in values)
    assert len(set(values)) == count
    assert len(random_hex(16)) == 32
    assert len(pool.hex(_RandomPool.CHUNK + 1)) == 2 * (_RandomPool.CHUNK + 1)


def test_forked_child_does_not_reuse_the_parents_random_bytes() -> None:
    random_hex(8)  # the pool now holds unused bytes the child must not see
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next value, then leave at once
        try:
            os.write(write, random_hex(8).encode())
        finally:
            os._exit(0)
    os.close(write)
    try:
        child = os.read(read, 64).decode()
    finally:
        os.close(read)
        os.waitpid(pid, 0)
    assert len(child) == 16
    assert child != random_hex(8)


def test_loop_hash_same_route_elements_however_written() -> None:
    """One line with a comma list hashes as the same elements on separate lines."""
    a, b = _request(), _request()
    a.headers.add("Route", "<sip:192.0.2.10;lr>, <sip:192.0.2.11;lr>")
    b.headers.add("Route", "<sip:192.0.2.10;lr>")
    b.headers.add("Route", "<sip:192.0.2.11;lr>")
    assert loop_hash(a) == loop_hash(b)
    b.headers.add("Proxy-Require", "foo")
    assert loop_hash(a) != loop_hash(b)
