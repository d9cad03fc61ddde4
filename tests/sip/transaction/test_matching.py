"""Which transaction a message belongs to: RFC 3261 §17.1.3, §17.2.3 and §9.2."""

from __future__ import annotations

import pytest
from netsim import drain, make_request, make_response

from callscript.sip.errors import LocalProtocolError, ParseError
from callscript.sip.events import Peer, RequestReceived, ResponseReceived, TransactionTerminated
from callscript.sip.message import Request, Response
from callscript.sip.transaction import TransactionLayer
from callscript.sip.transaction.matching import ack_keys, client_key, response_key, server_key
from callscript.sip.via import Via

UAC = Peer("UDP", "10.0.0.1", 5060)
UAS = Peer("UDP", "10.0.0.2", 5060)


def new_server(layer: TransactionLayer, request: Request) -> str | None:
    layer.handle_request(request, UAC, now=0.0)
    events = drain(layer)
    if len(events) == 1 and isinstance(events[0], RequestReceived):
        return events[0].key
    assert events == [], events
    return None


# -- client side ----------------------------------------------------------------------


def test_response_matches_by_branch_and_cseq_method() -> None:
    """RFC 3261 §17.1.3: a response matches the client transaction with its top Via branch and CSeq
    method.
    """
    invite = make_request("INVITE", branch="z9hG4bK-a")
    assert response_key(make_response(invite, 180)) == client_key("z9hG4bK-a", "INVITE")
    layer = TransactionLayer()
    key = layer.send_request(invite, UAS, now=0.0)
    other_branch = make_response(make_request("INVITE", branch="z9hG4bK-b"), 180)
    other_method = make_response(make_request("OPTIONS", branch="z9hG4bK-a"), 200)
    mine = make_response(invite, 180)
    for response in (other_branch, other_method, mine):
        layer.handle_response(response, UAS, now=0.1)
    assert drain(layer) == [
        ResponseReceived(None, other_branch, UAS),
        ResponseReceived(None, other_method, UAS),
        ResponseReceived(key, mine, UAS),
    ]


def test_cancel_is_its_own_client_transaction() -> None:
    """RFC 3261 §17.1.3: the CANCEL shares the INVITE's branch; its responses match the CANCEL."""
    layer = TransactionLayer()
    invite = make_request("INVITE")
    invite_key = layer.send_request(invite, UAS, now=0.0)
    layer.handle_response(make_response(invite, 180, to_tag="t"), UAS, now=0.1)
    cancel_key = layer.request_cancel(invite_key, now=0.2)
    assert cancel_key is not None and cancel_key != invite_key
    ok = make_response(layer.client_request(cancel_key), 200, to_tag="t")
    layer.handle_response(ok, UAS, now=0.3)
    assert drain(layer)[-1] == ResponseReceived(cancel_key, ok, UAS)
    assert invite_key in layer


def test_response_without_branch_is_stray() -> None:
    """RFC 3261 §18.1.2: a response matching no client transaction goes to the TU with no key."""
    response = make_response(make_request("INVITE", branch=""), 200)
    assert response_key(response) is None
    layer = TransactionLayer()
    layer.handle_response(response, UAS, now=0.0)
    assert drain(layer) == [ResponseReceived(None, response, UAS)]


def test_response_without_via_is_a_parse_error() -> None:
    """RFC 3261 §17.1.3: matching needs the top Via; a response without one is refused."""
    response = Response(200, "OK", [("CSeq", "1 INVITE")])
    with pytest.raises(ParseError):
        TransactionLayer().handle_response(response, UAS, now=0.0)


def test_send_request_refuses_ack_old_branches_and_reused_branches() -> None:
    """RFC 3261 §8.1.1.7: the TU's branch starts with z9hG4bK, is unique; ACK is no transaction."""
    layer = TransactionLayer()
    with pytest.raises(LocalProtocolError, match="ACK"):
        layer.send_request(make_request("ACK"), UAS, now=0.0)
    with pytest.raises(LocalProtocolError, match="z9hG4bK"):
        layer.send_request(make_request("INVITE", branch="old-1"), UAS, now=0.0)
    layer.send_request(make_request("INVITE"), UAS, now=0.0)
    with pytest.raises(LocalProtocolError, match="already"):
        layer.send_request(make_request("INVITE"), UAS, now=0.0)
    layer.send_request(make_request("OPTIONS"), UAS, now=0.0)  # same branch, other method: fine


