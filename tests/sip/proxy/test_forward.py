"""The copy of a request for one target (RFC 3261 §16.6) and stateless forwarding (§16.11)."""

from __future__ import annotations

from typing import cast

from callscript.sip.address import Address
from callscript.sip.events import Peer
from callscript.sip.headers import CSeq
from callscript.sip.message import Request, Response, parse_message
from callscript.sip.proxy.config import ProxyConfig
from callscript.sip.proxy.forward import forward_copy, record_route_uri, stateless_branch
from callscript.sip.proxy.stateless import (
    ack_to_forward,
    is_our_via,
    retarget_via,
    stray_to_forward,
)
from callscript.sip.proxy.validate import loop_hash
from callscript.sip.uri import URI
from callscript.sip.via import Via
from tests.sip.proxy.conftest import PROXY_HOST, proxy_config, request

UDP_PEER = Peer("UDP", "192.0.2.21", 5070)
TCP_PEER = Peer("TCP", "192.0.2.21", 5070)
TARGET = URI.parse("sip:bob@192.0.2.21:5070")


def copy_of(
    message: Request,
    config: ProxyConfig,
    *,
    peer: Peer = UDP_PEER,
    inbound: str = "UDP",
    target: URI | None = TARGET,
) -> Request:
    return forward_copy(message, target, peer, inbound, config, suffix="0.0")


def uris(message: Request, name: str) -> list[str]:
    """The URIs of the ``name`` header values (Route, Record-Route), top first."""
    return [str(cast(Address, a).uri) for a in message.get_all(name)]


def record_routes(message: Request) -> list[str]:
    return uris(message, "Record-Route")


def test_request_uri_becomes_the_target(config: ProxyConfig) -> None:
    """RFC 3261 §16.6 step 2: the copy's Request-URI is the target; None keeps it."""
    original = request("INVITE")
    assert str(copy_of(original, config).uri) == "sip:bob@192.0.2.21:5070"
    assert str(copy_of(original, config, target=None).uri) == "sip:bob@example.com"
    assert str(original.uri) == "sip:bob@example.com"  # the received request is untouched
    assert "Record-Route" not in original and len(original.via) == 1


def test_max_forwards_is_decremented_or_set_to_70(config: ProxyConfig) -> None:
    """RFC 3261 §16.6 step 3: Max-Forwards goes down by one, or is added with 70."""
    assert copy_of(request("INVITE", max_forwards=5), config).max_forwards == 4
    assert copy_of(request("INVITE", max_forwards=None), config).max_forwards == 70
    assert copy_of(request("OPTIONS", max_forwards=0), config).max_forwards == 0


def test_dialog_creating_request_is_record_routed(config: ProxyConfig) -> None:
    """RFC 3261 §16.6 step 4: our Record-Route, with lr, on a dialog-creating request."""
    copy = copy_of(request("INVITE", headers=[("Record-Route", "<sip:up.example.net;lr>")]), config)
    assert record_routes(copy) == [f"sip:{PROXY_HOST}:5060;lr", "sip:up.example.net;lr"]
    assert record_route_uri(config, "TCP") == URI.parse(f"sip:{PROXY_HOST}:5060;transport=tcp;lr")


def test_record_route_is_doubled_when_the_transports_differ(config: ProxyConfig) -> None:
    """RFC 3261 §16.6 step 4: in on UDP, out on TCP: one Record-Route per leg, outbound on top."""
    copy = copy_of(request("INVITE"), config, peer=TCP_PEER, inbound="UDP")
    assert record_routes(copy) == [
        f"sip:{PROXY_HOST}:5060;transport=tcp;lr",
        f"sip:{PROXY_HOST}:5060;lr",
    ]


def test_no_record_route_for_register_in_dialog_or_when_disabled(config: ProxyConfig) -> None:
    """RFC 3261 §16.6 step 4: REGISTER and in-dialog requests get no Record-Route."""
    assert "Record-Route" not in copy_of(request("REGISTER"), config)
    assert "Record-Route" not in copy_of(request("BYE", to_tag="b"), config)
    assert "Record-Route" not in copy_of(request("INVITE", to_tag="b"), config)
    off = proxy_config(record_route=False)
    assert "Record-Route" not in copy_of(request("INVITE"), off)


