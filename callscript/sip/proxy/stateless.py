"""Stateless forwarding of what matches no transaction (RFC 3261 §16.11).

Two kinds of message reach the proxy core outside any transaction: the ACK
for a 2xx (a new transaction-less request of the dialog) and a response whose
client transaction is gone (a late 2xx retransmission, say). Both are
forwarded statelessly once the engine has resolved their next hop; the
functions here decide whether and where, and build the message to send.
Peer bytes never raise out of them: what cannot be read is dropped.
"""

from __future__ import annotations

from callscript.sip.errors import ParseError
from callscript.sip.events import Peer
from callscript.sip.message import Request, Response
from callscript.sip.proxy.config import ProxyConfig
from callscript.sip.proxy.forward import stateless_branch
from callscript.sip.proxy.route import next_hop, preprocess_route
from callscript.sip.uri import URI
from callscript.sip.via import MAGIC_COOKIE, Via

STATELESS_PREFIX = f"{MAGIC_COOKIE}sl."


def ack_to_forward(ack: Request, config: ProxyConfig) -> tuple[Request, URI] | None:
    """The copy of a 2xx ACK to forward and its next hop, or ``None`` to drop it.

    Applies RFC 3261 §16.4 (our Route values go), refuses an exhausted
    Max-Forwards, decrements it (§16.6 step 3) and pushes our Via with a
    branch derived from the received one (§16.11), asking for rport
    (RFC 3581 §3). An ACK addressed to the proxy itself ends here.
    """
    try:
        preprocess_route(ack, config)
        hop = next_hop(ack)
        max_forwards = ack.max_forwards
        branch = stateless_branch(ack)
    except ParseError:
        return None
    if config.is_local(hop):
        return None
    # RFC 3261 §16.3 step 3: a request whose Max-Forwards is spent goes no further.
    if max_forwards is not None and max_forwards <= 0:
        return None
    copy = ack.copy()
    copy["Max-Forwards"] = 70 if max_forwards is None else max_forwards - 1
    transport = (hop.transport or ("tls" if hop.secure else "udp")).upper()
    host, port = config.via_for(transport)
    copy.insert("Via", Via(transport, host, port, {"branch": branch, "rport": None}))
    return copy, hop


def stray_to_forward(response: Response, config: ProxyConfig) -> tuple[Response, URI] | None:
    """RFC 3261 §16.11: a response matching no transaction goes to the Via below ours.

    Returns the response without our Via and the URI of the next Via's
    ``received``/``rport`` (else its sent-by), or ``None`` when the top Via is
    not ours or there is no Via below it.
    """
    try:
        vias = response.via
    except ParseError:
        return None
    if len(vias) < 2 or not is_our_via(vias[0], config):
        return None
    response.pop("Via")
    via = vias[1]
    host = via.received or via.host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # received holds a bare IPv6 address; a URI host needs brackets
    port = via.rport or via.port
    transport = via.transport.lower()
    return response, URI("sip", host=host, port=port, params={"transport": transport})


def is_our_via(via: Via, config: ProxyConfig) -> bool:
    """Whether ``via`` names this proxy (one of our hosts and ports)."""
    default = 5061 if via.transport == "TLS" else 5060
    return via.host.lower() in config.local_hosts and (via.port or default) in config.local_ports


def retarget_via(message: Request | Response, peer: Peer, config: ProxyConfig) -> None:
    """Make the Via we pushed on a stateless ACK name the transport it really leaves on.

    The ACK's Via was chosen from the next hop's URI before the engine resolved
    it (a ``sips`` URI or an RFC 3263 NAPTR answer may pick another transport).
    """
    if not isinstance(message, Request):
        return
    try:
        via = message.top_via
    except ParseError:
        return
    if not (via.branch or "").startswith(STATELESS_PREFIX) or via.transport == peer.transport:
        return
    if not is_our_via(via, config):
        return
    host, port = config.via_for(peer.transport)
    message.set_top("Via", Via(peer.transport, host, port, via.params))
