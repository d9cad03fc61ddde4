"""Where a request goes and how it gets there: targets, Record-Route, stateful and stateless.

RFC 3261 §16.5 (targets), §16.6 (forwarding: our Record-Route on request, the
next hop from Route or the Request-URI), §16.11 (stateless forwarding).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from callscript.errors import TransportError
from callscript.serverscript.call import RoutedRequest
from callscript.sip.address import Address
from callscript.sip.errors import ParseError
from callscript.sip.events import Peer
from callscript.sip.message import Request
from callscript.sip.proxy.context import Target
from callscript.sip.proxy.forward import record_route_uri, stateless_branch
from callscript.sip.proxy.route import next_hop
from callscript.sip.uri import URI, parse_uri
from callscript.sip.via import Via

if TYPE_CHECKING:
    from callscript.serverscript.router import ScriptRouter

log = logging.getLogger("callscript.serverscript")

UriLike = str | URI
Targets = UriLike | Sequence[UriLike]


def to_uri(value: object) -> URI:
    """A URI from a URI or its text.

    Raises:
        ValueError: not a URI, or text that does not parse.
        TypeError: neither a str nor a URI.
    """
    if isinstance(value, URI):
        return value
    if not isinstance(value, str):
        raise TypeError(f"a URI or a string such as 'sip:alice@example.com', not {value!r}")
    try:
        return parse_uri(value.strip())
    except ParseError as exc:
        raise ValueError(f"not a valid URI: {value!r} ({exc})") from None


def to_uris(value: Targets | None) -> list[URI]:
    """One URI or several (a list or tuple), as a list; ``None`` is none."""
    if value is None:
        return []
    if isinstance(value, str | URI):
        return [to_uri(value)]
    return [to_uri(item) for item in value]


async def resolve(router: ScriptRouter, uri: URI) -> tuple[Peer, ...]:
    """RFC 3263 peers for ``uri``; none for what cannot be resolved (a tel: URI, say)."""
    try:
        return await router.resolve(uri)
    except TransportError:
        return ()


async def peers_of(router: ScriptRouter, uris: Sequence[URI]) -> tuple[Peer, ...]:
    """The peers of every URI in order: the failover list of one target (RFC 3263 §4.3)."""
    peers: list[Peer] = []
    for uri in uris:
        peers.extend(await resolve(router, uri))
    return tuple(peers)


async def target_groups(
    router: ScriptRouter,
    call: RoutedRequest,
    uris: Sequence[URI],
    hops: Sequence[URI],
    *,
    sequential: bool = False,
) -> list[list[Target]]:
    """The groups a stateful forward tries; the targets of a group fork in parallel.

    Targets are ``uris`` (new Request-URIs), else the call's location (what
    ``lookup()`` found or the handler assigned), else the request as it is.
    ``hops`` name where every copy is sent instead of resolving its target (an
    outbound proxy, or servers tried in order on failure). ``[]``: nothing resolved.
    """
    fixed = await peers_of(router, hops) if hops else None
    if hops and not fixed:
        return []
    if not uris and call.bindings is not None and fixed is None and not sequential:
        # Registered contacts fork by q-value groups, highest first (as callscript serve does).
        return await router.contact_groups(call.bindings)
    chosen: list[URI | None] = list(uris or call.location) or [None]
    targets: list[Target] = []
    for uri in chosen:
        # RFC 3261 §16.6 step 7: without a new target the next hop is the first Route, else the Request-URI.
        hop = uri if uri is not None else next_hop(call.request)
        peers = fixed if fixed is not None else await resolve(router, hop)
        if peers:
            targets.append(Target(uri, peers))
    if sequential:
        return [[target] for target in targets]
    return [targets] if targets else []


def apply_record_route(router: ScriptRouter, call: RoutedRequest, outbound: str) -> None:
    """RFC 3261 §16.6 step 4: put our Record-Route on the request, twice when the legs' transports differ."""
    # With configure(record_route=True) the core record-routes every dialog-creating request itself.
    if not call.record_route or call.record_routed or router.config.record_route:
        return
    request = call.request
    inbound = call.source.transport
    if inbound != outbound:
        request.insert("Record-Route", Address(record_route_uri(router.config, inbound)))
    request.insert("Record-Route", Address(record_route_uri(router.config, outbound)))
    call.record_routed = True


def stateless_copy(
    router: ScriptRouter, call: RoutedRequest, target: URI | None, peer: Peer
) -> Request:
    """RFC 3261 §16.11: the copy a stateless forward sends to ``peer``.

    The branch is derived from the received one, so a retransmission (which the
    handler routes again the same way) goes out with the same branch.
    """
    request = call.request
    copy = request.copy()
    if target is not None:
        copy.uri = target
    max_forwards = copy.max_forwards
    copy["Max-Forwards"] = 70 if max_forwards is None else max(max_forwards - 1, 0)
    if call.record_route:  # the core never record-routes stateless copies itself
        inbound = call.source.transport
        if inbound != peer.transport:
            copy.insert("Record-Route", Address(record_route_uri(router.config, inbound)))
        copy.insert("Record-Route", Address(record_route_uri(router.config, peer.transport)))
    host, port = router.config.via_for(peer.transport)
    branch = stateless_branch(request)
    copy.insert("Via", Via(peer.transport, host, port, {"branch": branch, "rport": None}))
    return copy
