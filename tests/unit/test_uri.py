"""Tests for trunkline.sip.uri: RFC 3261 §19.1, RFC 3966, RFC 5118, RFC 4475 URIs."""

from __future__ import annotations

import copy
import dataclasses
import pickle
import string
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trunkline.sip import Request, parse_message
from trunkline.sip.errors import SipParseError
from trunkline.sip.uri import AbsoluteUri, SipUri, TelUri, parse_uri

DATA = Path(__file__).resolve().parent.parent / "data"


def sip(text: str) -> SipUri:
    uri = parse_uri(text)
    assert isinstance(uri, SipUri)
    return uri


def tel(text: str) -> TelUri:
    uri = parse_uri(text)
    assert isinstance(uri, TelUri)
    return uri


# -- components ----------------------------------------------------------------


def test_full_sip_uri_components() -> None:
    uri = sip("sips:alice:secret@Atlanta.COM:5061;transport=TCP;lr;maddr=239.255.255.1?subject=hi")
    assert uri.scheme == "sips"
    assert uri.user == "alice"
    assert uri.password == "secret"
    assert uri.host == "Atlanta.COM"
    assert uri.port == 5061
    assert uri.params == {"transport": "TCP", "lr": None, "maddr": "239.255.255.1"}
    assert list(uri.params) == ["transport", "lr", "maddr"]
    assert uri.headers == {"subject": "hi"}
    assert uri.transport == "tcp"
    assert uri.lr is True
    assert uri.maddr == "239.255.255.1"
    assert uri.secure is True
    assert uri.default_port == 5061
    assert uri.host_port == "Atlanta.COM:5061"


def test_host_only_uri_has_no_user_and_defaults() -> None:
    uri = sip("sip:example.com")
    assert uri.user is None
    assert uri.password is None
    assert uri.port is None
    assert uri.params == {}
    assert uri.headers == {}
    assert uri.transport is None
    assert uri.lr is False
    assert uri.user_param is None
    assert uri.default_port == 5060
    assert str(uri) == "sip:example.com"


def test_scheme_is_case_insensitive_and_stored_lower() -> None:
    uri = sip("SIP:ALICE@AtLanTa.CoM;Transport=udp")
    assert uri.scheme == "sip"
    assert uri.user == "ALICE"
    assert uri.params == {"transport": "udp"}


def test_param_names_lowercased_values_kept() -> None:
    uri = sip("sip:bob@biloxi.com;User=Phone;X-Foo=BaR")
    assert uri.params == {"user": "Phone", "x-foo": "BaR"}
    assert uri.user_param == "phone"


def test_empty_password_and_param_value() -> None:
    uri = sip("sip:user:@host;x=")
    assert uri.password == ""
    assert uri.params == {"x": ""}
    assert str(uri) == "sip:user:@host;x="


def test_telephone_subscriber_in_user_part() -> None:
    uri = sip("sip:+1-212-555-1212:1234@gateway.com;user=phone")
    assert uri.user == "+1-212-555-1212"
    assert uri.password == "1234"
    assert uri.user_param == "phone"


def test_sip_uri_parse_classmethod_rejects_other_schemes() -> None:
    assert SipUri.parse("sip:a@b").host == "b"
    with pytest.raises(SipParseError) as info:
        SipUri.parse("tel:+15551234")
    assert info.value.status == 416
    with pytest.raises(SipParseError) as info:
        TelUri.parse("sip:a@b")
    assert info.value.status == 416


# -- RFC 4475 URIs ---------------------------------------------------------------


def test_rfc4475_esc01_request_uri_embeds_sips_uri() -> None:
    uri = sip("sip:sips%3Auser%40example.com@example.net")
    assert uri.user == "sips:user@example.com"
    assert uri.host == "example.net"
    assert str(uri) == "sip:sips%3Auser%40example.com@example.net"