# -- server side, RFC 3261 peers ----------------------------------------------------


def test_server_matches_branch_sent_by_and_method() -> None:
    """RFC 3261 §17.2.3: branch, sent-by and method identify a server transaction."""
    layer = TransactionLayer()
    key = new_server(layer, make_request("OPTIONS"))
    assert key is not None
    assert new_server(layer, make_request("OPTIONS", via_host="10.0.0.1")) is None  # retransmission
    assert new_server(layer, make_request("OPTIONS", via_host="10.0.0.9")) not in (None, key)
    assert new_server(layer, make_request("OPTIONS", via_port=5070)) not in (None, key)
    assert new_server(layer, make_request("INFO")) not in (None, key)
    assert len(layer) == 4


def test_server_sent_by_host_is_case_insensitive() -> None:
    """RFC 3261 §17.2.3: the sent-by host compares without regard to case."""
    a = make_request("OPTIONS", via_host="Host.Example.com")
    b = make_request("OPTIONS", via_host="host.example.COM")
    assert server_key(a) == server_key(b)


def test_ack_matches_the_invite_server_transaction() -> None:
    """RFC 3261 §17.2.3: an ACK matches the INVITE transaction with the same branch and sent-by."""
    ack = make_request("ACK", to_tag="t")
    invite = make_request("INVITE")
    assert ack_keys(ack) == (server_key(invite),)
    layer = TransactionLayer()
    key = new_server(layer, invite)
    assert key is not None
    layer.send_response(key, make_response(invite, 486, to_tag="t"), now=0.0)
    assert new_server(layer, ack) is None
    layer.handle_timers(now=100.0)
    assert drain(layer) == [TransactionTerminated(key)]  # Timer I, not Timer H


def test_ack_keys_like_its_invite() -> None:
    """RFC 3261 §17.2.3: for matching, the method of an ACK counts as INVITE."""
    assert server_key(make_request("ACK")) == server_key(make_request("INVITE"))
    assert server_key(make_request("ACK", branch="")) == server_key(
        make_request("INVITE", branch="")
    )


def test_cancel_is_its_own_server_transaction_and_finds_its_invite() -> None:
    """RFC 3261 §9.2: the CANCEL matches its INVITE like §17.2.3 does, except for the method."""
    layer = TransactionLayer()
    invite_key = new_server(layer, make_request("INVITE"))
    cancel = make_request("CANCEL")
    cancel_key = new_server(layer, cancel)
    assert cancel_key is not None and cancel_key != invite_key
    assert layer.find_invite(cancel) == invite_key
    assert layer.find_invite(make_request("CANCEL", branch="z9hG4bK-other")) is None
    assert layer.find_invite(make_request("CANCEL", via_host="10.9.9.9")) is None


def test_find_invite_ignores_non_invite_transactions() -> None:
    """RFC 3261 §9.2: only an INVITE server transaction can be cancelled."""
    layer = TransactionLayer()
    new_server(layer, make_request("OPTIONS"))
    cancel = make_request("CANCEL")
    assert layer.find_invite(cancel) is None


def test_request_without_via_is_a_parse_error() -> None:
    """RFC 3261 §17.2.3: matching needs the top Via; a request without one is refused."""
    request = Request("OPTIONS", "sip:bob@example.com", [("CSeq", "1 OPTIONS"), ("Call-ID", "x")])
    with pytest.raises(ParseError):
        TransactionLayer().handle_request(request, UAC, now=0.0)


# -- server side, RFC 2543 peers ------------------------------------------------------


def rfc2543(method: str, **kwargs: object) -> Request:
    return make_request(method, branch="", **kwargs)  # type: ignore[arg-type]


