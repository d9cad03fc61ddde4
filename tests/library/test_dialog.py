"""Dialogs (RFC 3261 §12, §13.2.2.4): creation on both sides, requests inside, what updates them."""

from __future__ import annotations

import pytest

from callscript.sip.address import Address
from callscript.sip.dialog import Dialog, DialogId, DialogState
from callscript.sip.errors import LocalProtocolError, RemoteProtocolError
from callscript.sip.headers import CSeq
from callscript.sip.message import Request, Response, parse_message
from callscript.sip.reply import make_response

INVITE = (
    b"INVITE sip:bob@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-inv\r\n"
    b"Max-Forwards: 70\r\n"
    b'From: "Alice" <sip:alice@example.com>;tag=a1\r\n'
    b"To: <sip:bob@example.com>\r\n"
    b"Call-ID: c1@192.0.2.1\r\n"
    b"CSeq: 7 INVITE\r\n"
    b"Contact: <sip:alice@192.0.2.1:5060>\r\n"
    b"Record-Route: <sip:p2.example.net;lr>, <sip:p1.example.com;lr>\r\n"
    b'Proxy-Authorization: Digest username="alice", realm="example.com", nonce="n", '
    b'uri="sip:bob@example.com", response="00"\r\n'
    b"Content-Length: 0\r\n\r\n"
)


def invite() -> Request:
    message = parse_message(INVITE)
    assert isinstance(message, Request)
    return message


def answer(
    status: int = 200, *, tag: str | None = "b1", contact: str | None = "<sip:bob@192.0.2.2:5070>"
) -> Response:
    request = invite()
    response = make_response(request, status, to_tag=tag)
    if status != 100 and 101 <= status < 300:
        response["Record-Route"] = request.get_all("Record-Route")
    if contact is not None:
        response["Contact"] = contact
    return response


def test_uac_dialog_ids_sequence_numbers_and_reversed_route_set() -> None:
    """RFC 3261 §12.1.2: the UAC's route set is the 2xx's Record-Route reversed, remote target its Contact."""
    dialog = Dialog.from_uac(invite(), answer())
    assert dialog.id == DialogId("c1@192.0.2.1", "a1", "b1")
    assert [str(r.uri) for r in dialog.route_set] == [
        "sip:p1.example.com;lr",
        "sip:p2.example.net;lr",
    ]
    assert str(dialog.remote_target) == "sip:bob@192.0.2.2:5070"
    assert dialog.local_seq == 7
    assert dialog.remote_seq is None
    assert dialog.state is DialogState.CONFIRMED
    assert dialog.local_uri.display == "Alice" and dialog.local_uri.tag is None
    assert not dialog.secure


def test_provisional_with_tag_makes_an_early_dialog_that_the_2xx_confirms() -> None:
    """RFC 3261 §13.2.2.4: a 2xx confirms the early dialog and its route set is recomputed from it."""
    ringing = answer(180)
    del ringing["Record-Route"]
    dialog = Dialog.from_uac(invite(), ringing)
    before = dialog.state
    assert dialog.route_set == ()
    dialog.receive_response(invite(), answer(200, contact="<sip:bob@192.0.2.9>"))
    assert (before, dialog.state) == (DialogState.EARLY, DialogState.CONFIRMED)
    assert len(dialog.route_set) == 2
    assert str(dialog.remote_target) == "sip:bob@192.0.2.9"


def test_early_dialog_ends_with_a_failure_response() -> None:
    """RFC 3261 §13.2.2.3: a failure response to the INVITE ends the early dialogs it created."""
    dialog = Dialog.from_uac(invite(), answer(183))
    dialog.receive_response(invite(), answer(486))
    assert dialog.state is DialogState.TERMINATED


def test_uac_dialog_needs_a_to_tag_and_a_contact_on_the_2xx() -> None:
    """RFC 3261 §12.1.2: the remote tag is the response's To tag; a 2xx without Contact is refused."""
    with pytest.raises(RemoteProtocolError):
        Dialog.from_uac(invite(), answer(tag=None))
    with pytest.raises(RemoteProtocolError):
        Dialog.from_uac(invite(), answer(contact=None))
    with pytest.raises(LocalProtocolError):
        Dialog.from_uac(invite(), answer(486))


