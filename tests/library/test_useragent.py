"""The user agent core, sans-I/O: requests (RFC 3261 §8.1), digest retries (§22), UAS checks (§8.2)."""

from __future__ import annotations

import pytest

from callscript.sip.address import Address
from callscript.sip.answers import AnswerRetransmits
from callscript.sip.auth import AuthStatus, DigestServer, ha1
from callscript.sip.dialog import DialogId
from callscript.sip.errors import LocalProtocolError
from callscript.sip.headers import CSeq
from callscript.sip.ids import CountingIds
from callscript.sip.message import Request, Response
from callscript.sip.reply import make_response
from callscript.sip.timers import TimerConfig
from callscript.sip.uri import URI
from callscript.sip.useragent import (
    Credentials,
    Local,
    UserAgentCore,
    next_hop,
)
from callscript.sip.via import MAGIC_COOKIE

LOCAL = Local("UDP", "192.0.2.1", 5070)
TCP = Local("TCP", "192.0.2.1", 5070)
WALL = 1_700_000_000.0


def core(password: str | None = "pw") -> UserAgentCore:
    credentials = Credentials("alice", password) if password is not None else None
    return UserAgentCore(
        '"Alice" <sip:alice@example.com>', ids=CountingIds(), credentials=credentials
    )


def server(algorithms: tuple[str, ...] = ("SHA-256", "MD5")) -> DigestServer:
    return DigestServer(
        "example.com", b"0123456789abcdef0123", CountingIds("s"), algorithms=algorithms
    )


def lookup(username: str, realm: str, algorithm: str) -> str | None:
    return ha1(username, realm, "pw", algorithm) if username == "alice" else None


def test_new_request_has_every_mandatory_header() -> None:
    """RFC 3261 §8.1.1: To, From with a tag, Call-ID, CSeq, Max-Forwards and Via."""
    request = core().new_request("OPTIONS", "sip:bob@example.com", local=LOCAL)
    assert str(request.uri) == "sip:bob@example.com"
    assert str(request.to_addr) == "<sip:bob@example.com>"
    assert request.from_addr.tag and request.from_addr.display == "Alice"
    assert request.call_id.endswith("@192.0.2.1")
    assert request.cseq == CSeq(1, "OPTIONS")
    assert request.max_forwards == 70
    assert "Contact" not in request
    assert request["User-Agent"] is not None


def test_every_request_gets_a_fresh_branch_with_the_magic_cookie_and_rport() -> None:
    """RFC 3261 §8.1.1.7: the branch is unique and starts with z9hG4bK; rport asks for the source port."""
    ua = core()
    first = ua.new_request("OPTIONS", "sip:bob@example.com", local=TCP)
    second = ua.new_request("OPTIONS", "sip:bob@example.com", local=TCP)
    via = first.top_via
    assert via.branch is not None and via.branch.startswith(MAGIC_COOKIE)
    assert via.branch != second.top_via.branch
    assert via.transport == "TCP" and (via.host, via.port) == ("192.0.2.1", 5070)
    assert "rport" in via.params and via.rport is None


def test_invite_carries_a_contact_for_the_transport_it_leaves_on() -> None:
    """RFC 3261 §8.1.1.8: a request that can create a dialog carries our Contact."""
    invite = core().new_request("INVITE", "sip:bob@example.com", local=TCP)
    assert str(invite.contacts[0]) == "<sip:alice@192.0.2.1:5070;transport=tcp>"
    udp = core().new_request("INVITE", "sip:bob@example.com", local=LOCAL)
    assert str(udp.contacts[0]) == "<sip:alice@192.0.2.1:5070>"


def test_preloaded_route_decides_the_next_hop() -> None:
    """RFC 3261 §8.1.2: with a Route, the request goes to the first Route's URI."""
    proxy = Address(URI.parse("sip:192.0.2.9:5080;lr"))
    request = core().new_request("INVITE", "sip:bob@example.com", local=LOCAL, route=[proxy])
    assert request["Route"] == [proxy]
    assert str(next_hop(request)) == "sip:192.0.2.9:5080;lr"
    plain = core().new_request("INVITE", "sip:bob@example.com", local=LOCAL)
    assert next_hop(plain) == plain.uri


def test_401_is_answered_with_credentials_in_a_new_transaction() -> None:
    """RFC 3261 §8.1.3.5: the retry keeps Call-ID, To and From, with a new branch and the next CSeq."""
    ua, registrar = core(), server()
    request = ua.new_request("REGISTER", "sip:example.com", local=LOCAL, to=ua.aor)
    challenge = registrar.challenge(request, now=WALL)
    retry = ua.authorize(request, challenge, local=LOCAL)
    assert retry is not None
    assert retry.call_id == request.call_id
    assert retry.from_addr == request.from_addr and retry.to_addr == request.to_addr
    assert retry.cseq == CSeq(2, "REGISTER")
    assert retry.top_via.branch != request.top_via.branch
    assert "Proxy-Authorization" not in retry
    result = registrar.verify(retry, now=WALL, lookup_ha1=lookup)
    assert result.status is AuthStatus.OK and result.username == "alice"
    # The strongest algorithm offered was chosen.
    assert retry["Authorization"][0].get("algorithm") == "SHA-256"
    assert request.cseq.number == 1  # the original is unchanged