def test_rfc2543_retransmission_matches_on_dialog_fields() -> None:
    """RFC 3261 §17.2.3: without the magic cookie, Request-URI, tags, Call-ID, CSeq and top Via
    match.
    """
    layer = TransactionLayer()
    key = new_server(layer, rfc2543("INVITE"))
    assert key is not None and key.startswith("S2543")
    assert new_server(layer, rfc2543("INVITE")) is None
    for change in (
        {"cseq": 2},
        {"call_id": "other"},
        {"from_tag": "other"},
        {"to_tag": "other"},
        {"uri": "sip:carol@example.com"},
        {"via_host": "10.0.0.9"},
    ):
        assert new_server(layer, rfc2543("INVITE", **change)) is not None, change


def test_rfc2543_branch_without_cookie_uses_the_fallback() -> None:
    """RFC 3261 §17.2.3: a branch without z9hG4bK is an RFC 2543 branch: the old rules apply."""
    a = make_request("OPTIONS", branch="1234")
    b = make_request("OPTIONS", branch="1234", call_id="another")
    assert server_key(a) != server_key(b)


def test_rfc2543_ack_needs_the_to_tag_of_the_response() -> None:
    """RFC 3261 §17.2.3: an RFC 2543 ACK matches when its To tag is the tag of the response sent."""
    layer = TransactionLayer()
    invite = rfc2543("INVITE")
    key = new_server(layer, invite)
    assert key is not None
    layer.send_response(key, make_response(invite, 404, to_tag="uas"), now=0.0)
    wrong = rfc2543("ACK", to_tag="someone-else")
    layer.handle_request(wrong, UAC, now=0.1)
    assert drain(layer) == [RequestReceived(None, wrong, UAC)]
    assert new_server(layer, rfc2543("ACK", to_tag="uas")) is None
    layer.handle_timers(now=6.0)  # Timer I after the ACK, long before Timer H
    assert drain(layer) == [TransactionTerminated(key)]


def test_rfc2543_ack_of_a_reinvite_matches() -> None:
    """RFC 3261 §17.2.3: a re-INVITE carries the To tag already; its ACK carries the same."""
    layer = TransactionLayer()
    invite = rfc2543("INVITE", to_tag="dlg", cseq=2)
    key = new_server(layer, invite)
    assert key is not None
    layer.send_response(key, make_response(invite, 488), now=0.0)
    assert new_server(layer, rfc2543("ACK", to_tag="dlg", cseq=2)) is None
    assert layer._servers[key].state.value == "Confirmed"  # type: ignore[union-attr]


def test_rfc2543_ack_before_a_final_goes_to_the_tu() -> None:
    """RFC 3261 §17.2.3: with no response sent there is no To tag to match: the ACK is not ours."""
    layer = TransactionLayer()
    new_server(layer, rfc2543("INVITE"))
    ack = rfc2543("ACK", to_tag="x")
    layer.handle_request(ack, UAC, now=0.0)
    assert drain(layer) == [RequestReceived(None, ack, UAC)]


def test_rfc2543_ack_without_to_tag_goes_to_the_tu() -> None:
    """RFC 3261 §17.2.3: a final response always has a To tag, so an ACK without one matches
    nothing.
    """
    layer = TransactionLayer()
    invite = rfc2543("INVITE")
    key = new_server(layer, invite)
    assert key is not None
    layer.send_response(key, make_response(invite, 404, to_tag="uas"), now=0.0)
    ack = rfc2543("ACK")
    layer.handle_request(ack, UAC, now=0.1)
    assert drain(layer) == [RequestReceived(None, ack, UAC)]


def test_rfc2543_cancel_finds_its_invite() -> None:
    """RFC 3261 §9.2: an RFC 2543 CANCEL matches its INVITE on the same fields, method aside."""
    layer = TransactionLayer()
    key = new_server(layer, rfc2543("INVITE"))
    assert layer.find_invite(rfc2543("CANCEL")) == key
    assert layer.find_invite(rfc2543("CANCEL", cseq=9)) is None


def test_via_parameters_are_part_of_the_rfc2543_identity() -> None:
    """RFC 3261 §17.2.3: the whole top Via compares in the RFC 2543 rules."""
    a = rfc2543("OPTIONS")
    b = rfc2543("OPTIONS")
    b.set_top("Via", Via("UDP", "10.0.0.1", 5060, {"received": "192.0.2.1"}))
    assert server_key(a) != server_key(b)
