"""Building responses to requests (RFC 3261 §8.2.6, §21 reason phrases)."""

from __future__ import annotations

from collections.abc import Iterable
from types import MappingProxyType

from callscript.sip.abnf import has_control
from callscript.sip.errors import LocalProtocolError, ParseError
from callscript.sip.message import Request, Response

# RFC 3261 §21 (and RFC 3265, 3329, 4412, 5393, 6086 for the few we send).
REASONS = MappingProxyType(
    {
        100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
        183: "Session Progress", 200: "OK", 202: "Accepted", 300: "Multiple Choices",
        301: "Moved Permanently", 302: "Moved Temporarily", 305: "Use Proxy",
        380: "Alternative Service", 400: "Bad Request", 401: "Unauthorized",
        402: "Payment Required", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
        406: "Not Acceptable", 407: "Proxy Authentication Required", 408: "Request Timeout",
        410: "Gone", 413: "Request Entity Too Large", 414: "Request-URI Too Long",
        415: "Unsupported Media Type", 416: "Unsupported URI Scheme", 420: "Bad Extension",
        421: "Extension Required", 423: "Interval Too Brief", 480: "Temporarily Unavailable",
        481: "Call/Transaction Does Not Exist", 482: "Loop Detected", 483: "Too Many Hops",
        484: "Address Incomplete", 485: "Ambiguous", 486: "Busy Here", 487: "Request Terminated",
        488: "Not Acceptable Here", 491: "Request Pending", 493: "Undecipherable",
        500: "Server Internal Error", 501: "Not Implemented", 502: "Bad Gateway",
        503: "Service Unavailable", 504: "Server Time-out", 505: "Version Not Supported",
        513: "Message Too Large", 600: "Busy Everywhere", 603: "Decline",
        604: "Does Not Exist Anywhere", 606: "Not Acceptable",
    }
)  # fmt: skip


def reason_phrase(status: int) -> str:
    """The RFC's reason phrase for ``status``, or the one of the code its class falls back to."""
    text = REASONS.get(status)
    if text is not None:
        return text
    # RFC 3261 §8.1.3.2: an unknown final code counts as x00 of its class, an unknown 1xx as 183.
    return REASONS.get(183 if status < 200 else status - status % 100, "Unknown")


def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, object]] = (),
    body: bytes = b"",
    content_type: str | None = None,
) -> Response:
    """A response to ``request`` as RFC 3261 §8.2.6.2 builds it.

    Via (all values, in order), From, To, Call-ID and CSeq are copied; the To
    tag is added when the request had none and ``to_tag`` is given (never on
    100 Trying, §8.2.6.2; nor to a To that cannot be read, which is copied as
    it came). A 100 also copies Timestamp (§8.2.6.1). Reason phrases with CR,
    LF or other control characters are refused (a reason reaches the wire).

    Raises:
        LocalProtocolError: a status outside 100-699 or a bad reason phrase.
    """
    text = reason_phrase(status) if reason is None else reason
    if has_control(text):
        raise LocalProtocolError("reason phrase contains control characters")
    response = Response(status, text)
    # RFC 3261 §8.2.6.2: copy From, Call-ID, CSeq, Via (in order) and To (adding a tag).
    for key in ("Via", "From", "To", "Call-ID", "CSeq"):
        for line in request._header_lines(key):
            response._append_line(key, line)
    if status == 100:
        # RFC 3261 §8.2.6.1: a 100 (Trying) copies the request's Timestamp.
        for line in request._header_lines("Timestamp"):
            response._append_line("Timestamp", line)
    if to_tag is not None and status > 100:
        # RFC 3261 §8.2.6.2: a response other than 100 adds a To tag when the request had none.
        try:
            to = request.to_addr
        except ParseError:
            to = None
        if to is not None and to.tag is None:
            response["To"] = to.with_params(tag=to_tag)
    for name, value in headers:
        response.add(name, value)
    if content_type is not None:
        response["Content-Type"] = content_type
    response.set_body(body)
    return response