def test_rfc4475_esc01_unescape_exactly_once() -> None:
    uri = sip("sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31")
    assert uri.user == "caller"
    assert uri.params == {"lr": None, "name": "value%41"}
    assert uri.lr
    # Re-escaping keeps the literal "%" escaped so a second parse gives the same.
    assert sip(str(uri)).params["name"] == "value%41"
    assert sip("sip:u@h;p=value%2541").params["p"] == "value%41"


def test_rfc4475_esc01_spaces_and_to_user() -> None:
    assert sip("sip:I%20have%20spaces@example.net").user == "I have spaces"
    assert sip("sip:%75se%72@example.com").user == "user"


def test_rfc4475_escnull_keeps_nul() -> None:
    uri = sip("sip:null-%00-null@example.com")
    assert uri.user == "null-\x00-null"
    assert len(uri.user) == 11
    assert str(uri) == "sip:null-%00-null@example.com"
    one, two = sip("sip:%00@host5.example.com"), sip("sip:%00%00@host5.example.com")
    assert one.user == "\x00"
    assert two.user == "\x00\x00"
    assert one != two


def test_rfc4475_semiuri_user_part_with_semicolons() -> None:
    uri = sip("sip:user;par=u%40example.net@example.com")
    assert uri.user == "user;par=u@example.net"
    assert uri.host == "example.com"
    assert uri.params == {}


def test_rfc4475_intmeth_unusual_user_and_password() -> None:
    text = (
        "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:"
        "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com"
    )
    uri = sip(text)
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert uri.host == "example.com"
    assert str(uri) == text


def test_rfc4475_escaped_headers() -> None:
    uri = sip("sip:user@example.com?Route=%3Csip:example.com%3E")
    assert uri.headers == {"Route": "<sip:example.com>"}
    assert str(uri) == "sip:user@example.com?Route=%3Csip:example.com%3E"
    assert uri.without_headers().headers == {}
    assert str(uri.without_headers()) == "sip:user@example.com"


def test_rfc4475_unknown_schemes_are_absolute_uris() -> None:
    for text, scheme, value in [
        ("nobodyKnowsThisScheme:totallyopaquecontent", "nobodyknowsthisscheme", None),
        ("soap.beep://192.0.2.103:3002", "soap.beep", "//192.0.2.103:3002"),
        ("isbn:2983792873", "isbn", "2983792873"),
        ("http://www.example.com", "http", "//www.example.com"),
        ("name:John_Smith", "name", "John_Smith"),
        ("mailto:alice@example.com", "mailto", "alice@example.com"),
        ("urn:service:sos", "urn", "service:sos"),
    ]:
        uri = parse_uri(text)
        assert isinstance(uri, AbsoluteUri), text
        assert uri.scheme == scheme
        if value is not None:
            assert uri.value == value
    assert str(parse_uri("urn:service:sos")) == "urn:service:sos"


# -- RFC 5118 IPv6 ---------------------------------------------------------------


def test_rfc5118_ipv6_reference() -> None:
    uri = sip("sip:[2001:db8::10]")
    assert uri.host == "[2001:db8::10]"
    assert uri.port is None
    assert str(uri) == "sip:[2001:db8::10]"


def test_rfc5118_port_unambiguous_and_ambiguous() -> None:
    good = sip("sip:[2001:db8::10]:5070")
    assert good.host == "[2001:db8::10]"
    assert good.port == 5070
    ambiguous = sip("sip:[2001:db8::10:5070]")
    assert ambiguous.host == "[2001:db8::10:5070]"
    assert ambiguous.port is None


def test_rfc5118_bare_ipv6_is_400() -> None:
    for text in ("sip:2001:db8::10", "sip:user@2001:db8::10", "sip:user@::1"):
        with pytest.raises(SipParseError) as info:
            parse_uri(text)
        assert info.value.status == 400
        assert "IPv6" in info.value.reason