def test_strict_next_hop_is_fixed_in_the_copy(config: ProxyConfig) -> None:
    """RFC 3261 §16.6 step 6: a strict first Route becomes the copy's Request-URI."""
    message = request(
        "BYE", "sip:bob@192.0.2.21", to_tag="b", headers=[("Route", "<sip:strict.example.net>")]
    )
    copy = copy_of(message, config, target=None)
    assert str(copy.uri) == "sip:strict.example.net"
    assert uris(copy, "Route") == ["sip:bob@192.0.2.21"]


def test_via_carries_the_loop_hash_and_asks_for_rport(config: ProxyConfig) -> None:
    """RFC 3261 §16.6 step 8: our Via on top, its branch made of the loop hash and the suffix."""
    original = request("INVITE")
    copy = forward_copy(original, TARGET, TCP_PEER, "UDP", config, suffix="3.1")
    top = copy.top_via
    assert (top.transport, top.host, top.port) == ("TCP", PROXY_HOST, 5060)
    assert top.branch == f"z9hG4bKcs.{loop_hash(original)}.3.1"
    assert [v.host for v in copy.via] == [PROXY_HOST, "192.0.2.10"]
    given = forward_copy(original, TARGET, TCP_PEER, "UDP", config, suffix="0.0", loop="abc")
    assert given.top_via.branch == "z9hG4bKcs.abc.0.0"


def test_our_via_asks_for_rport(config: ProxyConfig) -> None:
    """RFC 3581 §3: the proxy's Via carries an empty rport so responses come back to its port."""
    top = copy_of(request("INVITE"), config).top_via
    assert "rport" in top.params and top.params["rport"] is None
    assert str(top).endswith(";rport")


# -- stateless forwarding --------------------------------------------------------------------


def ack_for_2xx(**kwargs: object) -> Request:
    message = request("ACK", "sip:bob@192.0.2.21:5070", to_tag="b", **kwargs)  # type: ignore[arg-type]
    return message


def test_stateless_branch_follows_the_received_branch() -> None:
    """RFC 3261 §16.11: the same ACK (or its retransmission) always gets the same branch."""
    assert stateless_branch(request("ACK", branch="z9hG4bK-up")) == "z9hG4bKsl.-up"
    old = request("ACK", via="SIP/2.0/UDP 192.0.2.10;branch=1234")
    assert stateless_branch(old) == f"z9hG4bKsl.{loop_hash(old)}"


def test_ack_for_2xx_is_forwarded_along_its_route(config: ProxyConfig) -> None:
    """RFC 3261 §16.11: an ACK for a 2xx loses our Route, gets our Via and goes to the next hop."""
    found = ack_to_forward(ack_for_2xx(headers=[("Route", f"<sip:{PROXY_HOST};lr>")]), config)
    assert found is not None
    copy, hop = found
    assert str(hop) == "sip:bob@192.0.2.21:5070"
    assert "Route" not in copy and copy.max_forwards == 69
    assert copy.top_via.branch == "z9hG4bKsl.-c1"
    via_tcp = ack_to_forward(
        ack_for_2xx(headers=[("Route", "<sip:a.example;transport=tcp;lr>")]), config
    )
    assert via_tcp is not None and via_tcp[0].top_via.transport == "TCP"
    sips = ack_to_forward(request("ACK", "sips:bob@a.example", to_tag="b"), config)
    assert sips is not None and sips[0].top_via.transport == "TLS"


def test_ack_for_us_or_out_of_hops_is_dropped(config: ProxyConfig) -> None:
    """RFC 3261 §16.3 step 3: an ACK whose Max-Forwards is spent is not forwarded."""
    assert ack_to_forward(ack_for_2xx(max_forwards=0), config) is None
    assert ack_to_forward(request("ACK", f"sip:{PROXY_HOST}", to_tag="b"), config) is None
    raw = bytes(ack_for_2xx()).replace(b"\r\n\r\n", b"\r\nRoute: <sip:broken\r\n\r\n")
    bad_route = parse_message(raw)
    assert isinstance(bad_route, Request)
    assert ack_to_forward(bad_route, config) is None


