"""Request validation of a stateful proxy (RFC 3261 §16.3) and the loop-detection hash."""

from __future__ import annotations

import hashlib
import re

from callscript.sip.errors import ParseError
from callscript.sip.message import Request, Response
from callscript.sip.proxy.config import ProxyConfig
from callscript.sip.reply import make_response, reason_phrase

SCHEMES = frozenset({"sip", "sips", "tel"})

# Whatever a parse error quotes, the reason phrase that carries it stays one clean line.
_UNSAFE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_MAX_REASON = 200


def validate_request(request: Request, config: ProxyConfig) -> Response | None:
    """The error response the proxy must send for ``request``, or ``None`` when it may go on.

    Checks, in the RFC's order: reasonable syntax (step 1), URI scheme (step 2),
    Max-Forwards (step 3), loop detection (step 4) and Proxy-Require (step 5).
    The response carries no To tag; the caller adds one.
    """
    # RFC 3261 §16.3 step 1: reasonable syntax of what the proxy uses; the reason says what and where.
    try:
        check_needed(request)
    except ParseError as exc:
        try:
            request.validate()  # only to name the line: the error path may be slow
        except ParseError as located:
            exc = located if located.line else exc
        return make_response(request, exc.status, _reason(exc))
    # RFC 3261 §16.3 step 2: a Request-URI scheme we do not understand gets 416.
    if request.uri.scheme not in SCHEMES:
        return make_response(request, 416)
    # RFC 3261 §16.3 step 3: Max-Forwards 0 is 483, unless an OPTIONS is for us.
    max_forwards = request.max_forwards
    if max_forwards == 0 and not (request.method == "OPTIONS" and config.is_self(request.uri)):
        return make_response(request, 483)
    # RFC 3261 §16.3 step 4: a request carrying our Via with the branch we would compute loops.
    if is_loop(request, config):
        return make_response(request, 482)
    # RFC 3261 §16.3 step 5: Proxy-Require options we do not support get 420 with Unsupported.
    unsupported = [
        str(tag) for tag in request.get_all("Proxy-Require") if str(tag) not in config.supported
    ]
    if unsupported:
        return make_response(request, 420, headers=[("Unsupported", unsupported)])
    return None


# The headers a proxy reads to validate, route and forward; they appear once each.
_SINGLE = ("From", "To", "Call-ID", "CSeq", "Max-Forwards")


def check_needed(request: Request) -> None:
    """RFC 3261 §16.3 step 1: the parts the proxy uses must be well-formed; the others are
    not inspected and go on unchanged.

    Raises:
        ParseError: the first part that is missing, repeated or malformed.
    """
    uri = request.uri
    # RFC 3261 §19.1.1: headers are not allowed in a Request-URI (RFC 4475 §3.1.2.11).
    if uri.headers:
        raise ParseError("Request-URI must not carry headers", line=1)
    if not request.via:
        raise ParseError("missing Via header")
    for key in _SINGLE:
        if len(request.get_all(key)) > 1:
            raise ParseError(f"more than one {key} header")
    request.from_addr.uri  # noqa: B018 - parsing is the check
    request.to_addr.uri  # noqa: B018
    request.call_id  # noqa: B018
    request.max_forwards  # noqa: B018
    # RFC 3261 §8.1.1.5: the CSeq method matches the request method (RFC 4475 §3.1.2.17).
    if request.cseq.method != request.method:
        raise ParseError(f"CSeq method {request.cseq.method} does not match {request.method}")
    for route in request.get_all("Route"):
        route.uri  # type: ignore[union-attr]  # noqa: B018
    request.get_all("Proxy-Require")


def _reason(exc: ParseError) -> str:
    """``Bad Request (line 4: bad CSeq header: ...)``: the status's phrase and the problem."""
    text = f"{reason_phrase(exc.status)} ({_UNSAFE.sub('?', str(exc))})"
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 4] + "...)"


def loop_hash(request: Request, below: int = 0) -> str:
    """RFC 3261 §16.6 step 8: the part of our branch that detects loops.

    A hash of what decides how the request is processed, taken from the
    request as it arrived (before §16.4 changes its Request-URI or Route):
    the Request-URI, To tag, From tag, Call-ID, CSeq number, the Via value
    ``below`` ours (the top Via of the request as we received it), Route,
    Proxy-Require and Proxy-Authorization. The method is left out so that a
    CANCEL hashes like its INVITE.

    Raises:
        ParseError: one of those headers cannot be read.
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
        ",".join(str(v) for v in request.get_all("Route")),
        ",".join(str(v) for v in request.get_all("Proxy-Require")),
        ",".join(str(v) for v in request.get_all("Proxy-Authorization")),
    )
    return hashlib.blake2b(
        "\x00".join(parts).encode("utf-8", "surrogateescape"), digest_size=8
    ).hexdigest()


def is_loop(request: Request, config: ProxyConfig) -> bool:
    """RFC 3261 §16.3 step 4: one of our Vias carries the loop hash this request has now.

    A request that comes back with a changed Request-URI, Route set or
    anything else the hash covers is spiralling, not looping.
    """
    vias = request.via
    for index, via in enumerate(vias):
        if (
            via.host.lower() not in config.local_hosts
            or (via.port or 5060) not in config.local_ports
        ):
            continue
        parts = (via.branch or "").split(".")
        if len(parts) >= 2 and parts[1] == loop_hash(request, index + 1):
            return True
    return False
