"""Digest authentication: header values, RFC vectors, client/server round trips."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trunkline.sip import authheaders
from trunkline.sip.auth import (
    ALGORITHMS,
    LEGACY_ALGORITHMS,
    AuthStatus,
    Challenge,
    Credentials,
    DigestClient,
    DigestServer,
    base_algorithm,
    digest_response,
    ha1,
    parse_challenges,
    quote,
    select_challenge,
    userhash,
)
from trunkline.sip.errors import LocalSipError, SipParseError

SECRET = b"0123456789abcdef0123456789abcdef"
REALM = "pbx.example.com"
URI = "sip:bob@pbx.example.com"
USERS = {"alice": "wonderland", "bob": "builder"}


def lookup(username: str, realm: str, algorithm: str) -> str | None:
    """A user store keeping HA1 per (username, realm, algorithm), never the password."""
    password = USERS.get(username)
    return None if password is None else ha1(username, realm, password, algorithm)


# -- RFC test vectors ------------------------------------------------------------------

# RFC 7616 §3.9.1: the same request answered with MD5 and with SHA-256.
RFC7616_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
RFC7616_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
RFC7616_VECTORS = [
    ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
    ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
]


@pytest.mark.parametrize(("algorithm", "expected"), RFC7616_VECTORS)
def test_rfc7616_3_9_1_response(algorithm: str, expected: str) -> None:
    response = digest_response(
        algorithm=algorithm,
        ha1_value=ha1("Mufasa", "http-auth@example.org", "Circle of Life", algorithm),
        nonce=RFC7616_NONCE,
        method="GET",
        uri="/dir/index.html",
        qop="auth",
        nc="00000001",
        cnonce=RFC7616_CNONCE,
    )
    assert response == expected


@pytest.mark.parametrize(("algorithm", "expected"), RFC7616_VECTORS)
def test_rfc7616_3_9_1_client_from_challenge_text(algorithm: str, expected: str) -> None:
    # The WWW-Authenticate fields of the RFC example, as a server would send them.
    text = (
        'Digest realm="http-auth@example.org", qop="auth, auth-int", '
        f'algorithm={algorithm}, nonce="{RFC7616_NONCE}", opaque="{RFC7616_OPAQUE}"'
    )
    client = DigestClient("Mufasa", "Circle of Life", cnonce_factory=lambda: RFC7616_CNONCE)
    assert client.challenged([Challenge.parse(text)])
    [(name, value)] = client.authorization("GET", "/dir/index.html")
    assert name == "Authorization"
    credentials = Credentials.parse(value)
    assert credentials.response == expected
    assert credentials.nc == "00000001"
    assert credentials.qop == "auth"
    assert credentials.opaque == RFC7616_OPAQUE
    assert credentials.algorithm == algorithm
    assert f'response="{expected}"' in value
    assert "qop=auth," in value and "nc=00000001" in value


RFC2617_CHALLENGE = (
    'Digest realm="testrealm@host.com", qop="auth,auth-int", '
    'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)
RFC2617_AUTHORIZATION = (
    'Digest username="Mufasa", realm="testrealm@host.com", '
    'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth, '
    'nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", '
    'opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)


def test_rfc2617_3_5_example() -> None:
    challenge = Challenge.parse(RFC2617_CHALLENGE)
    assert challenge.algorithm == "MD5"  # absent means MD5
    assert challenge.qop_options == ["auth", "auth-int"]
    client = DigestClient("Mufasa", "Circle Of Life", cnonce_factory=lambda: "0a4f113b")
    assert client.challenged([challenge])
    [(_, value)] = client.authorization("GET", "/dir/index.html")
    ours = Credentials.parse(value)
    theirs = Credentials.parse(RFC2617_AUTHORIZATION)
    assert ours.response == theirs.response == "6629fae49393a05397450978507c4ef1"
    for name in ("username", "realm", "nonce", "uri", "qop", "nc", "cnonce", "opaque"):
        assert ours.get(name) == theirs.get(name), name
    # The RFC's own header renders back byte for byte.
    assert str(theirs) == RFC2617_AUTHORIZATION


def test_rfc2069_form_without_qop() -> None:
    # RFC 2617 §3.2.2.1 keeps the qop-less computation: KD(HA1, nonce ":" H(A2)).
    response = digest_response(
        algorithm="MD5",
        ha1_value=ha1("Mufasa", "testrealm@host.com", "CircleOfLife"),
        nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
        method="GET",
        uri="/dir/index.html",
    )
    assert response == "1949323746fe6a43ef61f9606e7febea"  # RFC 2069 §2.4 example


def test_sha512_256_available_and_distinct() -> None:
    assert "SHA-512-256" in ALGORITHMS and "SHA-512-256-sess" in ALGORITHMS
    # SHA-512/256 is its own IV, not a truncated SHA-512 (FIPS 180-4 §5.3.6).
    empty = ha1("", "", "", "SHA-512-256")
    assert len(empty) == 64
    assert empty != ha1("", "", "", "SHA-256")


def test_sess_and_auth_int_change_the_response() -> None:
    def response(algorithm: str, qop: str, body: bytes = b"") -> str:
        return digest_response(
            algorithm=algorithm,
            ha1_value=ha1("u", "r", "p", "SHA-256"),
            nonce="n",
            method="INVITE",
            uri=URI,
            qop=qop,
            nc="00000001",
            cnonce="c",
            body=body,
        )

    auth = response("SHA-256", "auth")
    sess = response("SHA-256-sess", "auth")
    int1 = response("SHA-256", "auth-int", b"v=0")
    int2 = response("SHA-256", "auth-int", b"v=1")
    assert len({auth, sess, int1, int2}) == 4
    assert response("SHA-256", "auth", b"ignored without auth-int") == auth
    with pytest.raises(LocalSipError):
        digest_response(algorithm="SHA-1", ha1_value="x", nonce="n", method="M", uri="u")


# -- header parsing ----------------------------------------------------------------------


def test_parse_challenge_fields_and_unknown_params() -> None:
    challenge = Challenge.parse(
        ' digest  REALM = "a \\"quoted\\" realm" ,nonce="abc", Stale=TRUE,'
        ' algorithm=sha-256, x-custom=token, domain="sip:a sip:b"'
    )
    assert challenge.scheme == "Digest"
    assert challenge.realm == 'a "quoted" realm'
    assert challenge.stale
    assert challenge.algorithm == "sha-256"
    assert challenge.get("X-Custom") == "token"
    assert challenge.domain == ["sip:a", "sip:b"]
    again = Challenge.parse(str(challenge))
    assert again == challenge


def test_render_quotes_digest_values_but_not_tokens() -> None:
    challenge = Challenge.digest(realm="r", nonce="n", algorithm="SHA-256", stale=True)
    assert (
        str(challenge) == 'Digest realm="r", qop="auth", nonce="n", algorithm=SHA-256, stale=true'
    )
    credentials = Credentials("Digest", {"username": "a", "qop": "auth", "nc": "00000002"})
    assert str(credentials) == 'Digest username="a", qop=auth, nc=00000002'


def test_quoted_qop_in_credentials_is_accepted() -> None:
    credentials = Credentials.parse('Digest username="a", qop="AUTH", nc=00000001')
    assert credentials.qop == "auth"


def test_several_challenges_and_token68() -> None:
    items = parse_challenges(
        'Digest realm="a", nonce="1", algorithm=SHA-256, Digest realm="a", nonce="1", '
        "algorithm=MD5, Basic dXNlcjpwYXNz==, Newauth"
    )
    assert [item.scheme for item in items] == ["Digest", "Digest", "Basic", "Newauth"]
    assert [item.algorithm for item in items[:2]] == ["SHA-256", "MD5"]
    assert items[2].token68 == "dXNlcjpwYXNz=="
    assert str(items[2]) == "Basic dXNlcjpwYXNz=="
    assert items[3].params == {}
    with pytest.raises(SipParseError):
        Challenge.parse('Digest realm="a", Basic x')


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "Digest",
        'Digest realm="unterminated',
        'Digest realm="a" nonce="b"',  # missing comma
        "Digest realm",
        "Digest realm=",
        'Digest realm="a", realm="b"',  # duplicate
        'Digest ="a"',
        'Digest realm="bad\\\r"',
        'Digest realm="ctl\x01"',
        '"Digest" realm="a"',
        "Digest\trealm=a\r\nnonce=b",
        "Digest=realm",
        "Digest dGVzdA==",
        "x" * 20000,
    ],
)
def test_malformed_values_raise_sip_parse_error(text: str) -> None:
    with pytest.raises(SipParseError) as info:
        Challenge.parse(text)
    assert info.value.status == 400
    with pytest.raises(SipParseError):
        Credentials.parse(text)


def test_quote_escapes_and_refuses_crlf() -> None:
    assert quote('a"b\\c\x01') == '"a\\"b\\\\c\\\x01"'
    assert Challenge.parse("Digest realm=" + quote('a"b\\c\x01')).realm == 'a"b\\c\x01'
    with pytest.raises(LocalSipError):
        quote("evil\r\nVia: injected")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_parse_random_text_only_raises_sip_parse_error(text: str) -> None:
    for parse in (Challenge.parse, Credentials.parse, parse_challenges):
        with contextlib.suppress(SipParseError):
            parse(text)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "Digest",
                "Basic",
                " ",
                "\t",
                "=",
                ",",
                '"',
                "\\",
                "realm",
                "nonce",
                "a",
                "é",
                "\r\n ",
                "\r",
                "\x00",
                "==",
                "qop",
                "/",
            ]
        ),
        max_size=25,
    )
)
def test_parse_grammar_shaped_text_only_raises_sip_parse_error(pieces: list[str]) -> None:
    """Random text rarely looks like a header; this builds near-misses from its pieces."""
    text = "".join(pieces)
    for cls in (Challenge, Credentials):
        try:
            value = cls.parse(text)
        except SipParseError:
            continue
        assert cls.parse(str(value)) == value  # whatever parses, renders and re-parses


_near_params = st.lists(
    st.tuples(
        st.sampled_from([",", ", ", ", ", ",", ",,", " ", "\r\n ,", "\r\n", " ,\t", ",\r\n\t"]),
        st.sampled_from(["a", "Realm", "nc", "nonce", "é", "", "x y", "Nc"]),
        st.sampled_from(["=", "=", " = ", "\r\n =", "==", "\r\n=", "= \r\n\t"]),
        st.sampled_from(
            ['"x"', '"a\\"b"', "tok", '"', '""', '"é"', "a b", '"\x00"', '"\\\x7f"', '"\t,="']
        ),
    ),
    min_size=1,
    max_size=5,
)


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(["Digest ", "Digest", " Digest\t", "Basic ", "Digest\r\n "]), _near_params)
def test_fast_path_agrees_with_the_scanner(
    scheme: str, params: list[tuple[str, str, str, str]]
) -> None:
    """The one-regex path for ``scheme name=value, ...`` parses exactly like the scanner."""
    joined = "".join(sep + name + eq + value for sep, name, eq, value in params)
    text = scheme + joined[len(params[0][0]) :]  # no separator before the first
    fast = authheaders._parse_simple(text)
    if fast is not None:
        assert fast == authheaders._scan_items(text)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.from_regex(r"[A-Za-z][a-z0-9\-]{0,10}", fullmatch=True),
        st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=30),
        min_size=1,
        max_size=8,
    ),
    st.sampled_from([",", ", ", " ,\r\n\t", "\t,"]),
)
def test_fast_path_takes_rendered_headers(params: dict[str, str], separator: str) -> None:
    """What we (and phones) send takes the fast path and reads back the same values.

    A folded header (CRLF inside) is left to the scanner, which reads the same.
    """
    rendered = separator.join(f"{name}={quote(value)}" for name, value in params.items())
    text = f"Digest {rendered}"
    fast = authheaders._parse_simple(text)
    if len({name.lower() for name in params}) < len(params):
        assert fast is None
        return
    expected = [("Digest", None, [(name.lower(), value) for name, value in params.items()])]
    assert authheaders._scan_items(text) == expected
    assert authheaders._parse_items(text) == expected
    if "\r\n" in text:
        assert fast is None
    else:
        assert fast == expected


_names = st.from_regex(r"[a-z][a-z0-9\-]{0,10}", fullmatch=True)
_values = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=30)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(_names, _values, min_size=1, max_size=6), st.booleans())
def test_render_parse_round_trip(params: dict[str, str], digest: bool) -> None:
    scheme = "Digest" if digest else "Other"
    for cls in (Challenge, Credentials):
        value = cls(scheme, dict(params))
        assert cls.parse(str(value)) == value


# -- client behaviour ----------------------------------------------------------------------


def test_client_picks_strongest_supported_algorithm() -> None:
    offered = [
        Challenge.digest(realm=REALM, nonce="n", algorithm="MD5"),
        Challenge.digest(realm=REALM, nonce="n", algorithm="SHA-256"),
        Challenge.digest(realm=REALM, nonce="n", algorithm="SHA-512-256"),
        Challenge.digest(realm=REALM, nonce="n", algorithm="UNKNOWN-9"),
        Challenge("Basic", {"realm": REALM}),
    ]
    assert select_challenge(offered) is offered[2]
    assert select_challenge(offered, ("MD5", "SHA-256")) is offered[1]
    assert select_challenge(offered, ("MD5",)) is offered[0]
    assert select_challenge(offered[3:]) is None
    only_unknown_qop = Challenge.digest(realm=REALM, nonce="n", qop=("auth-conf",))
    assert select_challenge([only_unknown_qop]) is None
    client = DigestClient("alice", "wonderland", algorithms=("MD5",))
    assert not client.challenged([offered[1], offered[2], offered[3], only_unknown_qop])
    assert client.authorization("INVITE", URI) == []
    assert client.challenged(offered)
    [(_, value)] = client.authorization("INVITE", URI)
    assert Credentials.parse(value).algorithm == "MD5"


def test_client_reuses_nonce_with_increasing_nc() -> None:
    server = DigestServer(REALM, SECRET)
    client = DigestClient("alice", "wonderland")
    assert client.challenged(server.challenge(now=1000.0))
    counts = []
    for step in range(5):
        [(_, value)] = client.authorization("REGISTER", URI)
        credentials = Credentials.parse(value)
        counts.append(credentials.nc)
        result = server.verify(credentials, "REGISTER", b"", lookup, now=1000.0 + step)
        assert result.ok, result
        assert result.username == "alice"
    assert counts == [f"{n:08x}" for n in range(1, 6)]


def test_client_gives_up_on_wrong_password_but_follows_stale() -> None:
    server = DigestServer(REALM, SECRET, nonce_ttl=30)
    client = DigestClient("alice", "not-the-password")
    assert client.challenged(server.challenge(now=0.0))
    [(_, value)] = client.authorization("REGISTER", URI)
    result = server.verify(Credentials.parse(value), "REGISTER", b"", lookup, now=1.0)
    assert result.status is AuthStatus.BAD
    # The server challenges again with a fresh nonce and no stale: do not loop.
    assert not client.challenged(server.challenge(now=1.0))
    assert client.authorization("REGISTER", URI) == []

    good = DigestClient("alice", "wonderland")
    assert good.challenged(server.challenge(now=0.0))
    [(_, value)] = good.authorization("REGISTER", URI)
    assert server.verify(Credentials.parse(value), "REGISTER", b"", lookup, now=1.0).ok
    [(_, value)] = good.authorization("REGISTER", URI)
    stale = server.verify(Credentials.parse(value), "REGISTER", b"", lookup, now=100.0)
    assert stale.status is AuthStatus.STALE
    assert good.challenged(server.challenge(now=100.0, stale=True))
    [(_, value)] = good.authorization("REGISTER", URI)
    assert Credentials.parse(value).nc == "00000001"
    assert server.verify(Credentials.parse(value), "REGISTER", b"", lookup, now=101.0).ok


def test_proxy_and_www_challenges_give_both_headers() -> None:
    proxy = DigestServer("proxy.example.com", SECRET)
    registrar = DigestServer(REALM, SECRET[::-1])
    client = DigestClient("alice", "wonderland")
    assert client.challenged(proxy.challenge(now=0.0), proxy=True)
    assert client.challenged(registrar.challenge(now=0.0))
    headers = dict(client.authorization("INVITE", URI))
    assert set(headers) == {"Proxy-Authorization", "Authorization"}
    assert proxy.verify(
        Credentials.parse(headers["Proxy-Authorization"]), "INVITE", b"", lookup, now=1.0
    ).ok
    assert registrar.verify(
        Credentials.parse(headers["Authorization"]), "INVITE", b"", lookup, now=1.0
    ).ok
    client.forget("proxy.example.com")
    assert [name for name, _ in client.authorization("INVITE", URI)] == ["Authorization"]
    # A proxy and a registrar may share a realm name: both answers are kept.
    assert client.challenged(registrar.challenge(now=2.0), proxy=True)
    names = [name for name, _ in client.authorization("INVITE", URI)]
    assert sorted(names) == ["Authorization", "Proxy-Authorization"]
    client.forget()
    assert client.authorization("INVITE", URI) == []


# -- server behaviour --------------------------------------------------------------------


def test_server_offers_sha256_then_md5_with_one_nonce() -> None:
    challenges = DigestServer(REALM, SECRET).challenge(now=5.0)
    assert [c.algorithm for c in challenges] == ["SHA-256", "MD5"]
    legacy = DigestServer(REALM, SECRET, algorithms=LEGACY_ALGORITHMS).challenge(now=5.0)
    assert [c.algorithm for c in legacy] == ["MD5"]
    assert len({c.nonce for c in challenges}) == 1
    assert all(c.qop_options == ["auth"] and not c.stale for c in challenges)
    assert all(c.stale for c in DigestServer(REALM, SECRET).challenge(now=5.0, stale=True))
    # Two challenges in the same millisecond still get different nonces.
    assert challenges[0].nonce != DigestServer(REALM, SECRET).challenge(now=5.0)[0].nonce


@pytest.mark.parametrize(
    ("algorithm", "qop"), [(a, q) for a in ALGORITHMS for q in ("auth", "auth-int")]
)
def test_round_trip_every_algorithm_and_qop(algorithm: str, qop: str) -> None:
    server = DigestServer(REALM, SECRET, algorithms=(algorithm,), qop=(qop,))
    client = DigestClient("bob", "builder", prefer_auth_int=True)
    challenges = server.challenge(now=50.0)
    assert Challenge.parse(str(challenges[0])) == challenges[0]
    assert client.challenged([Challenge.parse(str(c)) for c in challenges])
    body = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n"
    [(_, value)] = client.authorization("INVITE", URI, body)
    credentials = Credentials.parse(value)
    assert credentials.algorithm == algorithm
    assert credentials.qop == qop
    result = server.verify(credentials, "INVITE", body, lookup, now=51.0, request_uri=URI)
    assert result.ok, result
    # The same credentials on another method, or with another body under auth-int, fail.
    replay_server = DigestServer(REALM, SECRET, algorithms=(algorithm,), qop=(qop,))
    assert not replay_server.verify(credentials, "BYE", body, lookup, now=51.0).ok
    tampered = replay_server.verify(credentials, "INVITE", body + b"x", lookup, now=51.0)
    assert tampered.ok is (qop == "auth")


def _answer(server: DigestServer, user: str, password: str, now: float) -> Credentials:
    client = DigestClient(user, password)
    client.challenged(server.challenge(now=now))
    [(_, value)] = client.authorization("REGISTER", URI)
    return Credentials.parse(value)


def test_replayed_nonce_count_is_rejected() -> None:
    server = DigestServer(REALM, SECRET, nc_window=4)
    credentials = _answer(server, "alice", "wonderland", now=0.0)
    assert server.verify(credentials, "REGISTER", b"", lookup, now=1.0).ok
    replay = server.verify(credentials, "REGISTER", b"", lookup, now=2.0)
    assert replay.status is AuthStatus.BAD


def test_out_of_order_counts_within_window() -> None:
    server = DigestServer(REALM, SECRET, nc_window=4)
    client = DigestClient("alice", "wonderland")
    client.challenged(server.challenge(now=0.0))
    sent = [Credentials.parse(client.authorization("REGISTER", URI)[0][1]) for _ in range(8)]

    def check(index: int) -> bool:
        return server.verify(sent[index], "REGISTER", b"", lookup, now=1.0).ok

    assert check(2)  # nc 3 first
    assert check(0)  # nc 1 late, inside the window
    assert check(1)
    assert not check(1)  # replay
    assert check(7)  # nc 8: the window moves to 5..8
    assert not check(3)  # nc 4 is now too old to tell apart from a replay
    assert check(5)


def test_wrong_password_and_unknown_user_look_the_same() -> None:
    server = DigestServer(REALM, SECRET)
    wrong = server.verify(_answer(server, "alice", "x", 0.0), "REGISTER", b"", lookup, now=1.0)
    unknown = server.verify(_answer(server, "mallory", "x", 0.0), "REGISTER", b"", lookup, now=1.0)
    assert wrong == unknown
    assert wrong.status is AuthStatus.BAD and wrong.username is None


def test_tampered_foreign_and_expired_nonces() -> None:
    server = DigestServer(REALM, SECRET, nonce_ttl=60)
    good = _answer(server, "alice", "wonderland", now=0.0)
    nonce = good.nonce or ""
    flipped = nonce[:-3] + ("A" if nonce[-3] != "A" else "B") + nonce[-2:]
    respelled = nonce[:-1] + chr(ord(nonce[-1]) + 1)  # the same bytes, unused bits set
    assert server._nonce_time(nonce) == 0.0
    assert server._nonce_time(respelled) is None
    for bad_nonce in (
        flipped,
        respelled,
        nonce[:-1],
        nonce + "=",
        "x" * len(nonce),
        RFC7616_NONCE,
        "",
        "é" * len(nonce),
    ):
        forged = _answer_with_nonce(bad_nonce)
        assert server.verify(forged, "REGISTER", b"", lookup, now=1.0).status is AuthStatus.BAD
    other = DigestServer(REALM, b"another-secret-of-16+bytes")
    foreign = _answer(other, "alice", "wonderland", now=0.0)
    assert server.verify(foreign, "REGISTER", b"", lookup, now=1.0).status is AuthStatus.BAD
    # Expired and genuine -> stale; expired and wrong -> bad (RFC 7616 §3.3).
    assert server.verify(good, "REGISTER", b"", lookup, now=61.0).status is AuthStatus.STALE
    late_wrong = _answer(server, "alice", "nope", now=0.0)
    assert server.verify(late_wrong, "REGISTER", b"", lookup, now=61.0).status is AuthStatus.BAD
    # A nonce issued in the future (clock skew beyond tolerance) is refused.
    future = _answer(server, "alice", "wonderland", now=100.0)
    assert server.verify(future, "REGISTER", b"", lookup, now=10.0).status is AuthStatus.BAD


def _answer_with_nonce(nonce: str) -> Credentials:
    client = DigestClient("alice", "wonderland")
    client.challenged([Challenge.digest(realm=REALM, nonce=nonce, algorithm="SHA-256")])
    [(_, value)] = client.authorization("REGISTER", URI)
    return Credentials.parse(value)


def test_request_checks() -> None:
    server = DigestServer(REALM, SECRET)
    good = _answer(server, "alice", "wonderland", now=0.0)

    def altered(**changes: str | None) -> Credentials:
        params = {k: v for k, v in {**good.params, **changes}.items() if v is not None}
        return Credentials("Digest", params)

    cases = {
        "scheme": Credentials("Basic", dict(good.params)),
        "realm": altered(realm="other"),
        "algorithm": altered(algorithm="SHA-512-256"),
        "no-response": altered(response=None),
        "no-nonce": altered(nonce=None),
        "no-qop": altered(qop=None, nc=None),
        "bad-qop": altered(qop="auth-int"),
        "bad-nc": altered(nc="1"),
        "hex-nc": altered(nc="0000000g"),
        "no-cnonce": altered(cnonce=None),
    }
    for name, credentials in cases.items():
        result = server.verify(credentials, "REGISTER", b"", lookup, now=1.0)
        assert result.status is AuthStatus.BAD, name
    wrong_uri = server.verify(good, "REGISTER", b"", lookup, now=1.0, request_uri="sip:x@y")
    assert wrong_uri.status is AuthStatus.BAD
    assert server.verify(good, "REGISTER", b"", lookup, now=1.0, request_uri=URI).ok


def test_legacy_rfc2069_client_only_when_allowed() -> None:
    strict = DigestServer(REALM, SECRET)
    legacy = DigestServer(REALM, SECRET, require_qop=False)
    client = DigestClient("alice", "wonderland")
    nonce = strict.make_nonce(0.0)
    client.challenged([Challenge.digest(realm=REALM, nonce=nonce, algorithm="MD5", qop=())])
    [(_, value)] = client.authorization("REGISTER", URI)
    credentials = Credentials.parse(value)
    assert credentials.qop is None and credentials.nc is None and credentials.cnonce is None
    assert strict.verify(credentials, "REGISTER", b"", lookup, now=1.0).status is AuthStatus.BAD
    assert legacy.verify(credentials, "REGISTER", b"", lookup, now=1.0).ok


def test_userhash_round_trip() -> None:
    server = DigestServer(REALM, SECRET, algorithms=("SHA-256",))
    [challenge] = server.challenge(now=0.0)
    challenge.params["userhash"] = "true"
    client = DigestClient("alice", "wonderland")
    client.challenged([challenge])
    credentials = Credentials.parse(client.authorization("REGISTER", URI)[0][1])
    assert credentials.userhash
    assert credentials.username == userhash("alice", REALM, "SHA-256")
    assert "alice" not in str(credentials)
    hidden = {userhash(name, REALM, "SHA-256"): name for name in USERS}

    def unhash(value: str, realm: str, algorithm: str) -> str | None:
        return hidden.get(value)

    assert server.verify(credentials, "REGISTER", b"", lookup, now=1.0).status is AuthStatus.BAD
    result = server.verify(credentials, "REGISTER", b"", lookup, now=1.0, userhash_lookup=unhash)
    assert result.ok and result.username == "alice"


def test_replay_table_is_bounded() -> None:
    server = DigestServer(REALM, SECRET, max_nonces=8)
    for step in range(40):
        credentials = _answer(server, "alice", "wonderland", now=float(step))
        assert server.verify(credentials, "REGISTER", b"", lookup, now=float(step)).ok
    assert len(server._seen) == 8


def test_server_configuration_errors() -> None:
    with pytest.raises(LocalSipError):
        DigestServer(REALM, b"short")
    with pytest.raises(LocalSipError):
        DigestServer(REALM, SECRET, algorithms=("SHA-1",))


def test_two_step_verification_for_awaited_user_stores() -> None:
    server = DigestServer(REALM, SECRET, algorithms=("SHA-256-sess", "MD5"))
    credentials = _answer(server, "bob", "builder", now=0.0)
    assert credentials.algorithm == "SHA-256-sess"
    assert server.precheck(credentials) is None
    assert base_algorithm(credentials.algorithm) == "SHA-256"
    stored = ha1("bob", REALM, "builder", base_algorithm(credentials.algorithm))
    result = server.verify_ha1(credentials, "REGISTER", b"", stored, now=1.0)
    assert result.ok and result.username == "bob"
    unknown = server.verify_ha1(credentials, "REGISTER", b"", None, now=1.0)
    assert unknown.status is AuthStatus.BAD
    malformed = Credentials("Digest", {"username": "bob"})
    precheck = server.precheck(malformed)
    assert precheck is not None and precheck.status is AuthStatus.BAD


@pytest.mark.parametrize(
    ("algorithm", "qop"), [(a, q) for a in ALGORITHMS for q in ("auth", "auth-int")]
)
def test_cross_check_with_sippy(algorithm: str, qop: str) -> None:
    """An independent implementation (sippy's SipAuthorization) agrees both ways."""
    from sippy.SipAuthorization import DigestCalcHA1, DigestCalcResponse, SipAuthorization

    server = DigestServer(REALM, SECRET, algorithms=(algorithm,), qop=(qop,))
    body = "v=0\r\ns=-\r\n"
    client = DigestClient("alice", "wonderland")
    client.challenged(server.challenge(now=0.0))
    [(_, value)] = client.authorization("INVITE", URI, body.encode())
    theirs = SipAuthorization(body=value)
    theirs.parse()  # sippy reads our header...
    assert (theirs.username, theirs.realm, theirs.uri) == ("alice", REALM, URI)
    assert (theirs.algorithm, theirs.qop, theirs.nc) == (algorithm, qop, "00000001")
    their_ha1 = DigestCalcHA1(algorithm, "alice", REALM, "wonderland", theirs.nonce, theirs.cnonce)
    expected = DigestCalcResponse(
        algorithm, their_ha1, theirs.nonce, theirs.nc, theirs.cnonce, qop, "INVITE", URI, body
    )
    assert Credentials.parse(value).response == expected  # ...and computes our response
    # sippy answering our challenge is accepted by our server.
    [challenge] = server.challenge(now=0.0)
    generated = SipAuthorization(username="bob", uri=URI, realm=REALM, nonce=challenge.nonce or "")
    generated.algorithm = algorithm
    generated.qop, generated.nc, generated.cnonce = qop, "00000001", "0a4f113b"
    generated.genAuthResponse("builder", "INVITE", body)
    credentials = Credentials.parse(str(generated))
    assert server.verify(credentials, "INVITE", body.encode(), lookup, now=1.0).ok


def test_register_exchange_through_sip_messages() -> None:
    """401 with two challenges -> REGISTER with Authorization -> verified, over real bytes."""
    from trunkline.sip import Request, Response, parse_message
    from trunkline.sip.builder import make_request, make_response

    server = DigestServer(REALM, SECRET)
    client = DigestClient("alice", "wonderland")
    register = make_request(
        "REGISTER",
        f"sip:{REALM}",
        from_=f"<sip:alice@{REALM}>",
        to=f"<sip:alice@{REALM}>",
        via="SIP/2.0/UDP 127.0.0.1:5070",
    )
    challenge_headers = [("WWW-Authenticate", str(c)) for c in server.challenge(now=10.0)]
    unauthorized = parse_message(bytes(make_response(register, 401, headers=challenge_headers)))
    assert isinstance(unauthorized, Response) and unauthorized.status == 401
    assert [c.algorithm for c in unauthorized.www_authenticate] == ["SHA-256", "MD5"]
    assert client.challenged(unauthorized.www_authenticate)

    retry = make_request(
        "REGISTER",
        f"sip:{REALM}",
        from_=f"<sip:alice@{REALM}>",
        to=f"<sip:alice@{REALM}>",
        via="SIP/2.0/UDP 127.0.0.1:5070",
        cseq=2,
        extra_headers=client.authorization("REGISTER", f"sip:{REALM}"),
    )
    received = parse_message(bytes(retry))
    assert isinstance(received, Request)
    [credentials] = received.authorization
    assert credentials.algorithm == "SHA-256"
    result = server.verify(
        credentials,
        received.method,
        received.body,
        lookup,
        now=11.0,
        request_uri=str(received.uri),
    )
    assert result.ok and result.username == "alice"


@pytest.mark.parametrize(
    "realm", [REALM, 'odd "realm" \\ here', "N0NCE", 'x, nonce="N0NCE"', "réalm"]
)
@pytest.mark.parametrize("algorithms", [("SHA-256", "MD5"), ("MD5",), ALGORITHMS])
@pytest.mark.parametrize("qop", [("auth",), ("auth", "auth-int"), ()])
def test_challenge_values_render_like_challenge_objects(
    realm: str, algorithms: tuple[str, ...], qop: tuple[str, ...]
) -> None:
    """The pre-rendered 401/407 values are the text of the Challenge objects, nonce aside."""
    server = DigestServer(realm, SECRET, algorithms=algorithms, qop=qop, require_qop=bool(qop))
    for stale in (False, True):
        values = server.challenge_values(1000.0, stale=stale)
        parsed = [Challenge.parse(value) for value in values]
        nonce = parsed[0].nonce
        assert nonce is not None
        expected = [
            str(Challenge.digest(realm=realm, nonce=nonce, algorithm=a, qop=qop, stale=stale))
            for a in algorithms
        ]
        assert values == expected
        assert all(c.nonce == nonce and c.realm == realm for c in parsed)
        assert server._nonce_time(nonce) == 1000.0