def test_rfc5118_three_colon_form_tolerated_and_equal_to_two() -> None:
    three = sip("sip:user@[2001:db8:::192.0.2.1]")
    two = sip("sip:user@[2001:db8::192.0.2.1]")
    assert three.host == "[2001:db8:::192.0.2.1]"
    assert three == two
    assert hash(three) == hash(two)


def test_rfc5118_ipv4_mapped() -> None:
    assert sip("sip:[::ffff:192.0.2.10]").host == "[::ffff:192.0.2.10]"


def test_ipv6_equality_ignores_notation() -> None:
    assert sip("sip:[2001:DB8:0:0::10]") == sip("sip:[2001:db8::10]")


@pytest.mark.parametrize(
    "text",
    [
        "sip:[2001:db8::10",
        "sip:[2001:db8::10]x",
        "sip:[not-ipv6]",
        "sip:[]",
        "sip:[fe80::1%eth0]",
        "sip:[2001:db8::10]:",
    ],
)
def test_bad_ipv6_references(text: str) -> None:
    with pytest.raises(SipParseError) as info:
        parse_uri(text)
    assert info.value.status == 400


# -- errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason_part"),
    [
        ("", "no scheme"),
        ("example.com", "no scheme"),
        (":foo", "no scheme"),
        ("1sip:foo", "scheme"),
        ("sip:", "host"),
        ("sip:user@", "host"),
        ("sip:@host", "user"),
        ("sip:host:", "port"),
        ("sip:host:abc", "port"),
        ("sip:host:65536", "range"),
        ("sip:host:123456", "port"),
        ("sip:ho st", "host"),
        ("sip:user@example.com; lr", "character"),
        ("sip:us<er@host", "character"),
        ("sip:user@host;;lr", "Empty"),
        ("sip:user@host;=x", "name"),
        ("sip:user@host?", "Empty"),
        ("sip:user@host?a=1&&b=2", "Empty"),
        ("sip:user@host?=x", "name"),
        ("sip:us%4@host", "escape"),
        ("sip:us%zz@host", "escape"),
        ("sip:us%@host", "escape"),
        ("sip:user@host;x=%G0", "escape"),
        ("sip:usér@host", "character"),
        ("sip:user@host?a=<b>", "character"),
        ("mailto:", "Empty"),
        ("mailto:a b", "character"),
        ("tel:", "Empty"),
    ],
)
def test_malformed_uris_raise_400(text: str, reason_part: str) -> None:
    with pytest.raises(SipParseError) as info:
        parse_uri(text)
    assert info.value.status == 400
    assert reason_part.lower() in info.value.reason.lower()


# -- output and copies ---------------------------------------------------------


def test_str_re_escapes_user_params_headers() -> None:
    uri = SipUri(
        user="a b@c",
        host="example.com",
        params={"x": "1;2"},
        headers={"Subject": "project x"},
    )
    assert str(uri) == "sip:a%20b%40c@example.com;x=1%3B2?Subject=project%20x"
    back = sip(str(uri))
    assert back.user == "a b@c"
    assert back.params == {"x": "1;2"}
    assert back.headers == {"Subject": "project x"}


def test_non_utf8_escape_round_trips() -> None:
    uri = sip("sip:%FF%C3%A9@host")
    assert uri.user is not None
    assert uri.user.endswith("é")
    assert str(uri) == "sip:%FF%C3%A9@host"


def test_copy_and_with_params_do_not_alias() -> None:
    uri = sip("sip:alice@atlanta.com;transport=tcp")
    other = uri.with_params(lr=None, Transport="udp")
    assert other.params == {"transport": "udp", "lr": None}
    assert uri.params == {"transport": "tcp"}
    dashed = uri.with_params({"x-id": "7"})
    assert dashed.params["x-id"] == "7"
    assert "lr" not in uri.without_params("lr").params
    assert uri.without_params("TRANSPORT").params == {}
    moved = uri.copy(host="biloxi.com", port=5070, user=None)
    assert str(moved) == "sip:biloxi.com:5070;transport=tcp"
    assert str(uri) == "sip:alice@atlanta.com;transport=tcp"
    assert uri.copy() == uri
    assert uri.replace(port=5070) == moved.replace(host="atlanta.com", user="alice", port=5070)
    assert uri.without_params("lr") is uri  # nothing to drop: the URI itself


