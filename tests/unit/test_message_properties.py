"""Property tests (hypothesis) for SIP message parsing and serialization."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.fuzz.harness import exercise, seeds

from trunkline.sip import (
    Contact,
    CSeq,
    Headers,
    NameAddr,
    Request,
    Response,
    SipParseError,
    Via,
    parse_message,
)
from trunkline.sip.builder import make_response
from trunkline.sip.grammar import parse_params, split_commas
from trunkline.sip.headerfields import COMPACT_FORMS

TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"
tokens = st.text(TOKEN_CHARS, min_size=1, max_size=12)
hosts = st.one_of(
    st.lists(
        st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8),
        min_size=1,
        max_size=3,
    ).map(".".join),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda a: f"[{a}]"),
)
ports = st.none() | st.integers(1, 65535)
users = st.text(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.!~*'()-",
    min_size=1,
    max_size=12,
)
# Display names: any text but CR/LF (which cannot appear in a header line).
display_names = st.none() | st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n"), max_size=20
)
param_values = st.none() | tokens


def sip_uri(user: str, host: str, port: int | None) -> str:
    return f"sip:{user}@{host}" + ("" if port is None else f":{port}")


@dataclass
class Spec:
    method: str
    uri: str
    vias: list[Via]
    from_: NameAddr
    to: NameAddr
    call_id: str
    cseq: int
    max_forwards: int | None
    contacts: list[Contact]
    extra: list[tuple[str, str]]
    body: bytes
    compact: bool


@st.composite
def vias(draw: st.DrawFn) -> Via:
    params = draw(st.dictionaries(tokens.map(str.lower), param_values, max_size=3))
    params = {"branch": "z9hG4bK" + draw(tokens), **params}
    return Via(
        draw(st.sampled_from(["UDP", "TCP", "TLS", "WS", "SCTP"])), draw(hosts), draw(ports), params
    )


@st.composite
def name_addrs(draw: st.DrawFn, tag: bool) -> NameAddr:
    params = draw(st.dictionaries(tokens.map(str.lower), param_values, max_size=2))
    params.pop("tag", None)
    if tag:
        params["tag"] = draw(tokens)
    uri = sip_uri(draw(users), draw(hosts), draw(ports))
    return NameAddr(draw(display_names), uri, params)


@st.composite
def contacts(draw: st.DrawFn) -> Contact:
    params: dict[str, str | None] = {}
    if draw(st.booleans()):
        params["expires"] = str(draw(st.integers(0, 2**32 - 1)))
    if draw(st.booleans()):
        params["q"] = draw(st.sampled_from(["0", "0.5", "1", "0.001"]))
    return Contact(draw(display_names), sip_uri(draw(users), draw(hosts), draw(ports)), params)


unknown_values = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\r\n"), max_size=30
).map(str.strip)


@st.composite
def specs(draw: st.DrawFn) -> Spec:
    method = draw(st.sampled_from(["INVITE", "REGISTER", "OPTIONS", "BYE"]) | tokens)
    known = {k.lower() for k in COMPACT_FORMS.values()} | {"cseq", "max-forwards"}
    extra_names = tokens.filter(lambda n: n.lower() not in known and len(n) > 1)
    return Spec(
        method=method,
        uri=sip_uri(draw(users), draw(hosts), draw(ports)),
        vias=draw(st.lists(vias(), min_size=1, max_size=4)),
        from_=draw(name_addrs(tag=True)),
        to=draw(name_addrs(tag=draw(st.booleans()))),
        call_id=draw(st.text(TOKEN_CHARS + '()<>:\\"/[]?{}@', min_size=1, max_size=30)),
        cseq=draw(st.integers(0, 2**32 - 1)),
        max_forwards=draw(st.none() | st.integers(0, 255)),
        contacts=draw(st.lists(contacts(), max_size=3)),
        extra=draw(st.lists(st.tuples(extra_names, unknown_values), max_size=5)),
        body=draw(st.binary(max_size=200)),
        compact=draw(st.booleans()),
    )


def build(spec: Spec) -> Request:
    long_to_short = {v: k for k, v in COMPACT_FORMS.items()}

    def name(n: str) -> str:
        return long_to_short.get(n, n) if spec.compact else n

    headers = Headers()
    for via in spec.vias:
        headers.add(name("Via"), str(via))
    headers.add(name("From"), str(spec.from_))
    headers.add(name("To"), str(spec.to))
    headers.add(name("Call-ID"), spec.call_id)
    headers.add("CSeq", str(CSeq(spec.cseq, spec.method)))
    if spec.max_forwards is not None:
        headers.add("Max-Forwards", str(spec.max_forwards))
    for contact in spec.contacts:
        headers.add(name("Contact"), str(contact))
    for extra_name, value in spec.extra:
        headers.add(extra_name, value)
    headers.add(name("Content-Length"), str(len(spec.body)))
    return Request(spec.method, spec.uri, headers, spec.body)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs())
def test_generated_requests_survive_serialize_and_parse(spec: Spec) -> None:
    data = bytes(build(spec))
    msg = parse_message(data)
    assert isinstance(msg, Request)
    assert (msg.method, msg.uri_text) == (spec.method, spec.uri)
    assert msg.via == spec.vias
    assert [v.branch for v in msg.via] == [v.branch for v in spec.vias]
    assert msg.from_ == spec.from_ and msg.to == spec.to
    assert msg.from_.display_name == spec.from_.display_name
    assert msg.from_tag == spec.from_.tag and msg.to_tag == spec.to.tag
    assert msg.call_id == spec.call_id
    assert (msg.cseq.number, msg.cseq.method) == (spec.cseq, spec.method)
    assert msg.max_forwards == spec.max_forwards
    assert msg.contact == spec.contacts
    assert [c.expires for c in msg.contact] == [c.expires for c in spec.contacts]
    for extra_name, value in spec.extra:
        assert value in msg.headers.lines(extra_name)
    assert msg.body == spec.body
    assert bytes(msg) == data
    response = make_response(msg, 200, to_tag="x")
    back = parse_message(bytes(response))
    assert isinstance(back, Response)
    assert back.via == spec.vias and back.call_id == spec.call_id


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(seeds()),
    st.lists(
        st.tuples(
            st.sampled_from(["flip", "insert", "delete", "dup"]),
            st.integers(0, 4000),
            st.binary(min_size=1, max_size=8),
        ),
        min_size=1,
        max_size=6,
    ),
)
def test_mutated_real_messages_parse_or_raise_sip_parse_error(
    seed: bytes, mutations: list[tuple[str, int, bytes]]
) -> None:
    data = bytearray(seed)
    for kind, where, chunk in mutations:
        pos = where % (len(data) + 1)
        if kind == "flip":
            data[pos : pos + len(chunk)] = chunk
        elif kind == "insert":
            data[pos:pos] = chunk
        elif kind == "delete":
            del data[pos : pos + len(chunk)]
        else:
            data[pos:pos] = data[pos : pos + 4 * len(chunk)]
    exercise(bytes(data))


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_parse_or_raise(data: bytes) -> None:
    exercise(data)
    exercise(b"OPTIONS sip:a@b SIP/2.0\r\n" + data)


@given(st.lists(st.tuples(tokens, param_values), max_size=5))
def test_params_round_trip(pairs: list[tuple[str, str | None]]) -> None:
    text = "".join(f";{k}" if v is None else f";{k}={v}" for k, v in pairs)
    assert parse_params(text) == {k.lower(): v for k, v in pairs}


@given(
    st.lists(
        st.builds(
            lambda d, u: str(NameAddr(d, u)), display_names, users.map(lambda u: f"sip:{u}@h")
        ),
        min_size=1,
        max_size=4,
    )
)
def test_split_commas_recovers_name_addrs(items: list[str]) -> None:
    assert split_commas(", ".join(items)) == items


@given(display_names)
def test_display_names_round_trip(name: str | None) -> None:
    addr = NameAddr(name, "sip:a@example.com", {"tag": "1"})
    again = NameAddr.parse(str(addr))
    assert again.display_name == name
    assert again.tag == "1"


def test_every_prefix_of_a_seed_parses_or_raises_with_a_known_status() -> None:
    statuses: set[int] = set()
    parsed = 0
    for seed in seeds()[:12]:
        for cut in range(0, len(seed) + 1, 7):
            try:
                parse_message(seed[:cut])
                parsed += 1
            except SipParseError as exc:
                statuses.add(exc.status)
    assert statuses <= {400, 416, 505, 513}
    assert 400 in statuses
    assert parsed > 0  # prefixes that end in the body still parse (no Content-Length cases)
