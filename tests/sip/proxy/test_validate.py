"""Request validation (RFC 3261 §16.3): each check alone, then through the core."""

from __future__ import annotations

import pytest

from callscript.sip.errors import ParseError
from callscript.sip.events import Peer
from callscript.sip.ids import CountingIds
from callscript.sip.message import Request, Response
from callscript.sip.proxy.config import ProxyConfig
from callscript.sip.proxy.context import Target
from callscript.sip.proxy.core import ProxyCore
from callscript.sip.proxy.events import RoutingNeeded
from callscript.sip.proxy.validate import _reason, is_loop, loop_hash, validate_request
from callscript.sip.uri import URI
from tests.sip.proxy.conftest import (
    CALLER_HOST,
    PROXY_HOST,
    conformance_message,
    parse_request,
    proxy_config,
    request,
)

CALLER = Peer("UDP", CALLER_HOST, 5060)
SELF = Peer("UDP", PROXY_HOST, 5060)

RAW = (
    b"INVITE sip:bob@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK-raw\r\n"
    b"Max-Forwards: ten\r\n"
    b"From: <sip:alice@example.com>;tag=a\r\n"
    b"To: <sip:bob@example.com>\r\n"
    b"Call-ID: raw-1\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)


def answers(core: ProxyCore) -> list[Response]:
    """The responses the core put on the wire."""
    return [o.message for o in core.messages_to_send() if isinstance(o.message, Response)]


# -- step 1: reasonable syntax -----------------------------------------------------------------


def test_unparseable_header_gets_400_naming_line_and_problem(config: ProxyConfig) -> None:
    """RFC 3261 §16.3 step 1: a header that does not parse gets 400 saying where and what."""
    error = validate_request(parse_request(RAW), config)
    assert error is not None
    assert error.status == 400
    assert error.reason == (
        "Bad Request (line 3: bad Max-Forwards header: bad Max-Forwards 'ten' (0 to 255))"
    )
    # The response copies what identifies the transaction (RFC 3261 §8.2.6.2).
    assert error.call_id == "raw-1" and error.top_via.branch == "z9hG4bK-raw"


def test_bad_request_reason_stays_one_short_line() -> None:
    """RFC 3261 §16.3 step 1: whatever the parse error says, the reason phrase stays short and clean."""
    long = _reason(ParseError("bad thing " + "x" * 400, line=9))
    assert len(long) == 200 and long.startswith("Bad Request (line 9: bad thing x")
    assert long.endswith("...)")
    dirty = _reason(ParseError("bad \x00 value\r\nInjected: yes", status=400))
    assert dirty == "Bad Request (bad ? value??Injected: yes)"
    assert _reason(ParseError("Request-URI too long", status=414)) == (
        "Request-URI Too Long (Request-URI too long)"
    )


def test_unparseable_request_gets_400_with_a_to_tag_and_no_routing() -> None:
    """RFC 3261 §16.3 step 1: the core answers the 400 itself; the engine never sees the request."""
    core = ProxyCore(proxy_config(), CountingIds())
    core.handle_request(parse_request(RAW), CALLER, now=0.0)
    [error] = answers(core)
    assert error.status == 400 and error.to_addr.tag == "tag1"
    assert core.next_event() is None
    assert len(core) == 0


def test_unreadable_to_still_gets_its_400() -> None:
    """RFC 3261 §16.3 step 1: a To that cannot be read is copied as it came, without a tag."""
    raw = RAW.replace(b"Max-Forwards: ten", b"Max-Forwards: 70").replace(
        b"To: <sip:bob@example.com>", b"To: <sip:bob@example.com"
    )
    core = ProxyCore(proxy_config(), CountingIds())
    core.handle_request(parse_request(raw), CALLER, now=0.0)
    [error] = answers(core)
    assert error.status == 400 and error.reason.startswith("Bad Request (line 5: bad To header")
    assert b"To: <sip:bob@example.com\r\n" in bytes(error)


def test_missing_mandatory_header_gets_400() -> None:
    """RFC 3261 §16.3 step 1: a request without From cannot be proxied."""
    raw = RAW.replace(b"Max-Forwards: ten", b"Max-Forwards: 70").replace(
        b"From: <sip:alice@example.com>;tag=a\r\n", b""
    )
    error = validate_request(parse_request(raw), proxy_config())
    assert error is not None and (error.status, error.reason) == (
        400,
        "Bad Request (missing From header)",
    )


def test_cancel_is_validated_too() -> None:
    """RFC 3261 §16.3 step 3: a CANCEL with Max-Forwards 0 is refused like any request."""
    core = ProxyCore(proxy_config(), CountingIds())
    core.handle_request(request("CANCEL", max_forwards=0), CALLER, now=0.0)
    assert [r.status for r in answers(core)] == [483]


# -- step 2: URI scheme --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["unkscm", "novelsc"])
def test_rfc4475_unknown_request_uri_schemes_get_416(name: str, config: ProxyConfig) -> None:
    """RFC 3261 §16.3 step 2: a Request-URI scheme the proxy does not know gets 416 (RFC 4475)."""
    error = validate_request(parse_request(conformance_message(name)), config)
    assert error is not None
    assert (error.status, error.reason) == (416, "Unsupported URI Scheme")


@pytest.mark.parametrize("uri", ["urn:service:sos", "http://example.com/bob", "im:bob@example.com"])
def test_built_requests_with_unknown_schemes_get_416(uri: str, config: ProxyConfig) -> None:
    """RFC 3261 §16.3 step 2: sip, sips and tel are the schemes this proxy routes."""
    error = validate_request(request("OPTIONS", uri), config)
    assert error is not None and error.status == 416


@pytest.mark.parametrize("uri", ["sip:bob@example.com", "sips:bob@example.com", "tel:+15551234"])
def test_known_schemes_pass(uri: str, config: ProxyConfig) -> None:
    """RFC 3261 §16.3 step 2: known schemes go on to the next checks."""
    assert validate_request(request("OPTIONS", uri), config) is None


def test_scheme_is_checked_before_max_forwards(config: ProxyConfig) -> None:
    """RFC 3261 §16.3 step 2: the steps run in order, so 416 wins over 483."""
    error = validate_request(request("OPTIONS", "urn:x:y", max_forwards=0), config)
    assert error is not None and error.status == 416


# -- step 3: Max-Forwards --------------------------------------------------------------------


def test_max_forwards_zero_gets_483(config: ProxyConfig) -> None:
    """RFC 3261 §16.3 step 3: a request with Max-Forwards 0 is not forwarded: 483."""
    error = validate_request(request("INVITE", max_forwards=0), config)
    assert error is not None and (error.status, error.reason) == (483, "Too Many Hops")
    assert validate_request(request("INVITE", max_forwards=1), config) is None
    assert validate_request(request("INVITE", max_forwards=None), config) is None


def test_rfc4475_zero_max_forwards_options_for_a_user_gets_483(config: ProxyConfig) -> None:
    """RFC 3261 §16.3 step 3: RFC 4475 zeromf, an OPTIONS for a user with Max-Forwards 0."""
    error = validate_request(parse_request(conformance_message("zeromf")), config)
    assert error is not None and error.status == 483


@pytest.mark.parametrize("uri", [f"sip:{PROXY_HOST}", "sip:example.com", f"sip:{PROXY_HOST}:5060"])
def test_options_to_the_proxy_itself_with_max_forwards_zero_is_not_refused(
    uri: str, config: ProxyConfig
) -> None:
    """RFC 3261 §16.3 step 3: an OPTIONS for the proxy itself is answered, even with MF 0."""
    assert validate_request(request("OPTIONS", uri, max_forwards=0), config) is None
    error = validate_request(request("MESSAGE", uri, max_forwards=0), config)
    assert error is not None and error.status == 483


# -- step 4: loops -------------------------------------------------------------------------------


def forwarded(core: ProxyCore) -> Request:
    """The one request the core sent downstream."""
    [sent] = [o.message for o in core.messages_to_send() if isinstance(o.message, Request)]
    return sent


def route_to(core: ProxyCore, uri: str | None) -> None:
    """Answer the pending RoutingNeeded by proxying to ourselves with ``uri``."""
    event = core.next_event()
    assert isinstance(event, RoutingNeeded)
    target = Target(URI.parse(uri) if uri else None, (SELF,))
    core.proxy(event.ctx, [[target]], now=0.0)


def test_request_coming_back_unchanged_is_a_loop() -> None:
    """RFC 3261 §16.3 step 4: our forwarded copy coming back as it left gets 482."""
    core = ProxyCore(proxy_config(), CountingIds())
    core.handle_request(request("INVITE"), CALLER, now=0.0)
    route_to(core, None)
    copy = forwarded(core)
    core.handle_request(copy, SELF, now=0.0)
    [error] = [r for r in answers(core) if r.status > 100]
    assert (error.status, error.reason) == (482, "Loop Detected")
    assert core.next_event() is None


def test_request_coming_back_with_a_new_request_uri_is_a_spiral() -> None:
    """RFC 3261 §16.3 step 4: a changed Request-URI means a spiral, routed again, not a loop."""
    core = ProxyCore(proxy_config(), CountingIds())
    core.handle_request(request("INVITE"), CALLER, now=0.0)
    route_to(core, "sip:carol@example.com")
    core.handle_request(forwarded(core), SELF, now=0.0)
    assert [r.status for r in answers(core)] == [100]
    # Carol forwards back to bob: the request is now what we received the first time: a loop.
    route_to(core, "sip:bob@example.com")
    core.handle_request(forwarded(core), SELF, now=0.0)
    assert [r.status for r in answers(core)] == [482]


def test_request_coming_back_with_another_route_set_is_a_spiral(config: ProxyConfig) -> None:
    """RFC 3261 §16.3 step 4: Route is part of the hash, so a new route set is no loop."""
    first = request("INVITE", headers=[("Route", f"<sip:{PROXY_HOST};lr>")])
    branch = f"z9hG4bKcs.{loop_hash(first)}.0.0"
    again = request("INVITE")
    again.insert("Via", f"SIP/2.0/UDP {PROXY_HOST}:5060;branch={branch}")
    assert not is_loop(again, config)
    first.insert("Via", f"SIP/2.0/UDP {PROXY_HOST}:5060;branch={branch}")
    assert is_loop(first, config)


def test_loop_hash_ignores_the_method_so_cancel_hashes_like_its_invite() -> None:
    """RFC 3261 §16.6 step 8: the branch must not depend on the method (CANCEL, ACK)."""
    assert loop_hash(request("INVITE")) == loop_hash(request("CANCEL"))
    assert loop_hash(request("INVITE")) != loop_hash(request("INVITE", cseq=2))
    assert loop_hash(request("INVITE")) != loop_hash(request("INVITE", "sip:carol@example.com"))


def test_only_our_own_vias_count_for_loops(config: ProxyConfig) -> None:
    """RFC 3261 §16.3 step 4: a Via of another host with a matching branch shape is no loop."""
    first = request("INVITE")
    branch = f"z9hG4bKcs.{loop_hash(first)}.0.0"
    first.insert("Via", f"SIP/2.0/UDP other.example.net;branch={branch}")
    assert not is_loop(first, config)


# -- step 5: Proxy-Require -------------------------------------------------------------------


def test_proxy_require_with_unknown_options_gets_420_listing_them() -> None:
    """RFC 3261 §16.3 step 5: 420 Bad Extension with Unsupported naming what we lack."""
    config = proxy_config(supported=frozenset({"sec-agree"}))
    message = request(
        "INVITE", headers=[("Proxy-Require", ["foo", "sec-agree"]), ("Proxy-Require", "bar")]
    )
    error = validate_request(message, config)
    assert error is not None
    assert (error.status, error.reason) == (420, "Bad Extension")
    assert [str(v) for v in error.get_all("Unsupported")] == ["foo", "bar"]
    supported = request("INVITE", headers=[("Proxy-Require", "sec-agree")])
    assert validate_request(supported, config) is None
