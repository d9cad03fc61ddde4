"""Answered transactions keep their messages' lines, not their parsed values."""

from __future__ import annotations

from callscript.sip.message import Request
from callscript.sip.transaction.layer import forget_parsed


def test_forgetting_parsed_values_keeps_the_message_readable_and_byte_identical() -> None:
    """The values are parsed again on demand and the bytes do not change."""
    request = Request(
        "INVITE",
        "sip:bob@example.com",
        [
            ("Via", "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-f1"),
            ("From", "<sip:alice@example.com>;tag=1"),
            ("To", "<sip:bob@example.com>"),
            ("Call-ID", "f1"),
            ("CSeq", "1 INVITE"),
        ],
    )
    before = bytes(request)
    assert request.top_via.branch == "z9hG4bK-f1" and request.uri.user == "bob"
    forget_parsed(request)
    assert all(values is None for values in request._values)
    assert request._uri is None
    assert bytes(request) == before
    assert request.top_via.branch == "z9hG4bK-f1" and request.uri.user == "bob"
    assert request.from_addr.tag == "1"