def test_sip_uri_is_immutable() -> None:
    uri = sip("sip:alice@atlanta.com;transport=tcp?subject=hi")
    with pytest.raises(dataclasses.FrozenInstanceError):
        uri.host = "biloxi.com"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        uri.params = {}  # type: ignore[misc]
    with pytest.raises(TypeError):
        uri.params["lr"] = None  # type: ignore[index]
    with pytest.raises(TypeError):
        uri.headers["x"] = "y"  # type: ignore[index]
    assert str(uri) == "sip:alice@atlanta.com;transport=tcp?subject=hi"


def test_sip_uri_constructor_copies_mappings() -> None:
    params: dict[str, str | None] = {"lr": None}
    headers = {"Subject": "hi"}
    uri = SipUri("sip", None, None, "p.example.com", None, params, headers)
    params["maddr"] = "10.0.0.1"
    headers["Priority"] = "urgent"
    assert str(uri) == "sip:p.example.com;lr?Subject=hi"
    with pytest.raises(TypeError):
        uri.with_params(x="1").params["y"] = "2"  # type: ignore[index]


def test_shared_request_uri_cannot_leak_between_messages() -> None:
    raw = (
        b"OPTIONS sip:bob@biloxi.com;transport=udp SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\nMax-Forwards: 70\r\n"
        b"To: <sip:bob@biloxi.com>\r\nFrom: <sip:a@atlanta.com>;tag=1\r\n"
        b"Call-ID: c1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    first, second = parse_message(raw), parse_message(raw)
    assert isinstance(first, Request) and isinstance(second, Request)
    assert first.uri is second.uri  # one parsed value, shared
    first.uri = sip(str(first.uri)).with_params(transport="tcp")
    assert sip(str(second.uri)).transport == "udp"
    assert b"transport=udp" in bytes(second)


def test_copies_pickles_and_hashes_of_frozen_uris() -> None:
    for text in ("sip:alice:pw@[::1]:5070;lr?x=y", "tel:+1-555;ext=1", "urn:service:sos"):
        uri = parse_uri(text)
        assert copy.copy(uri) is uri
        assert copy.deepcopy(uri) is uri
        back = pickle.loads(pickle.dumps(uri))
        assert back == uri
        assert str(back) == str(uri)
        assert {uri: 1}[back] == 1


def test_aor_drops_port_params_and_folds_host() -> None:
    assert sip("sip:Bob@BILOXI.com:5070;transport=tcp?x=y").aor == "sip:Bob@biloxi.com"
    assert sip("sips:biloxi.com").aor == "sips:biloxi.com"


# -- RFC 3261 §19.1.4 equality ---------------------------------------------------

EQUIVALENT = [
    ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
    ("sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on"),
    (
        "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
        "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
    ),
    (
        "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
        "sip:alice@atlanta.com?priority=urgent&subject=project%20x",
    ),
    ("SIP:bob@biloxi.com", "sip:bob@BILOXI.COM"),
    ("sip:bob@biloxi.com;lr", "sip:bob@biloxi.com"),
    ("sip:bob@biloxi.com?Subject=x", "sip:bob@biloxi.com?subject=x"),
]

NOT_EQUIVALENT = [
    ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),
    ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
    ("sip:bob@biloxi.com", "sips:bob@biloxi.com"),
    ("sip:biloxi.com", "sip:bob@biloxi.com"),
    ("sip:bob:pw@biloxi.com", "sip:bob@biloxi.com"),
    ("sip:bob:pw@biloxi.com", "sip:bob:PW@biloxi.com"),
    ("sip:bob@biloxi.com;user=phone", "sip:bob@biloxi.com"),
    ("sip:bob@biloxi.com;ttl=1", "sip:bob@biloxi.com"),
    ("sip:bob@biloxi.com;method=INVITE", "sip:bob@biloxi.com"),
    ("sip:bob@biloxi.com;maddr=10.0.0.1", "sip:bob@biloxi.com"),
    ("sip:bob@biloxi.com;maddr=10.0.0.1", "sip:bob@biloxi.com;maddr=10.0.0.2"),
    ("sip:bob@biloxi.com;x=1", "sip:bob@biloxi.com;x=2"),
    ("sip:bob@biloxi.com;lr", "sip:bob@biloxi.com;lr=on"),
    ("sip:bob@biloxi.com?a=1", "sip:bob@biloxi.com?a=1&b=2"),
    ("sip:bob@biloxi.com?a=x", "sip:bob@biloxi.com?a=X"),
]