def test_407_is_answered_with_proxy_authorization_for_md5_too() -> None:
    """RFC 3261 §22.2: the resent request's CSeq goes up as for any new request."""
    ua, proxy = core(), server(("MD5",))
    invite = ua.new_request("INVITE", "sip:bob@example.com", local=LOCAL, body=b"v=0\r\n")
    retry = ua.authorize(invite, proxy.challenge(invite, now=WALL, proxy=True), local=LOCAL)
    assert retry is not None and "Authorization" not in retry
    assert retry.cseq == CSeq(2, "INVITE") and retry.body == b"v=0\r\n"
    assert proxy.verify(retry, now=WALL, lookup_ha1=lookup, proxy=True).ok


def test_refused_credentials_are_not_sent_again_but_a_stale_nonce_is_retried() -> None:
    """RFC 3261 §22.2: a fresh challenge after our credentials means they were refused: stop."""
    ua, registrar = core(password="wrong"), server()
    request = ua.new_request("REGISTER", "sip:example.com", local=LOCAL, to=ua.aor)
    retry = ua.authorize(request, registrar.challenge(request, now=WALL), local=LOCAL)
    assert retry is not None
    assert registrar.verify(retry, now=WALL, lookup_ha1=lookup).status is AuthStatus.FAILED
    assert ua.authorize(retry, registrar.challenge(retry, now=WALL), local=LOCAL) is None
    stale = ua.authorize(retry, registrar.challenge(retry, now=WALL, stale=True), local=LOCAL)
    assert stale is not None and stale.cseq.number == 3
    assert len(stale.get_all("Authorization")) == 1


def test_no_credentials_or_no_usable_challenge_means_no_retry() -> None:
    """RFC 3261 §22.2: only a challenge we can answer, with credentials we have, is retried."""
    request = core(password=None).new_request("OPTIONS", "sip:bob@example.com", local=LOCAL)
    challenge = server().challenge(request, now=WALL)
    assert core(password=None).authorize(request, challenge, local=LOCAL) is None
    basic = make_response(request, 401, headers=[("WWW-Authenticate", 'Basic realm="x"')])
    assert core().authorize(request, basic, local=LOCAL) is None
    assert core().authorize(request, make_response(request, 403), local=LOCAL) is None
    ack = Request("ACK", "sip:bob@example.com", [("CSeq", CSeq(1, "ACK"))])
    with pytest.raises(LocalProtocolError):
        core().authorize(ack, challenge, local=LOCAL)


def incoming(method: str = "INVITE", **headers: object) -> Request:
    request = core().new_request(
        method, "sip:alice@192.0.2.1:5070", local=Local("UDP", "192.0.2.7", 5060)
    )
    for name, value in headers.items():
        request[name.replace("_", "-")] = value
    return request


def test_unknown_method_gets_405_with_allow() -> None:
    """RFC 3261 §8.2.1: a method the UAS does not support gets 405 listing the allowed ones."""
    response = core().check_request(incoming("SUBSCRIBE"))
    assert response is not None and response.status == 405
    assert "INVITE" in [str(v) for v in response.get_all("Allow")]
    assert core().check_request(incoming("INVITE")) is None
    assert core().check_request(incoming("ACK")) is None


def test_unknown_uri_scheme_gets_416() -> None:
    """RFC 3261 §8.2.2.1: a Request-URI scheme the UAS does not know gets 416."""
    request = incoming()
    request.uri = "im:alice@example.com"
    response = core().check_request(request)
    assert response is not None and response.status == 416


def test_require_gets_420_listing_the_unsupported_extensions() -> None:
    """RFC 3261 §8.2.2.3: an extension in Require that we do not support gets 420 with Unsupported."""
    response = core().check_request(incoming(Require="100rel"))
    assert response is not None and response.status == 420
    assert [str(v) for v in response.get_all("Unsupported")] == ["100rel"]


def test_in_dialog_request_for_an_unknown_dialog_gets_481_and_a_known_one_is_checked() -> None:
    """RFC 3261 §12.2.2: no matching dialog: 481; a lower CSeq in a known dialog: 500."""
    ua = core()
    invite = incoming()
    answer = ua.respond(invite, 200, to_tag="t1", local=LOCAL)
    dialog = ua.dialog_as_uas(invite, answer)
    bye = incoming("BYE", To=invite.to_addr.with_params(tag="t1"), From=invite.from_addr)
    bye["Call-ID"] = invite.call_id
    bye["CSeq"] = CSeq(2, "BYE")
    assert ua.check_request(bye) is None
    assert dialog.remote_seq == 2
    old = bye.copy()
    old["CSeq"] = CSeq(1, "BYE")
    out_of_order = ua.check_request(old)
    assert out_of_order is not None and out_of_order.status == 500
    stranger = bye.copy()
    stranger["Call-ID"] = "other"
    unknown = ua.check_request(stranger)
    assert unknown is not None and unknown.status == 481
    assert ua.find_dialog(bye) is dialog
    ua.forget(dialog)
    assert ua.find_dialog(bye) is None