def test_uas_dialog_keeps_record_route_order_and_the_callers_contact() -> None:
    """RFC 3261 §12.1.1: the UAS's route set is the request's Record-Route in order, remote target its Contact."""
    request = invite()
    response = answer()
    dialog = Dialog.from_uas(request, response)
    assert dialog.id == DialogId("c1@192.0.2.1", "b1", "a1")
    assert [str(r.uri) for r in dialog.route_set] == [
        "sip:p2.example.net;lr",
        "sip:p1.example.com;lr",
    ]
    assert str(dialog.remote_target) == "sip:alice@192.0.2.1:5060"
    assert dialog.remote_seq == 7 and dialog.local_seq is None
    assert str(dialog.local_target) == "sip:bob@192.0.2.2:5070"


def test_uas_dialog_refuses_a_request_without_contact() -> None:
    """RFC 3261 §12.1.1: the remote target comes from the request's Contact, which must be there."""
    request = invite()
    del request["Contact"]
    with pytest.raises(RemoteProtocolError):
        Dialog.from_uas(request, answer())
    with pytest.raises(LocalProtocolError):
        Dialog.from_uas(invite(), answer(tag=None))


def test_requests_in_the_dialog_follow_the_loose_route_set() -> None:
    """RFC 3261 §12.2.1.1: loose routing: Request-URI is the remote target, Route the route set; CSeq counts up."""
    dialog = Dialog.from_uac(invite(), answer())
    bye = dialog.create_request("BYE")
    assert str(bye.uri) == "sip:bob@192.0.2.2:5070"
    assert [str(r.uri) for r in bye["Route"]] == ["sip:p1.example.com;lr", "sip:p2.example.net;lr"]
    assert bye.cseq == CSeq(8, "BYE")
    assert bye.from_addr.tag == "a1" and bye.to_addr.tag == "b1"
    assert bye.from_addr.display == "Alice"
    assert bye.call_id == "c1@192.0.2.1"
    assert bye.max_forwards == 70
    assert "Via" not in bye and "Contact" not in bye
    assert dialog.create_request("INFO").cseq.number == 9
    assert str(dialog.next_hop) == "sip:p1.example.com;lr"


def test_empty_route_set_sends_straight_to_the_remote_target() -> None:
    """RFC 3261 §12.2.1.1: with no route set the Request-URI is the remote target and there is no Route."""
    response = answer()
    del response["Record-Route"]
    dialog = Dialog.from_uac(invite(), response)
    bye = dialog.create_request("BYE")
    assert "Route" not in bye
    assert dialog.next_hop == bye.uri


def test_strict_router_goes_in_the_request_uri_and_the_target_last_in_route() -> None:
    """RFC 3261 §12.2.1.1: a strict first route becomes the Request-URI; the remote target ends the Route."""
    response = answer()
    response["Record-Route"] = [
        Address.parse("<sip:p2.example.net>"),
        Address.parse("<sip:p1.example.com;method=INVITE?x=y>"),
    ]
    dialog = Dialog.from_uac(invite(), response)
    bye = dialog.create_request("BYE")
    assert str(bye.uri) == "sip:p1.example.com"
    assert [str(r.uri) for r in bye["Route"]] == [
        "sip:p2.example.net",
        "sip:bob@192.0.2.2:5070",
    ]


def test_uas_starts_its_own_cseq_and_sends_contact_on_target_refresh() -> None:
    """RFC 3261 §12.2.1.1: an empty local sequence number starts; a re-INVITE carries our Contact."""
    dialog = Dialog.from_uas(invite(), answer())
    reinvite = dialog.create_request("INVITE", body=b"v=0\r\n", content_type="application/sdp")
    assert reinvite.cseq == CSeq(1, "INVITE")
    assert str(reinvite.contacts[0].uri) == "sip:bob@192.0.2.2:5070"
    assert reinvite.to_addr.tag == "a1" and reinvite.from_addr.tag == "b1"
    assert str(reinvite["Content-Type"]) == "application/sdp"
    assert reinvite.body == b"v=0\r\n"