@pytest.mark.parametrize(("a", "b"), EQUIVALENT)
def test_rfc3261_equivalent_uris(a: str, b: str) -> None:
    left, right = parse_uri(a), parse_uri(b)
    assert left == right
    assert right == left
    assert hash(left) == hash(right)


@pytest.mark.parametrize(("a", "b"), NOT_EQUIVALENT)
def test_rfc3261_non_equivalent_uris(a: str, b: str) -> None:
    left, right = parse_uri(a), parse_uri(b)
    assert left != right
    assert right != left


def test_different_uri_kinds_never_equal() -> None:
    assert parse_uri("sip:+15551234@example.com") != parse_uri("tel:+15551234")
    assert parse_uri("tel:+15551234") != parse_uri("urn:x")
    assert parse_uri("sip:a@b") != "sip:a@b"


def test_uris_work_as_dict_keys() -> None:
    table = {sip("sip:alice@atlanta.com"): 1}
    assert table[sip("sip:%61lice@ATLANTA.com;unknown=1")] == 1


# -- tel URIs (RFC 3966) -----------------------------------------------------------


def test_global_tel_number() -> None:
    uri = tel("tel:+1-201-555-0123")
    assert uri.scheme == "tel"
    assert uri.number == "+1-201-555-0123"
    assert uri.digits == "+12015550123"
    assert uri.is_global
    assert uri.phone_context is None
    assert str(uri) == "tel:+1-201-555-0123"


def test_local_tel_number_with_context_and_params() -> None:
    uri = tel("tel:7042;Phone-Context=example.com;ext=12;isub=abc")
    assert not uri.is_global
    assert uri.phone_context == "example.com"
    assert uri.ext == "12"
    assert uri.isub == "abc"
    assert list(uri.params) == ["phone-context", "ext", "isub"]
    assert tel("tel:*21#;phone-context=+1-201").phone_context == "+1-201"
    assert tel("tel:0a1B;phone-context=example.com").digits == "0a1b"


@pytest.mark.parametrize(
    "text",
    [
        "tel:7042",  # local without phone-context
        "tel:+",  # no digits
        "tel:+-.()",  # separators only
        "tel:+1a",  # hex digits not allowed in a global number
        "tel:+1 555",
        "tel:---;phone-context=example.com",
        "tel:+1555;phone-context=example.com",
        "tel:1234;phone-context=",
        "tel:1234;phone-context=-bad",
        "tel:1234;phone-context=+",
        "tel:+1555;ext=",
        "tel:+1555;ext=12a",
        "tel:+1555;;x",
        "tel:+1555;x=1;X=2",
        "tel:+1555;a b=1",
    ],
)
def test_bad_tel_uris(text: str) -> None:
    with pytest.raises(SipParseError) as info:
        parse_uri(text)
    assert info.value.status == 400


