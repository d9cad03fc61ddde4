"""Building the copy of a request that goes to one target (RFC 3261 §16.6)."""

from __future__ import annotations

from callscript.sip.address import Address
from callscript.sip.events import Peer
from callscript.sip.message import Request
from callscript.sip.proxy.config import ProxyConfig
from callscript.sip.proxy.route import fix_strict_route
from callscript.sip.proxy.validate import loop_hash
from callscript.sip.uri import URI
from callscript.sip.via import MAGIC_COOKIE, Via

# Methods that never get our Record-Route: they create no dialog (RFC 3261 §16.6 step 4, §10).
_NO_RECORD_ROUTE = frozenset({"REGISTER", "CANCEL", "ACK", "OPTIONS", "MESSAGE", "PUBLISH"})


def record_route_uri(config: ProxyConfig, transport: str) -> URI:
    """The URI this proxy puts in Record-Route for a leg on ``transport``."""
    host, port = config.via_for(transport)
    params: dict[str, str | None] = {}
    if transport != "UDP":
        params["transport"] = transport.lower()
    params["lr"] = None
    return URI("sip", host=host, port=port, params=params)


def wants_record_route(request: Request) -> bool:
    """Whether a forwarded ``request`` gets our Record-Route: out-of-dialog, dialog-creating."""
    return request.method not in _NO_RECORD_ROUTE and request.to_addr.tag is None


def forward_copy(
    request: Request,
    target: URI | None,
    peer: Peer,
    inbound: str,
    config: ProxyConfig,
    *,
    suffix: str,
    loop: str | None = None,
) -> Request:
    """The request to send to ``peer`` for ``target`` (``None`` keeps the Request-URI).

    Args:
        request: the request as received, after RFC 3261 §16.4 preprocessing.
        target: the new Request-URI (RFC 3261 §16.6 step 2), or ``None`` to keep it.
        peer: where the copy goes; its transport names our Via.
        inbound: the transport the request arrived on (for double Record-Route).
        suffix: makes the branch unique per copy (fork index, failover attempt).
        loop: the :func:`loop_hash` of the request as it arrived, before RFC 3261
            §16.4 changed it; computed from ``request`` when not given.
    """
    if loop is None:
        loop = loop_hash(request)
    copy = request.copy()
    # RFC 3261 §16.6 step 2: the Request-URI becomes the target.
    if target is not None:
        copy.uri = target
    # RFC 3261 §16.6 step 3: decrement Max-Forwards, or add it with 70.
    max_forwards = copy.max_forwards
    copy["Max-Forwards"] = 70 if max_forwards is None else max(max_forwards - 1, 0)
    # RFC 3261 §16.6 step 4: Record-Route, twice when the transports of the two legs differ.
    if config.record_route and wants_record_route(copy):
        if inbound != peer.transport:
            copy.insert("Record-Route", Address(record_route_uri(config, inbound)))
        copy.insert("Record-Route", Address(record_route_uri(config, peer.transport)))
    # RFC 3261 §16.6 step 8: the branch carries the loop-detection hash of §16.3 step 4.
    branch = f"{MAGIC_COOKIE}cs.{loop}.{suffix}"
    # RFC 3261 §16.6 step 6: a strict-routing next hop gets the Request-URI it expects.
    fix_strict_route(copy)
    host, port = config.via_for(peer.transport)
    # RFC 3581 §3: ask for rport so responses come back to our source port.
    copy.insert("Via", Via(peer.transport, host, port, {"branch": branch, "rport": None}))
    return copy


def stateless_branch(request: Request) -> str:
    """RFC 3261 §16.11: a stateless proxy's branch is the same for every retransmission.

    Derived from the received top Via branch (or, for RFC 2543 peers, the loop hash).
    """
    upstream = request.top_via.branch
    if upstream and upstream.startswith(MAGIC_COOKIE):
        return f"{MAGIC_COOKIE}sl.{upstream[len(MAGIC_COOKIE) :]}"
    return f"{MAGIC_COOKIE}sl.{loop_hash(request)}"