def test_retarget_via_matches_the_transport_the_ack_leaves_on(config: ProxyConfig) -> None:
    """RFC 3261 §16.11: the Via of a stateless ACK names the transport the engine picked."""
    found = ack_to_forward(ack_for_2xx(), config)
    assert found is not None
    copy = found[0]
    retarget_via(copy, TCP_PEER, config)
    top = copy.top_via
    assert (top.transport, top.branch, "rport" in top.params) == ("TCP", "z9hG4bKsl.-c1", True)
    # Anything else is left alone: a response, or a request whose top Via is not ours.
    other = request("ACK")
    retarget_via(other, TCP_PEER, config)
    assert other.top_via.transport == "UDP"


def stray(*vias: Via) -> Response:
    response = Response(200, "OK")
    response["Via"] = list(vias)
    response["From"] = "<sip:alice@example.com>;tag=a"
    response["To"] = "<sip:bob@example.com>;tag=b"
    response["Call-ID"] = "late"
    response["CSeq"] = CSeq(1, "INVITE")
    return response


OURS = Via("UDP", PROXY_HOST, 5060, {"branch": "z9hG4bKcs.x.0.0"})


def test_stray_response_goes_to_received_and_rport_of_the_next_via(config: ProxyConfig) -> None:
    """RFC 3261 §16.11: a stray response is sent where the next Via's received/rport say."""
    up = Via(
        "TCP",
        "caller.example.com",
        5062,
        {"branch": "z9hG4bK-u", "received": "2001:db8::1", "rport": "5999"},
    )
    found = stray_to_forward(stray(OURS, up), config)
    assert found is not None
    response, hop = found
    assert str(hop) == "sip:[2001:db8::1]:5999;transport=tcp"
    assert [v.host for v in response.via] == ["caller.example.com"]
    plain = Via("UDP", "192.0.2.10", None, {"branch": "z9hG4bK-u"})
    found = stray_to_forward(stray(OURS, plain), config)
    assert found is not None and str(found[1]) == "sip:192.0.2.10;transport=udp"


def test_stray_response_not_through_us_is_dropped(config: ProxyConfig) -> None:
    """RFC 3261 §16.11: only a response with our Via on top and one below it is forwarded."""
    up = Via("UDP", "192.0.2.10", 5060, {"branch": "z9hG4bK-u"})
    assert stray_to_forward(stray(up, OURS), config) is None
    assert stray_to_forward(stray(OURS), config) is None
    raw = bytes(stray(OURS, up)).replace(b"\r\n\r\n", b"\r\nVia: SIP/2.0/UDP\r\n\r\n")
    broken = parse_message(raw)
    assert isinstance(broken, Response)
    assert stray_to_forward(broken, config) is None


def test_our_via_is_recognised_by_host_and_port(config: ProxyConfig) -> None:
    """RFC 3261 §16.11: our Via is one of our hosts on one of our ports (5060 when omitted)."""
    assert is_our_via(Via("UDP", PROXY_HOST, None), config)
    assert not is_our_via(Via("UDP", PROXY_HOST, 5070), config)
    assert not is_our_via(Via("TLS", PROXY_HOST, None), config)  # TLS defaults to 5061
    assert not is_our_via(Via("UDP", "192.0.2.99", 5060), config)


def test_retarget_via_leaves_other_vias_alone(config: ProxyConfig) -> None:
    """RFC 3261 §16.11: only the Via the proxy pushed on a stateless ACK is rewritten."""
    foreign = request("ACK", via="SIP/2.0/UDP 192.0.2.50;branch=z9hG4bKsl.x")
    retarget_via(foreign, TCP_PEER, config)
    assert foreign.top_via.transport == "UDP"
    raw = bytes(request("ACK")).replace(b"Via: SIP/2.0/UDP 192.0.2.10;", b"Via: SIP/2.0/UDP ;")
    broken = parse_message(raw)
    retarget_via(broken, TCP_PEER, config)  # an unreadable Via is left for the next hop
    assert bytes(broken) == raw
