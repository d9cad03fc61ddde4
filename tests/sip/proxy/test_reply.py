"""Responses built from requests (RFC 3261 §8.2.6) and reason phrases (§21)."""

from __future__ import annotations

import pytest

from callscript.sip.errors import LocalProtocolError
from callscript.sip.message import Request, parse_message
from callscript.sip.reply import REASONS, make_response, reason_phrase
from tests.sip.proxy.conftest import request

RAW = (
    b"INVITE sip:bob@example.com SIP/2.0\r\n"
    b"v: SIP/2.0/UDP p2.example.net;branch=z9hG4bK-2, SIP/2.0/UDP p1.example.net;branch=z9hG4bK-1\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK-0;received=192.0.2.10\r\n"
    b"Max-Forwards: 68\r\n"
    b"f: Alice <sip:alice@example.com>;tag=a1\r\n"
    b"t: Bob <sip:bob@example.com>\r\n"
    b"i: call-7\r\n"
    b"CSeq: 7 INVITE\r\n"
    b"Timestamp: 54.2 0.1\r\n"
    b"Subject: lunch\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)


def received() -> Request:
    message = parse_message(RAW)
    assert isinstance(message, Request)
    return message


def test_response_copies_via_from_to_call_id_and_cseq_in_order() -> None:
    """RFC 3261 §8.2.6.2: Via values (in order), From, To, Call-ID and CSeq are copied."""
    response = make_response(received(), 486, to_tag="t9")
    assert [v.host for v in response.via] == ["p2.example.net", "p1.example.net", "192.0.2.10"]
    assert response.top_via.branch == "z9hG4bK-2"
    assert response.via[2].received == "192.0.2.10"
    assert str(response.from_addr) == "Alice <sip:alice@example.com>;tag=a1"
    assert (response.call_id, str(response.cseq)) == ("call-7", "7 INVITE")
    assert "Subject" not in response and "Max-Forwards" not in response
    assert str(response.to_addr) == "Bob <sip:bob@example.com>;tag=t9"


def test_to_tag_is_added_only_when_missing_and_never_on_100() -> None:
    """RFC 3261 §8.2.6.2: a To tag is added unless the request had one; a 100 gets none."""
    assert make_response(received(), 100, to_tag="t9").to_addr.tag is None
    assert make_response(received(), 180, to_tag="t9").to_addr.tag == "t9"
    assert make_response(received(), 200).to_addr.tag is None
    in_dialog = request("BYE", to_tag="dialog")
    assert make_response(in_dialog, 200, to_tag="t9").to_addr.tag == "dialog"


def test_100_trying_copies_the_timestamp() -> None:
    """RFC 3261 §8.2.6.1: a 100 (Trying) echoes the request's Timestamp."""
    assert str(make_response(received(), 100)["Timestamp"]) == "54.2 0.1"
    assert "Timestamp" not in make_response(received(), 180, to_tag="t")


def test_reason_phrases_default_to_the_rfcs() -> None:
    """RFC 3261 §21: the default reason phrase is the RFC's."""
    assert make_response(received(), 404, to_tag="t").reason == "Not Found"
    assert make_response(received(), 487, to_tag="t").reason == "Request Terminated"
    assert make_response(received(), 404, "Nobody Here", to_tag="t").reason == "Nobody Here"
    assert all(reason_phrase(code) == text for code, text in REASONS.items())


def test_unknown_codes_get_the_phrase_of_the_code_they_count_as() -> None:
    """RFC 3261 §8.1.3.2: an unknown final code is its class's x00, an unknown 1xx is 183."""
    assert reason_phrase(499) == "Bad Request"
    assert reason_phrase(580) == "Server Internal Error"
    assert reason_phrase(199) == "Session Progress"
    assert reason_phrase(699) == "Busy Everywhere"


@pytest.mark.parametrize("reason", ["Busy\r\nX-Injected: 1", "Busy\n", "Bad\x00"])
def test_reason_with_cr_lf_or_controls_is_refused(reason: str) -> None:
    """RFC 3261 §8.2.6.2: the reason phrase reaches the wire, so CR, LF and controls are refused."""
    with pytest.raises(LocalProtocolError):
        make_response(received(), 486, reason, to_tag="t")
    assert make_response(received(), 486, "Busy\there", to_tag="t").reason == "Busy\there"


def test_extra_headers_and_body() -> None:
    """RFC 3261 §8.2.6.2: headers and a body the caller adds follow the copied ones."""
    response = make_response(
        received(),
        200,
        to_tag="t",
        headers=[("Allow", ["INVITE", "ACK"]), ("Accept", "application/sdp")],
        body=b"v=0\r\n",
        content_type="application/sdp",
    )
    assert [str(v) for v in response.get_all("Allow")] == ["INVITE", "ACK"]
    assert str(response["Content-Type"]) == "application/sdp"
    assert response.body == b"v=0\r\n" and str(response["Content-Length"]) == "5"
    assert parse_message(bytes(response)) == response


def test_unreadable_to_is_copied_without_a_tag() -> None:
    """RFC 3261 §8.2.6.2: a To that cannot be read is copied as it came (no tag can be added)."""
    bad = parse_message(
        RAW.replace(b"t: Bob <sip:bob@example.com>", b"t: Bob <sip:bob@example.com")
    )
    assert isinstance(bad, Request)
    response = make_response(bad, 400, to_tag="t")
    assert b"To: Bob <sip:bob@example.com\r\n" in bytes(
        response
    ) or b"t: Bob <sip:bob@example.com\r\n" in bytes(response)
