"""Digest computations and the client side: published vectors, challenge choice, credentials."""

from __future__ import annotations

import hashlib

import pytest

from callscript.sip.digest import (
    ALGORITHMS,
    canonical_algorithm,
    digest_response,
    ha1,
    pick_challenge,
    pick_challenges,
    request_digest,
)
from callscript.sip.errors import LocalProtocolError, ParseError
from callscript.sip.headers import Auth, parse_auth
from callscript.sip.message import Response, parse_message

# RFC 2617 §3.5
MUFASA_CHALLENGE = (
    'Digest realm="testrealm@host.com", qop="auth,auth-int", '
    'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)
# RFC 7616 §3.9.1
HTTP_AUTH_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
HTTP_AUTH_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
HTTP_AUTH_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"


def h(name: str, text: str) -> str:
    """An independent H(): hashlib straight, no code under test."""
    hash_name = {"MD5": "md5", "SHA-256": "sha256", "SHA-512-256": "sha512_256"}[name]
    return hashlib.new(hash_name, text.encode()).hexdigest()


def response_with(status: int, *challenges: str, header: str | None = None) -> Response:
    """A parsed 401/407 carrying ``challenges`` as separate header lines."""
    name = header or ("WWW-Authenticate" if status == 401 else "Proxy-Authenticate")
    lines = [
        f"SIP/2.0 {status} Challenge",
        "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-1",
        "From: <sip:alice@example.com>;tag=1",
        "To: <sip:alice@example.com>;tag=2",
        "Call-ID: c1",
        "CSeq: 1 REGISTER",
        *(f"{name}: {c}" for c in challenges),
        "Content-Length: 0",
    ]
    message = parse_message(("\r\n".join(lines) + "\r\n\r\n").encode())
    assert isinstance(message, Response)
    return message


def challenge_for(
    algorithm: str | None, realm: str = "example.com", qop: str | None = "auth"
) -> str:
    text = f'Digest realm="{realm}", nonce="n-{algorithm}"'
    if algorithm is not None:
        text += f", algorithm={algorithm}"
    if qop is not None:
        text += f', qop="{qop}"'
    return text


def test_rfc2617_example_response_for_mufasa() -> None:
    """RFC 2617 §3.5: the worked example gives response 6629fae49393a05397450978507c4ef1."""
    stored = ha1("Mufasa", "testrealm@host.com", "Circle Of Life")
    assert (
        request_digest(
            ha1=stored,
            algorithm="MD5",
            method="GET",
            uri="/dir/index.html",
            nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
            qop="auth",
            nc="00000001",
            cnonce="0a4f113b",
        )
        == "6629fae49393a05397450978507c4ef1"
    )


def test_rfc2617_example_credentials_built_from_the_challenge() -> None:
    """RFC 2617 §3.5: answering the example challenge gives the example Authorization."""
    credentials = digest_response(
        parse_auth(MUFASA_CHALLENGE),
        method="GET",
        uri="/dir/index.html",
        username="Mufasa",
        password="Circle Of Life",
        cnonce="0a4f113b",
        nc=1,
    )
    assert str(credentials) == (
        'Digest username="Mufasa", realm="testrealm@host.com", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", '
        'response="6629fae49393a05397450978507c4ef1", qop=auth, nc=00000001, '
        'cnonce="0a4f113b", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
    ],
)
def test_rfc7616_example_responses(algorithm: str, expected: str) -> None:
    """RFC 7616 §3.9.1: the SHA-256 and MD5 examples for http-auth@example.org."""
    challenge = parse_auth(
        f'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={algorithm}, '
        f'nonce="{HTTP_AUTH_NONCE}", opaque="{HTTP_AUTH_OPAQUE}"'
    )
    credentials = digest_response(
        challenge,
        method="GET",
        uri="/dir/index.html",
        username="Mufasa",
        password="Circle of Life",
        cnonce=HTTP_AUTH_CNONCE,
        nc=1,
    )
    assert credentials.get("response") == expected
    assert credentials.params["algorithm"] == algorithm
    assert credentials.get("opaque") == HTTP_AUTH_OPAQUE
    assert credentials.params["qop"] == "auth"