TEL_EQUIVALENT = [
    ("tel:+1-201-555-0123", "tel:+1(201)555.0123"),
    ("tel:+12015550123;ext=1-2", "tel:+12015550123;EXT=12"),
    ("tel:7042;phone-context=example.com", "tel:7042;phone-context=EXAMPLE.com"),
    ("tel:863-1234;phone-context=+1-914-555", "tel:8631234;phone-context=+1914555"),
    ("tel:+1555;a=1;b=2", "tel:+1555;b=2;a=1"),
    ("tel:ABC;phone-context=x.com", "tel:abc;phone-context=x.com"),
    ("TEL:+1555;foo=Bar", "tel:+1555;foo=bar"),
]

TEL_NOT_EQUIVALENT = [
    ("tel:+12015550123", "tel:12015550123;phone-context=example.com"),
    ("tel:7042;phone-context=example.com", "tel:7042;phone-context=example.net"),
    ("tel:+1555", "tel:+1556"),
    ("tel:+1555", "tel:+1555;ext=1"),
    ("tel:+1555;x", "tel:+1555"),
]


@pytest.mark.parametrize(("a", "b"), TEL_EQUIVALENT)
def test_rfc3966_equivalent(a: str, b: str) -> None:
    assert tel(a) == tel(b)
    assert hash(tel(a)) == hash(tel(b))


@pytest.mark.parametrize(("a", "b"), TEL_NOT_EQUIVALENT)
def test_rfc3966_not_equivalent(a: str, b: str) -> None:
    assert tel(a) != tel(b)


def test_tel_uri_is_immutable_and_derives_copies() -> None:
    uri = tel("tel:+1555;ext=1")
    with pytest.raises(TypeError):
        uri.params["ext"] = "2"  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        uri.number = "+1666"  # type: ignore[misc]
    other = uri.with_params(EXT="2", isub="9")
    assert (uri.ext, other.ext, other.isub) == ("1", "2", "9")
    assert str(uri.without_params("ext")) == "tel:+1555"
    assert str(uri.replace(number="+1-666")) == "tel:+1-666;ext=1"
    params: dict[str, str | None] = {"ext": "3"}
    built = TelUri("+1555", params)
    params["ext"] = "4"
    assert built.ext == "3"


def test_absolute_uri_equality() -> None:
    assert parse_uri("HTTP://x") == parse_uri("http://x")
    assert parse_uri("http://x") != parse_uri("http://X")
    assert AbsoluteUri.parse("urn:a").copy() == AbsoluteUri("urn", "a")
    assert AbsoluteUri.parse("urn:a").replace(value="b") == AbsoluteUri("urn", "b")
    with pytest.raises(dataclasses.FrozenInstanceError):
        AbsoluteUri("urn", "a").value = "b"  # type: ignore[misc]


# -- properties (hypothesis) -------------------------------------------------------

_user_text = st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=20)
_token = st.text(
    alphabet=string.ascii_letters + string.digits + "-_.!~*'()", min_size=1, max_size=10
)
_label = st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=10)
_host = st.lists(_label, min_size=1, max_size=4).map(".".join) | st.ip_addresses(v=6).map(
    lambda a: f"[{a}]"
)


@settings(max_examples=200, deadline=None)
@given(
    scheme=st.sampled_from(["sip", "sips"]),
    user=st.none() | _user_text,
    password=st.none() | st.text(max_size=8),
    host=_host,
    port=st.none() | st.integers(0, 65535),
    params=st.dictionaries(_token.map(str.lower), st.none() | st.text(max_size=8), max_size=4),
    headers=st.dictionaries(_token, st.text(max_size=8), max_size=3),
)
def test_sip_uri_round_trips(
    *,
    scheme: str,
    user: str | None,
    password: str | None,
    host: str,
    port: int | None,
    params: dict[str, str | None],
    headers: dict[str, str],
) -> None:
    if user is None:
        password = None
    uri = SipUri(scheme, user, password, host, port, params, headers)
    text = str(uri)
    back = sip(text)
    assert back == uri
    assert back.user == user
    assert back.password == password
    assert back.params == params
    assert back.headers == headers
    assert str(back) == text


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=60))
def test_parse_uri_never_raises_anything_else(text: str) -> None:
    try:
        uri = parse_uri(text)
    except SipParseError as exc:
        assert exc.status in (400, 416)
        return
    str(uri)
    hash(uri)