def test_ack_for_2xx_has_the_invite_cseq_number_and_credentials() -> None:
    """RFC 3261 §13.2.2.4: the ACK carries the INVITE's CSeq number, method ACK, and its credentials."""
    dialog = Dialog.from_uac(invite(), answer())
    dialog.create_request("INFO")
    ack = dialog.ack(invite())
    assert ack.cseq == CSeq(7, "ACK")
    assert ack.get_all("Proxy-Authorization") == invite().get_all("Proxy-Authorization")
    assert str(ack.uri) == "sip:bob@192.0.2.2:5070"
    assert len(ack["Route"]) == 2
    assert ack.body == b""
    assert dialog.local_seq == 8  # the ACK does not count
    with pytest.raises(LocalProtocolError):
        dialog.ack(dialog.create_request("BYE"))
    with pytest.raises(LocalProtocolError):
        dialog.create_request("ACK")


def test_out_of_order_cseq_gets_500_and_target_refresh_moves_the_target() -> None:
    """RFC 3261 §12.2.2: a lower CSeq is rejected with 500; a target refresh replaces the remote target."""
    dialog = Dialog.from_uas(invite(), answer())
    info = parse_message(INVITE.replace(b"7 INVITE", b"6 INFO").replace(b"INVITE sip", b"INFO sip"))
    assert isinstance(info, Request)
    assert dialog.receive_request(info) == 500
    reinvite = invite()
    reinvite["CSeq"] = CSeq(9, "INVITE")
    reinvite["Contact"] = "<sip:alice@192.0.2.77>"
    assert dialog.receive_request(reinvite) is None
    assert dialog.remote_seq == 9
    assert str(dialog.remote_target) == "sip:alice@192.0.2.77"


def test_first_request_sets_an_empty_remote_sequence_number() -> None:
    """RFC 3261 §12.2.2: an empty remote sequence number takes the request's CSeq."""
    dialog = Dialog.from_uac(invite(), answer())
    bye = dialog.create_request("BYE")
    assert dialog.remote_seq is None
    # The peer's first request: any number is in order.
    incoming = bye.copy()
    incoming["CSeq"] = CSeq(1, "BYE")
    assert dialog.receive_request(incoming) is None
    assert dialog.remote_seq == 1


def test_2xx_to_target_refresh_moves_the_target_and_481_ends_the_dialog() -> None:
    """RFC 3261 §12.2.1.2: a 2xx to a target refresh updates the remote target; 481 or 408 end the dialog."""
    dialog = Dialog.from_uac(invite(), answer())
    reinvite = dialog.create_request("INVITE")
    ok = make_response(reinvite, 200)
    ok["Contact"] = "<sip:bob@192.0.2.50>"
    dialog.receive_response(reinvite, ok)
    assert str(dialog.remote_target) == "sip:bob@192.0.2.50"
    info = dialog.create_request("INFO")
    dialog.receive_response(info, make_response(info, 481))
    assert dialog.state is DialogState.TERMINATED
    with pytest.raises(LocalProtocolError):
        dialog.create_request("BYE")


def test_dialog_id_of_messages_from_each_side() -> None:
    """RFC 3261 §12.2.2: a received request's dialog: local tag from To, remote tag from From."""
    request = invite()
    assert DialogId.of_request(request) is None
    request["To"] = request.to_addr.with_params(tag="b1")
    assert DialogId.of_request(request) == DialogId("c1@192.0.2.1", "b1", "a1")
    assert DialogId.of_response(answer()) == DialogId("c1@192.0.2.1", "a1", "b1")
    assert DialogId.of_response(answer(100, tag=None)) is None


def test_update_is_a_target_refresh_like_re_invite() -> None:
    """RFC 3261 §12.2: target refresh requests (re-INVITE, and UPDATE) carry and move the target."""
    dialog = Dialog.from_uac(invite(), answer())
    update = dialog.create_request("UPDATE")
    assert str(update.contacts[0].uri) == "sip:alice@192.0.2.1:5060"
    assert "Contact" not in dialog.create_request("INFO")
    incoming = update.copy()
    incoming["CSeq"] = CSeq(3, "UPDATE")
    incoming["Contact"] = "<sip:bob@192.0.2.66>"
    assert dialog.receive_request(incoming) is None
    assert str(dialog.remote_target) == "sip:bob@192.0.2.66"
