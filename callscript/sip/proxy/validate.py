"""Request validation of a stateful proxy (RFC 3261 §16.3)."""

from __future__ import annotations

import hashlib

from callscript.sip.errors import ParseError
from callscript.sip.message import Request, Response
from callscript.sip.proxy.config import ProxyConfig
from callscript.sip.reply import make_response

SCHEMES = frozenset({"sip", "sips", "tel"})


def validate_request(request: Request, config: ProxyConfig) -> Response | None:
    """The error response the proxy must send for ``request``, or ``None`` when it may go on.

    Checks, in the RFC's order: reasonable syntax (step 1), URI scheme (step 2),
    Max-Forwards (step 3), loop detection (step 4) and Proxy-Require (step 5).
    """
    # RFC 3261 §16.3 step 1: reasonable syntax; the reason says what and where.
    try:
        request.validate()
    except ParseError as exc:
        return (
            make_response(request, exc.status, f"Bad Request ({exc})"[:200])
            if _answerable(request)
            else None
        )
    # RFC 3261 §16.3 step 2: a Request-URI scheme we do not understand gets 416.
    if request.uri.scheme not in SCHEMES:
        return make_response(request, 416)
    # RFC 3261 §16.3 step 3: Max-Forwards 0 is 483, unless an OPTIONS is for us.
    max_forwards = request.max_forwards
    if max_forwards == 0 and not (request.method == "OPTIONS" and config.is_self(request.uri)):
        return make_response(request, 483)
    # RFC 3261 §16.3 step 4: a request carrying our own Via with the branch we would compute loops.
    if is_loop(request, config):
        return make_response(request, 482)
    # RFC 3261 §16.3 step 5: Proxy-Require options we do not support get 420 with Unsupported.
    unsupported = [
        str(tag) for tag in request.get_all("Proxy-Require") if str(tag) not in config.supported
    ]
    if unsupported:
        return make_response(request, 420, headers=[("Unsupported", unsupported)])
    return None


def _answerable(request: Request) -> bool:
    try:
        request.top_via, request.from_addr, request.to_addr, request.call_id, request.cseq  # noqa: B018
    except ParseError:
        return False
    return True


def loop_hash(request: Request, below: int = 0) -> str:
    """RFC 3261 §16.6 step 8: the part of our branch that detects loops.

    A hash of the Request-URI, To tag, From tag, Call-ID, CSeq number and the
    Via value ``below`` ours (the top Via of the request as we received it),
    plus Proxy-Require and Proxy-Authorization as the RFC lists.
    """
    vias = request.via
    upstream = str(vias[below]) if below < len(vias) else ""
    parts = (
        str(request.uri),
        request.to_addr.tag or "",
        request.from_addr.tag or "",
        request.call_id,
        str(request.cseq.number),
        upstream,
        ",".join(str(v) for v in request.get_all("Proxy-Require")),
        ",".join(str(v) for v in request.get_all("Proxy-Authorization")),
    )
    return hashlib.blake2b(
        "\x00".join(parts).encode("utf-8", "surrogateescape"), digest_size=8
    ).hexdigest()


def is_loop(request: Request, config: ProxyConfig) -> bool:
    """RFC 3261 §16.3 step 4: one of our Vias carries the loop hash this request would get now."""
    vias = request.via
    for index, via in enumerate(vias):
        if (
            via.host.lower() not in config.local_hosts
            or (via.port or 5060) not in config.local_ports
        ):
            continue
        branch = via.branch or ""
        parts = branch.split(".")
        if len(parts) >= 2 and parts[1] == loop_hash(request, index + 1):
            return True
    return False
