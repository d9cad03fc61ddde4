"""DigestServer: challenges, stateless nonces, verification and replay protection."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callscript.sip.auth import (
    AuthResult,
    AuthStatus,
    DigestServer,
    digest_response,
    ha1,
    pick_challenge,
)
from callscript.sip.digest import ALGORITHMS, request_digest
from callscript.sip.errors import LocalProtocolError, ParseError
from callscript.sip.headers import Auth, parse_auth
from callscript.sip.ids import CountingIds
from callscript.sip.message import Request, Response, parse_message

REALM = "example.com"
SECRET = bytes(range(32))
T0 = 1_700_000_000.0
PASSWORDS = {("alice", REALM): "wonderland", ("bob", "other.example.com"): "builder"}


def lookup(username: str, realm: str, algorithm: str) -> str | None:
    """The account store: stored HA1 per user, realm and hash."""
    password = PASSWORDS.get((username, realm))
    return None if password is None else ha1(username, realm, password, algorithm)


def server(**options: object) -> DigestServer:
    return DigestServer(REALM, SECRET, CountingIds(), **options)  # type: ignore[arg-type]


def request(
    *extra: str, method: str = "REGISTER", uri: str = "sip:example.com", to_tag: str = ""
) -> Request:
    """A request parsed from the wire, with ``extra`` header lines."""
    lines = [
        f"{method} {uri} SIP/2.0",
        "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-top",
        "Via: SIP/2.0/TCP 127.0.0.1:5080;branch=z9hG4bK-bottom",
        "From: Alice <sip:alice@example.com>;tag=from-1",
        f"To: <sip:alice@example.com>{to_tag}",
        "Call-ID: call-1@127.0.0.1",
        f"CSeq: 7 {method}",
        "Max-Forwards: 70",
        *extra,
        "Content-Length: 0",
    ]
    message = parse_message(("\r\n".join(lines) + "\r\n\r\n").encode())
    assert isinstance(message, Request)
    return message


def answer(
    challenge_response: Response,
    *,
    nc: int = 1,
    username: str = "alice",
    password: str = "wonderland",
    method: str = "REGISTER",
    uri: str = "sip:example.com",
    proxy: bool = False,
) -> Request:
    """What a UAC sends back: the request again with credentials, through the wire."""
    challenge = pick_challenge(parse_message(bytes(challenge_response)))  # type: ignore[arg-type]
    assert challenge is not None
    credentials = digest_response(
        challenge,
        method=method,
        uri=uri,
        username=username,
        password=password,
        cnonce="cn-1",
        nc=nc,
    )
    name = "Proxy-Authorization" if proxy else "Authorization"
    return request(f"{name}: {credentials}", method=method, uri=uri)


def credentials_line(**params: str) -> str:
    return "Authorization: Digest " + ", ".join(f"{k}={v}" for k, v in params.items())


# -- round trips ---------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_client_and_server_agree_for_every_algorithm(algorithm: str) -> None:
    """Credentials built from our own challenge verify OK, for each algorithm we know."""
    digest = server(algorithms=(algorithm,))
    challenge = digest.challenge(request(), now=T0)
    result = digest.verify(answer(challenge), now=T0 + 1, lookup_ha1=lookup)
    assert result == AuthResult(AuthStatus.OK, "alice", "")
    assert result.ok


def test_wrong_password_fails() -> None:
    """A response computed with another password is FAILED, not STALE."""
    digest = server()
    challenge = digest.challenge(request(), now=T0)
    result = digest.verify(answer(challenge, password="guess"), now=T0, lookup_ha1=lookup)
    assert result.status is AuthStatus.FAILED
    assert result.username == "alice"


def test_unknown_user_fails() -> None:
    """lookup_ha1 returning None is FAILED."""
    digest = server()
    challenge = digest.challenge(request(), now=T0)
    result = digest.verify(answer(challenge, username="mallory"), now=T0, lookup_ha1=lookup)
    assert result.status is AuthStatus.FAILED


def test_any_node_sharing_the_secret_accepts_the_nonce() -> None:
    """Nonces are stateless: another instance with the same secret verifies them."""
    challenge = server().challenge(request(), now=T0)
    other_node = DigestServer(REALM, SECRET, CountingIds("node2-"))
    assert other_node.verify(answer(challenge), now=T0 + 5, lookup_ha1=lookup).ok
    other_secret = DigestServer(REALM, b"another secret of 32 bytes......", CountingIds())
    result = other_secret.verify(answer(challenge), now=T0 + 5, lookup_ha1=lookup)
    assert result.status is AuthStatus.FAILED


# -- challenges ------------------------------------------------------------------


def test_challenge_lists_one_header_per_algorithm_strongest_first() -> None:
    """RFC 8760 §2.3: one challenge per algorithm, in order of preference, strongest first."""
    digest = server(algorithms=("MD5", "SHA-512-256", "SHA-256"))
    challenges = digest.challenge(request(), now=T0).get_all("WWW-Authenticate")
    assert [c.get("algorithm") for c in challenges] == ["SHA-512-256", "SHA-256", "MD5"]  # type: ignore[union-attr]
    assert len({c.get("nonce") for c in challenges}) == 1  # type: ignore[union-attr]


def test_server_always_offers_qop_auth() -> None:
    """RFC 3261 §22.4: servers always send qop in their challenges."""
    for challenge in server().challenges(now=T0):
        assert challenge.params["qop"] == '"auth"'
        assert challenge.get("realm") == REALM
        assert challenge.scheme == "Digest"
        assert "stale" not in challenge.params
        assert "opaque" not in challenge.params


def test_uas_challenges_with_401_and_www_authenticate() -> None:
    """RFC 3261 §22.2: a UAS or registrar answers 401 with WWW-Authenticate."""
    response = server().challenge(request(), now=T0)
    assert (response.status, response.reason) == (401, "Unauthorized")
    assert len(response.get_all("WWW-Authenticate")) == 2
    assert "Proxy-Authenticate" not in response


def test_proxy_challenges_with_407_and_proxy_authenticate() -> None:
    """RFC 3261 §22.3: a proxy answers 407 with Proxy-Authenticate and reads Proxy-Authorization."""
    digest = server()
    response = digest.challenge(
        request(method="INVITE", uri="sip:bob@example.com"), now=T0, proxy=True
    )
    assert (response.status, response.reason) == (407, "Proxy Authentication Required")
    assert len(response.get_all("Proxy-Authenticate")) == 2
    assert "WWW-Authenticate" not in response
    signed = answer(response, method="INVITE", uri="sip:bob@example.com", proxy=True)
    assert digest.verify(signed, now=T0, lookup_ha1=lookup, proxy=True).ok
    # The same credentials in the other header are not the proxy's.
    again = answer(response, method="INVITE", uri="sip:bob@example.com", nc=2)
    missing = digest.verify(again, now=T0, lookup_ha1=lookup, proxy=True)
    assert missing.status is AuthStatus.MISSING
    assert digest.verify(signed, now=T0, lookup_ha1=lookup).status is AuthStatus.MISSING


def test_challenge_copies_the_request_headers_and_adds_a_to_tag() -> None:
    """RFC 3261 §8.2.6.2: Via (in order), From, Call-ID and CSeq are copied; To gets a tag."""
    original = request()
    response = parse_message(bytes(server().challenge(original, now=T0)))
    assert isinstance(response, Response)
    assert [str(v) for v in response.via] == [str(v) for v in original.via]
    assert response.from_addr == original.from_addr
    assert response.from_addr.tag == "from-1"
    assert response.call_id == "call-1@127.0.0.1"
    assert response.cseq == original.cseq
    assert response.to_addr.uri == original.to_addr.uri
    assert response.to_addr.tag == "tag1"  # from the IdSource
    assert response["Content-Length"] == 0
    assert response.body == b""
    tagged = server().challenge(request(to_tag=";tag=dialog-9"), now=T0)
    assert tagged.to_addr.tag == "dialog-9"


def test_challenge_of_a_request_without_headers_raises_parse_error() -> None:
    """A request lacking the mandatory headers cannot be answered: ParseError."""
    with pytest.raises(ParseError):
        server().challenge(Request("REGISTER", "sip:example.com"), now=T0)


# -- stale, forged and replayed nonces ------------------------------------------


def test_expired_nonce_is_stale_and_the_new_challenge_says_so() -> None:
    """RFC 2617 §3.2.1: a right digest over an old nonce is STALE; rechallenge with stale=TRUE."""
    digest = server(nonce_ttl=60.0)
    signed = answer(digest.challenge(request(), now=T0))
    assert digest.verify(signed, now=T0 + 61, lookup_ha1=lookup).status is AuthStatus.STALE
    again = digest.challenge(request(), now=T0 + 61, stale=True)
    for challenge in again.get_all("WWW-Authenticate"):
        assert isinstance(challenge, Auth)
        assert challenge.params["stale"] == "TRUE"
    assert digest.verify(answer(again), now=T0 + 62, lookup_ha1=lookup).ok


def test_expired_nonce_with_a_wrong_password_is_failed_not_stale() -> None:
    """RFC 2617 §3.2.1: stale is said only when the digest proves the password right."""
    digest = server(nonce_ttl=60.0)
    signed = answer(digest.challenge(request(), now=T0), password="guess")
    assert digest.verify(signed, now=T0 + 61, lookup_ha1=lookup).status is AuthStatus.FAILED


def test_forged_nonces_are_rejected() -> None:
    """A nonce we did not issue (other realm, altered, garbage) is FAILED."""
    digest = server()
    other_realm = DigestServer("other.example.com", SECRET, CountingIds())
    foreign = parse_auth(str(other_realm.challenges(now=T0)[0]))
    good = digest.challenges(now=T0)[0].get("nonce") or ""
    flipped = good[:10] + ("A" if good[10] != "A" else "B") + good[11:]
    # The last character carries two spare bits: same bytes, another spelling.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    respelled = good[:-1] + alphabet[alphabet.index(good[-1]) ^ 1]
    assert base64.urlsafe_b64decode(good + "=") == base64.urlsafe_b64decode(respelled + "=")
    for nonce in (foreign.get("nonce"), flipped, respelled, "abc", "é" * 75, "x" * 500):
        challenge = parse_auth(
            f'Digest realm="{REALM}", nonce="{nonce}", algorithm=SHA-256, qop="auth"'
        )
        credentials = digest_response(
            challenge,
            method="REGISTER",
            uri="sip:example.com",
            username="alice",
            password="wonderland",
            cnonce="c",
            nc=1,
        )
        result = digest.verify(request(f"Authorization: {credentials}"), now=T0, lookup_ha1=lookup)
        assert result.status is AuthStatus.FAILED, nonce


def test_nonce_count_must_increase_and_replays_are_refused() -> None:
    """RFC 2617 §3.2.2: the same nc seen twice is a replay; counts only go up."""
    digest = server()
    challenge = digest.challenge(request(), now=T0)
    first = answer(challenge, nc=1)
    assert digest.verify(first, now=T0, lookup_ha1=lookup).ok
    replay = digest.verify(first, now=T0 + 1, lookup_ha1=lookup)
    assert replay.status is AuthStatus.STALE
    assert "replayed" in replay.reason
    assert digest.verify(answer(challenge, nc=2), now=T0, lookup_ha1=lookup).ok
    assert digest.verify(first, now=T0, lookup_ha1=lookup).status is AuthStatus.STALE
    assert digest.verify(answer(challenge, nc=7), now=T0, lookup_ha1=lookup).ok
    assert (
        digest.verify(answer(challenge, nc=6), now=T0, lookup_ha1=lookup).status is AuthStatus.STALE
    )


def test_failed_attempts_do_not_consume_the_nonce_count() -> None:
    """Only verified credentials move the count, so a forger cannot lock a nonce."""
    digest = server()
    challenge = digest.challenge(request(), now=T0)
    forged = answer(challenge, nc=0xFFFFFFFF, password="guess")
    assert digest.verify(forged, now=T0, lookup_ha1=lookup).status is AuthStatus.FAILED
    assert digest.verify(answer(challenge, nc=1), now=T0, lookup_ha1=lookup).ok


def test_nonce_without_qop_serves_once() -> None:
    """RFC 2617 §3.2.2: an RFC 2069 client (no qop, no nc) may use a nonce once only."""
    digest = server(algorithms=("MD5",))
    nonce = digest.challenges(now=T0)[0].get("nonce")
    challenge = parse_auth(f'Digest realm="{REALM}", nonce="{nonce}"')
    credentials = digest_response(
        challenge,
        method="REGISTER",
        uri="sip:example.com",
        username="alice",
        password="wonderland",
        cnonce="unused",
        nc=1,
    )
    assert "qop" not in credentials.params
    signed = request(f"Authorization: {credentials}")
    assert digest.verify(signed, now=T0, lookup_ha1=lookup).ok
    assert digest.verify(signed, now=T0, lookup_ha1=lookup).status is AuthStatus.STALE
    # Nor can the spent nonce be revived with qop.
    with_qop = parse_auth(f'Digest realm="{REALM}", nonce="{nonce}", qop="auth"')
    later = digest_response(
        with_qop,
        method="REGISTER",
        uri="sip:example.com",
        username="alice",
        password="wonderland",
        cnonce="c",
        nc=9,
    )
    result = digest.verify(request(f"Authorization: {later}"), now=T0, lookup_ha1=lookup)
    assert result.status is AuthStatus.STALE


def test_evicted_nonces_are_never_trusted_again() -> None:
    """A full table forgets its oldest nonce; it and older unused nonces turn STALE."""
    digest = server(max_tracked_nonces=2)
    unused = digest.challenge(request(), now=T0)
    first = digest.challenge(request(), now=T0 + 1)
    second = digest.challenge(request(), now=T0 + 2)
    third = digest.challenge(request(), now=T0 + 3)
    for challenge in (first, second, third):
        assert digest.verify(answer(challenge), now=T0 + 4, lookup_ha1=lookup).ok
    # `first` left the table: its next count cannot be checked, so it is refused.
    assert (
        digest.verify(answer(first, nc=2), now=T0 + 4, lookup_ha1=lookup).status is AuthStatus.STALE
    )
    assert digest.verify(answer(unused), now=T0 + 4, lookup_ha1=lookup).status is AuthStatus.STALE
    assert digest.verify(answer(third, nc=2), now=T0 + 4, lookup_ha1=lookup).ok
    fresh = digest.challenge(request(), now=T0 + 5)
    assert digest.verify(answer(fresh), now=T0 + 5, lookup_ha1=lookup).ok


# -- what the credentials say --------------------------------------------------


def test_uri_parameter_must_be_the_request_uri() -> None:
    """RFC 2617 §3.2.2.5: a uri parameter naming another resource is a bad request."""
    digest = server()
    challenge = digest.challenge(request(), now=T0)
    other = answer(challenge, uri="sip:evil.example.com")
    moved = request(f"Authorization: {other['Authorization'][0]}")
    result = digest.verify(moved, now=T0, lookup_ha1=lookup)
    assert result.status is AuthStatus.MALFORMED
    assert "uri" in result.reason
    # Compared as URIs: the host is case-insensitive.
    same = answer(challenge, uri="sip:EXAMPLE.com", nc=2)
    respelled = request(f"Authorization: {same['Authorization'][0]}")
    assert digest.verify(respelled, now=T0, lookup_ha1=lookup).ok
    # A proxy that accepts forwarded requests may switch the check off (RFC 3261 §22.4 item 6).
    lenient = server(check_uri=False)
    assert lenient.verify(moved, now=T0, lookup_ha1=lookup).ok


def test_credentials_for_another_realm_are_missing() -> None:
    """RFC 3261 §22.3: each server reads only the credentials for its own realm."""
    other = DigestServer("other.example.com", SECRET, CountingIds())
    foreign = answer(other.challenge(request(), now=T0), username="bob", password="builder")
    assert server().verify(foreign, now=T0, lookup_ha1=lookup).status is AuthStatus.MISSING
    assert other.verify(foreign, now=T0, lookup_ha1=lookup).ok
    # Two proxies' credentials in one request: each finds its own.
    ours = answer(server().challenge(request(), now=T0))
    both = request(
        f"Authorization: {foreign['Authorization'][0]}",
        f"Authorization: {ours['Authorization'][0]}",
    )
    assert server().verify(both, now=T0, lookup_ha1=lookup).ok


def test_no_credentials_and_basic_credentials_are_missing() -> None:
    """RFC 3261 §22.1: Basic credentials are never accepted; they count as none."""
    digest = server()
    assert digest.verify(request(), now=T0, lookup_ha1=lookup).status is AuthStatus.MISSING
    basic = request("Authorization: Basic YWxpY2U6d29uZGVybGFuZA==")
    assert digest.verify(basic, now=T0, lookup_ha1=lookup).status is AuthStatus.MISSING


def test_algorithm_not_offered_fails() -> None:
    """Credentials computed with an algorithm we do not offer are FAILED."""
    md5_server = server(algorithms=("MD5",))
    sha_server = server(algorithms=("SHA-256",))
    signed = answer(md5_server.challenge(request(), now=T0))
    result = sha_server.verify(signed, now=T0, lookup_ha1=lookup)
    assert result.status is AuthStatus.FAILED
    assert "algorithm" in result.reason


def test_opaque_must_come_back_unchanged() -> None:
    """A configured opaque is sent in challenges and required in credentials."""
    digest = server(opaque="state-1")
    challenge = digest.challenge(request(), now=T0)
    assert pick_challenge(challenge).get("opaque") == "state-1"  # type: ignore[union-attr]
    assert digest.verify(answer(challenge), now=T0, lookup_ha1=lookup).ok
    plain = server().challenge(request(), now=T0)
    result = digest.verify(answer(plain), now=T0, lookup_ha1=lookup)
    assert result.status is AuthStatus.FAILED


def _line_for(digest: DigestServer, **changes: str | None) -> str:
    """Valid credentials, then ``changes`` applied to the raw parameters (None drops one)."""
    signed = answer(digest.challenge(request(), now=T0))
    params = dict(signed["Authorization"][0].params)
    for name, value in changes.items():
        if value is None:
            params.pop(name, None)
        else:
            params[name] = value
    return "Authorization: Digest " + ", ".join(f"{k}={v}" for k, v in params.items())


@pytest.mark.parametrize(
    ("changes", "status"),
    [
        ({"username": None}, AuthStatus.MALFORMED),
        ({"nonce": None}, AuthStatus.MALFORMED),
        ({"uri": None}, AuthStatus.MALFORMED),
        ({"response": None}, AuthStatus.MALFORMED),
        ({"nc": None}, AuthStatus.MALFORMED),
        ({"cnonce": None}, AuthStatus.MALFORMED),
        ({"nc": "1"}, AuthStatus.MALFORMED),
        ({"nc": "0000000g"}, AuthStatus.MALFORMED),
        ({"response": '"xyz"'}, AuthStatus.MALFORMED),
        ({"response": '"abcd"'}, AuthStatus.MALFORMED),
        ({"uri": '"not a uri"'}, AuthStatus.MALFORMED),
        ({"qop": "auth-int"}, AuthStatus.FAILED),
        ({"nonce": '""'}, AuthStatus.FAILED),
        ({"algorithm": "SHA-1"}, AuthStatus.FAILED),
        ({"algorithm": "SHA-256-sess", "qop": None}, AuthStatus.MALFORMED),
    ],
)
def test_broken_credentials_are_classified(
    changes: dict[str, str | None], status: AuthStatus
) -> None:
    """Missing or ill-formed parameters give MALFORMED; unoffered options give FAILED."""
    digest = server(algorithms=("SHA-256", "SHA-256-sess"))
    result = digest.verify(request(_line_for(digest, **changes)), now=T0, lookup_ha1=lookup)
    assert result.status is status, result.reason


def test_qop_requires_nc_and_cnonce() -> None:
    """RFC 2617 §3.2.2: qop=auth comes with nc and cnonce, else the request is malformed."""
    digest = server()
    result = digest.verify(request(_line_for(digest, nc=None)), now=T0, lookup_ha1=lookup)
    assert result.status is AuthStatus.MALFORMED
    assert "nc" in result.reason


@pytest.mark.parametrize(
    "line",
    [
        'Authorization: Digest realm="example.com", nonce="unterminated',
        "Authorization: Digest realm=",
        "Authorization: Digest ,,,",
        'Authorization: Digest nonce="x", response="y"',
        "Authorization: Digest realm=a b",
        'Authorization: "Digest"',
        "Authorization: ",
    ],
)
def test_malformed_headers_are_malformed_not_exceptions(line: str) -> None:
    """Unparsable credentials give MALFORMED and never raise."""
    result = server().verify(request(line), now=T0, lookup_ha1=lookup)
    assert result.status is AuthStatus.MALFORMED


def test_a_malformed_line_does_not_hide_good_credentials() -> None:
    """Each Authorization line is parsed on its own; a good one still authenticates."""
    digest = server()
    good = answer(digest.challenge(request(), now=T0))
    mixed = request("Authorization: Digest ,,,", f"Authorization: {good['Authorization'][0]}")
    assert digest.verify(mixed, now=T0, lookup_ha1=lookup).ok


_HEADER_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\r\n\x00"),
    max_size=200,
)


@settings(max_examples=300, deadline=None)
@given(
    value=st.one_of(
        _HEADER_TEXT,
        st.builds(lambda rest: "Digest " + rest, _HEADER_TEXT),
        st.builds(
            lambda params: "Digest " + ", ".join(f"{k}={v}" for k, v in params),
            st.lists(
                st.tuples(
                    st.sampled_from(
                        [
                            "username",
                            "realm",
                            "nonce",
                            "uri",
                            "response",
                            "algorithm",
                            "qop",
                            "nc",
                            "cnonce",
                            "opaque",
                        ]
                    ),
                    st.one_of(
                        st.just('"example.com"'), _HEADER_TEXT.map(lambda t: f'"{t}"'), _HEADER_TEXT
                    ),
                ),
                max_size=12,
            ),
        ),
    )
)
def test_verify_never_raises_on_any_header_text(value: str) -> None:
    """Whatever a peer puts in Authorization, verify returns a result and raises nothing."""
    try:
        message = request(f"Authorization: {value}")
    except ParseError:
        return
    result = server().verify(message, now=T0, lookup_ha1=lookup)
    assert result.status is not AuthStatus.OK


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(max_size=120).filter(lambda b: b"\r" not in b and b"\n" not in b))
def test_verify_never_raises_on_raw_bytes(raw: bytes) -> None:
    """Bytes that are not UTF-8 (kept as surrogates) in credentials never crash verify."""
    digest = server()
    nonce = (digest.challenges(now=T0)[0].get("nonce") or "").encode()
    for value in (
        raw,
        b'Digest realm="example.com", username="'
        + raw
        + b'", nonce="'
        + nonce
        + b'", uri="sip:example.com", response="'
        + b"0" * 64
        + b'", algorithm=SHA-256',
    ):
        wire = bytes(request()).replace(
            b"Content-Length", b"Authorization: " + value + b"\r\nContent-Length"
        )
        try:
            message = parse_message(wire)
        except ParseError:
            continue
        assert isinstance(message, Request)
        assert digest.verify(message, now=T0, lookup_ha1=lookup).status is not AuthStatus.OK
        digest.authentication_info(message, now=T0, lookup_ha1=lookup)


# -- Authentication-Info ---------------------------------------------------------


def test_authentication_info_proves_the_server_knows_the_password() -> None:
    """RFC 2617 §3.2.3: rspauth is the request-digest with an empty method, plus a nextnonce."""
    digest = server()
    signed = answer(digest.challenge(request(), now=T0))
    assert digest.verify(signed, now=T0, lookup_ha1=lookup).ok
    info = digest.authentication_info(signed, now=T0 + 1, lookup_ha1=lookup)
    assert info is not None
    fields = parse_auth("X " + info)
    stored = ha1("alice", REALM, "wonderland", "SHA-256")
    credentials = signed["Authorization"][0]
    expected = request_digest(
        ha1=stored,
        algorithm="SHA-256",
        method="",
        uri="sip:example.com",
        nonce=credentials.get("nonce"),
        qop="auth",
        nc="00000001",
        cnonce="cn-1",
    )
    assert fields.get("rspauth") == expected
    assert fields.get("cnonce") == "cn-1"
    assert fields.get("nc") == "00000001"
    assert digest.nonce_issued(fields.get("nextnonce") or "") == T0 + 1
    assert digest.authentication_info(request(), now=T0, lookup_ha1=lookup) is None


# -- construction ------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"secret": b"short"},
        {"algorithms": ("SHA-1",)},
        {"algorithms": ()},
        {"nonce_ttl": 0.0},
        {"max_tracked_nonces": 0},
        {"realm": ""},
        {"realm": "bad\r\nrealm"},
    ],
)
def test_bad_configuration_raises_local_protocol_error(options: dict[str, object]) -> None:
    """A realm, secret or algorithm we cannot serve is our own mistake."""
    arguments: dict[str, object] = {"realm": REALM, "secret": SECRET, "ids": CountingIds()}
    arguments.update(options)
    with pytest.raises(LocalProtocolError):
        DigestServer(**arguments)  # type: ignore[arg-type]