def test_responses_get_a_to_tag_and_dialog_creating_ones_a_contact_and_record_route() -> None:
    """RFC 3261 §12.1.1: a dialog-creating response copies Record-Route in order and carries a Contact."""
    invite = incoming(Record_Route=[Address.parse("<sip:p1;lr>"), Address.parse("<sip:p2;lr>")])
    ua = core()
    ringing = ua.respond(invite, 180, to_tag="t1", local=LOCAL)
    assert ringing.to_addr.tag == "t1"
    assert [str(a.uri) for a in ringing["Record-Route"]] == ["sip:p1;lr", "sip:p2;lr"]
    assert str(ringing.contacts[0].uri) == "sip:alice@192.0.2.1:5070"
    trying = ua.respond(invite, 100)
    assert trying.to_addr.tag is None and "Contact" not in trying
    busy = ua.respond(invite, 486, to_tag="t1", local=LOCAL)
    assert "Contact" not in busy and "Record-Route" not in busy


def test_responses_without_a_given_tag_get_a_fresh_one() -> None:
    """RFC 3261 §8.2.6.2: every response but 100 carries a To tag."""
    response = core().respond(incoming("OPTIONS"), 200)
    assert response.to_addr.tag
    assert response["Server"] is not None


def test_uac_dialog_from_provisional_is_confirmed_by_the_2xx() -> None:
    """RFC 3261 §12.1.2: a provisional with a To tag creates an early dialog, kept by the core."""
    ua = core()
    invite = ua.new_request("INVITE", "sip:bob@example.com", local=LOCAL)
    ringing = make_response(invite, 180, to_tag="b")
    ringing["Contact"] = "<sip:bob@192.0.2.2>"
    early = ua.dialog_as_uac(invite, ringing)
    ok = make_response(invite, 200, to_tag="b")
    ok["Contact"] = "<sip:bob@192.0.2.3>"
    assert ua.dialog_as_uac(invite, ok) is early
    assert str(early.remote_target) == "sip:bob@192.0.2.3"
    assert ua.find_dialog(ok) is early
    ack = ua.ack(early, invite, local=LOCAL)
    assert ack.top_via.branch != invite.top_via.branch and ack.cseq == CSeq(1, "ACK")
    bye = ua.in_dialog(early, "BYE", local=LOCAL)
    assert bye.cseq == CSeq(2, "BYE") and bye.top_via.host == "192.0.2.1"


def test_2xx_is_resent_from_t1_doubling_to_t2_until_64_t1() -> None:
    """RFC 3261 §13.3.1.4: the UAS resends its 2xx at T1, 2T1, 4T1... capped at T2, for 64*T1."""
    timers = TimerConfig(t1=0.5, t2=4.0)
    answers = AnswerRetransmits(timers)
    invite = incoming()
    ok = make_response(invite, 200, to_tag="t")
    dialog = DialogId(invite.call_id, "t", invite.from_addr.tag or "")
    answers.start(dialog, "key", ok, now=0.0)
    sent: list[float] = []
    lost: list[DialogId] = []
    while (deadline := answers.next_deadline()) is not None:
        resend, gone = answers.handle_timers(now=deadline)
        sent += [deadline for _ in resend]
        lost += gone
    assert sent == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert lost == [dialog]
    assert len(answers) == 0


def test_ack_stops_the_2xx_resends() -> None:
    """RFC 3261 §13.3.1.4: the ACK for the 2xx stops its retransmissions."""
    answers = AnswerRetransmits(TimerConfig())
    invite = incoming()
    ok = make_response(invite, 200, to_tag="t")
    dialog = DialogId(invite.call_id, "t", invite.from_addr.tag or "")
    answers.start(dialog, "key", ok, now=0.0)
    assert answers.waiting(dialog)
    ack = Request(
        "ACK",
        "sip:alice@192.0.2.1",
        [
            ("Via", invite.top_via),
            ("From", invite.from_addr),
            ("To", ok.to_addr),
            ("Call-ID", invite.call_id),
            ("CSeq", CSeq(invite.cseq.number, "ACK")),
        ],
    )
    assert answers.acknowledged(ack)
    assert not answers.acknowledged(ack)
    assert answers.next_deadline() is None
    untagged = ack.copy()
    untagged["To"] = invite.to_addr
    assert not answers.acknowledged(untagged)


def test_response_of_an_answer_is_a_plain_response() -> None:
    """The core's respond builds on make_response: the status line is what was asked."""
    response = core().respond(incoming(), 486, "Busy Here", to_tag="t")
    assert isinstance(response, Response)
    assert (response.status, response.reason) == (486, "Busy Here")
