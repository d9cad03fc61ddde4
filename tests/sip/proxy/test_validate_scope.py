"""The proxy checks only what it uses (RFC 3261 §16.3 step 1) and forwards the rest unchanged."""

from __future__ import annotations

from callscript.sip.proxy.validate import validate_request
from tests.sip.proxy.conftest import proxy_config, request


def test_a_malformed_header_the_proxy_does_not_use_is_ignored() -> None:
    """RFC 3261 §16.3 step 1: components the proxy does not use are not checked (RFC 4475 §3.1.2.12:
    a bad Date matters only to an element that reads it)."""
    invite = request("INVITE")
    invite._append_line("date", "Date: Fri, 01 Jan 2010 16:00:00 EST")
    invite._append_line("x-odd", "X-Odd: ;;,,;;")
    assert validate_request(invite, proxy_config()) is None


def test_a_malformed_header_the_proxy_uses_gets_400_naming_its_line() -> None:
    """RFC 3261 §16.3 step 1: a To the proxy needs that does not parse is a 400 with the line."""
    invite = request("INVITE")
    invite.discard("To")
    invite._append_line("To", 'To: "unterminated <sip:bob@example.com>')
    answer = validate_request(invite, proxy_config())
    assert answer is not None and answer.status == 400
    assert "bad To header" in answer.reason and "line" in answer.reason