def test_sha512_256_matches_an_independent_computation() -> None:
    """RFC 8760 §2.1: SHA-512-256 (and SHA-256, MD5) are the hashes SIP digest uses."""
    assert {"SHA-512-256", "SHA-256", "MD5"} <= set(ALGORITHMS)
    assert ALGORITHMS.index("SHA-512-256") < ALGORITHMS.index("SHA-256") < ALGORITHMS.index("MD5")
    a1 = h("SHA-512-256", "bob:example.com:secret")
    a2 = h("SHA-512-256", "INVITE:sip:carol@example.com")
    expected = h("SHA-512-256", f"{a1}:nonce1:0000000a:cn:auth:{a2}")
    challenge = parse_auth(
        'Digest realm="example.com", nonce="nonce1", algorithm=SHA-512-256, qop="auth"'
    )
    credentials = digest_response(
        challenge,
        method="INVITE",
        uri="sip:carol@example.com",
        username="bob",
        password="secret",
        cnonce="cn",
        nc=10,
    )
    assert credentials.get("response") == expected
    assert credentials.get("nc") == "0000000a"
    assert len(expected) == 64


def test_challenge_without_qop_is_answered_in_rfc2069_form() -> None:
    """RFC 2617 §3.2.2.1: without qop the response is KD(H(A1), nonce:H(A2)), no nc or cnonce."""
    credentials = digest_response(
        parse_auth('Digest realm="example.com", nonce="abc"'),
        method="REGISTER",
        uri="sip:example.com",
        username="alice",
        password="pw",
        cnonce="ignored",
        nc=1,
    )
    a1 = h("MD5", "alice:example.com:pw")
    a2 = h("MD5", "REGISTER:sip:example.com")
    assert credentials.get("response") == h("MD5", f"{a1}:abc:{a2}")
    assert "qop" not in credentials.params
    assert "nc" not in credentials.params
    assert "cnonce" not in credentials.params
    assert "algorithm" not in credentials.params


def test_client_answers_a_qop_challenge_with_qop_nc_and_cnonce() -> None:
    """RFC 3261 §22.4: a challenge with qop is answered with qop, nc and cnonce."""
    credentials = digest_response(
        parse_auth(challenge_for("SHA-256", qop="auth-int,auth")),
        method="INVITE",
        uri="sip:bob@example.com",
        username="alice",
        password="pw",
        cnonce="c0ffee",
        nc=3,
    )
    assert credentials.params["qop"] == "auth"
    assert credentials.params["nc"] == "00000003"
    assert credentials.get("cnonce") == "c0ffee"


def test_auth_int_hashes_the_body_when_it_is_the_only_qop() -> None:
    """RFC 3261 §22.4: with auth-int an empty body still contributes H(""), else H(body)."""
    for body in (b"", b"v=0\r\n"):
        credentials = digest_response(
            parse_auth(challenge_for("MD5", qop="auth-int")),
            method="INVITE",
            uri="sip:bob@example.com",
            username="alice",
            password="pw",
            cnonce="cn",
            nc=1,
            body=body,
        )
        a1 = h("MD5", "alice:example.com:pw")
        body_hash = hashlib.md5(body).hexdigest()
        a2 = h("MD5", f"INVITE:sip:bob@example.com:{body_hash}")
        assert credentials.params["qop"] == "auth-int"
        assert credentials.get("response") == h("MD5", f"{a1}:n-MD5:00000001:cn:auth-int:{a2}")


def test_sess_algorithm_derives_the_session_key_from_nonce_and_cnonce() -> None:
    """RFC 3261 §22.4: -sess needs the cnonce, so it is answered only with qop."""
    credentials = digest_response(
        parse_auth(challenge_for("SHA-256-sess")),
        method="REGISTER",
        uri="sip:example.com",
        username="alice",
        password="pw",
        cnonce="cn",
        nc=1,
    )
    key = h("SHA-256", f"{h('SHA-256', 'alice:example.com:pw')}:n-SHA-256-sess:cn")
    a2 = h("SHA-256", "REGISTER:sip:example.com")
    assert credentials.get("response") == h(
        "SHA-256", f"{key}:n-SHA-256-sess:00000001:cn:auth:{a2}"
    )
    assert pick_challenge(response_with(401, challenge_for("MD5-sess", qop=None))) is None
    with pytest.raises(LocalProtocolError):
        request_digest(ha1="x", algorithm="MD5-sess", method="A", uri="sip:a", nonce="n")


def test_pick_challenge_prefers_the_strongest_algorithm_in_any_order() -> None:
    """RFC 8760 §2.4: the UAC ignores challenges it does not support and takes the best one."""
    response = response_with(
        401,
        challenge_for("MD5"),
        'Basic realm="example.com"',
        challenge_for("SHA-3-512"),
        challenge_for("SHA-512-256"),
        challenge_for("SHA-256"),
    )
    chosen = pick_challenge(response)
    assert chosen is not None
    assert chosen.params["algorithm"] == "SHA-512-256"
    only_md5 = response_with(
        401, 'Basic realm="x"', challenge_for("SHA-3-512"), challenge_for(None)
    )
    fallback = pick_challenge(only_md5)
    assert fallback is not None
    assert fallback.get("nonce") == "n-None"


