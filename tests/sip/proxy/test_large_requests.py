"""A forwarded request too large for UDP goes over TCP (RFC 3261 §18.1.1)."""

from __future__ import annotations

from callscript.sip.events import Peer
from callscript.sip.ids import CountingIds
from callscript.sip.proxy.context import Target
from callscript.sip.proxy.core import ProxyCore
from callscript.sip.proxy.events import RoutingNeeded
from callscript.sip.uri import URI
from tests.sip.proxy.conftest import CALLER_HOST, proxy_config, request


def _forwarded(body: bytes) -> tuple[Peer, str]:
    core = ProxyCore(proxy_config(), CountingIds())
    invite = request("INVITE")
    invite.set_body(body, "application/sdp")
    core.handle_request(invite, Peer("UDP", CALLER_HOST, 5060), now=0.0)
    event = next(e for e in iter(core.next_event, None) if isinstance(e, RoutingNeeded))
    callee = Peer("UDP", "192.0.2.20", 5060)
    core.proxy(event.ctx, [[Target(URI.parse("sip:bob@192.0.2.20"), (callee,))]], now=0.0)
    sent = [out for out in core.messages_to_send() if out.peer.host == "192.0.2.20"]
    assert len(sent) == 1
    return sent[0].peer, sent[0].message.top_via.transport


def test_request_over_1300_bytes_is_forwarded_over_tcp() -> None:
    """RFC 3261 §18.1.1: a request larger than 1300 bytes that would go over UDP goes over TCP,
    and the Via names TCP."""
    peer, via_transport = _forwarded(b"a=x\r\n" * 300)
    assert (peer.transport, peer.host, peer.port) == ("TCP", "192.0.2.20", 5060)
    assert via_transport == "TCP"


def test_small_request_stays_on_udp() -> None:
    """RFC 3261 §18.1.1: below the limit the resolved UDP target is kept."""
    peer, via_transport = _forwarded(b"v=0\r\n")
    assert (peer.transport, via_transport) == ("UDP", "UDP")