_uri_alphabet = string.ascii_letters + string.digits + ":@;=?&%[]+-._!~*'()/$,#"


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(["sip:", "sips:", "tel:", "x:"]), st.text(_uri_alphabet, max_size=40))
def test_uri_like_text_parses_or_raises_sip_error(prefix: str, rest: str) -> None:
    try:
        uri = parse_uri(prefix + rest)
    except SipParseError:
        return
    # Whatever parses re-parses to an equal URI.
    again = parse_uri(str(uri))
    assert again == uri


@settings(max_examples=100, deadline=None)
@given(
    st.text("0123456789", min_size=1, max_size=12),
    st.lists(st.sampled_from("-.()"), max_size=4),
)
def test_tel_visual_separators_do_not_matter(digits: str, separators: list[str]) -> None:
    spaced = digits
    for index, separator in enumerate(separators):
        cut = index % (len(spaced) + 1)
        spaced = spaced[:cut] + separator + spaced[cut:]
    assert tel("tel:+" + digits) == tel("tel:+" + spaced)


def test_parsing_is_linear_on_long_input() -> None:
    # A long but valid URI parses; no quadratic blow-up (bounded by time).
    import time

    long_user = "a" * 50_000
    long_params = ";".join(f"p{i}=v{i}" for i in range(5_000))
    start = time.perf_counter()
    uri = sip(f"sip:{long_user}@example.com;{long_params}")
    assert len(uri.params) == 5_000
    for _ in range(3):
        with pytest.raises(SipParseError):
            parse_uri("sip:" + "%" * 100_000 + "@host")
    assert time.perf_counter() - start < 2.0


# -- URIs inside the torture messages, through the message parser --------------


def test_uris_in_rfc4475_and_rfc5118_messages() -> None:
    def load(path: str) -> Request:
        message = parse_message((DATA / path).read_bytes())
        assert isinstance(message, Request)
        return message

    esc01 = load("rfc4475/esc01.dat")
    assert esc01.uri == sip("sip:sips%3Auser%40example.com@example.net")
    assert esc01.to.uri == sip("sip:user@example.com")
    contact = esc01.contact[0].uri
    assert isinstance(contact, SipUri)
    assert contact.params == {"lr": None, "name": "value%41"}

    escnull = load("rfc4475/escnull.dat")
    first, second = (c.uri for c in escnull.contact)
    assert isinstance(first, SipUri)
    assert isinstance(second, SipUri)
    assert (first.user, second.user) == ("\x00", "\x00\x00")
    assert first != second

    unksm2 = load("rfc4475/unksm2.dat")
    assert unksm2.to.uri == AbsoluteUri("isbn", "2983792873")
    assert unksm2.contact[0].uri == AbsoluteUri("name", "John_Smith")

    regescrt = load("rfc4475/regescrt.dat")
    bound = regescrt.contact[0].uri
    assert isinstance(bound, SipUri)
    assert bound.headers == {"Route": "<sip:sip.example.com>"}

    unambiguous = load("rfc5118/wire/port-unambiguous.dat").uri
    assert isinstance(unambiguous, SipUri)
    assert (unambiguous.host, unambiguous.port) == ("[2001:db8::10]", 5070)
    three = load("rfc5118/wire/ipv6-bug-abnf-3-colons.dat").uri
    two = load("rfc5118/wire/ipv6-correct-abnf-2-colons.dat").uri
    assert three == two


def test_numeric_param_views() -> None:
    assert sip("sip:239.255.255.1;ttl=15;method=REGISTER").ttl == 15
    assert sip("sip:h;ttl=x").ttl is None
    assert SipUri(host="h", params={"ttl": "²"}).ttl is None
    assert sip("sip:h;method=INVITE").method_param == "INVITE"
    assert sip("sip:h").ttl is None