def test_pick_challenge_skips_unusable_and_malformed_challenges() -> None:
    """Bad challenge lines are skipped, never raised; nothing usable gives None."""
    response = response_with(
        407,
        'Digest realm="unterminated',
        'Digest nonce="no-realm"',
        'Digest realm="example.com"',
        challenge_for("SHA-256", qop="auth-conf"),
        'Bearer realm="example.com"',
    )
    assert pick_challenge(response) is None
    assert pick_challenges(response) == []
    # A 401's challenges live in WWW-Authenticate; Proxy-Authenticate there is not read.
    assert (
        pick_challenge(response_with(401, challenge_for("MD5"), header="Proxy-Authenticate"))
        is None
    )
    assert (
        pick_challenge(response_with(407, challenge_for("MD5"), header="WWW-Authenticate")) is None
    )
    ok = response_with(407, challenge_for("SHA-256"))
    ok.status = 200
    assert pick_challenge(ok) is None


def test_pick_challenges_answers_each_realm_of_a_forked_request() -> None:
    """RFC 3261 §22.3: challenges from several proxies each get credentials, best per realm."""
    response = response_with(
        407,
        challenge_for("MD5", realm="a.example.com"),
        challenge_for("MD5", realm="b.example.com"),
        challenge_for("SHA-256", realm="a.example.com"),
    )
    chosen = pick_challenges(response)
    assert [(c.get("realm"), c.get("algorithm")) for c in chosen] == [
        ("a.example.com", "SHA-256"),
        ("b.example.com", "MD5"),
    ]
    best = pick_challenge(response)
    assert best is not None
    assert best.get("realm") == "a.example.com"


def test_algorithm_is_echoed_as_written_and_matched_case_insensitively() -> None:
    """The credentials repeat the challenge's algorithm token; an absent one means MD5."""
    credentials = digest_response(
        parse_auth(challenge_for("sha-256")),
        method="REGISTER",
        uri="sip:example.com",
        username="alice",
        password="pw",
        cnonce="cn",
        nc=1,
    )
    assert credentials.params["algorithm"] == "sha-256"
    assert len(credentials.get("response") or "") == 64
    assert canonical_algorithm(None) == "MD5"
    assert canonical_algorithm("sha-512-256-SESS") == "SHA-512-256-sess"
    assert canonical_algorithm("SHA-1") is None


def test_quoted_username_survives_the_round_trip() -> None:
    """Quotes and backslashes in a username are escaped in the quoted-string."""
    credentials = digest_response(
        parse_auth(challenge_for("MD5")),
        method="REGISTER",
        uri="sip:example.com",
        username='al"ice\\',
        password="pw",
        cnonce="cn",
        nc=1,
    )
    again = parse_auth(str(credentials))
    assert again.get("username") == 'al"ice\\'


@pytest.mark.parametrize(
    "challenge",
    [
        'Basic realm="example.com"',
        'Digest realm="example.com"',
        'Digest nonce="abc"',
        'Digest realm="example.com", nonce="abc", algorithm=SHA-1',
        'Digest realm="example.com", nonce="abc", qop="auth-conf"',
    ],
)
def test_unanswerable_challenge_raises_parse_error(challenge: str) -> None:
    """A challenge we cannot answer is the peer's fault: ParseError, not a crash."""
    with pytest.raises(ParseError):
        digest_response(
            parse_auth(challenge),
            method="REGISTER",
            uri="sip:example.com",
            username="alice",
            password="pw",
            cnonce="cn",
            nc=1,
        )


@pytest.mark.parametrize(("nc", "username"), [(0, "alice"), (2**32, "alice"), (1, "al\r\nice")])
def test_bad_local_arguments_raise_local_protocol_error(nc: int, username: str) -> None:
    """A nonce-count outside 1..2^32-1 or a CR/LF in our own values is our bug."""
    with pytest.raises(LocalProtocolError):
        digest_response(
            Auth("Digest", parse_auth(challenge_for("MD5")).params),
            method="REGISTER",
            uri="sip:example.com",
            username=username,
            password="pw",
            cnonce="cn",
            nc=nc,
        )
