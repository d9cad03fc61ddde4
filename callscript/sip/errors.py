"""Errors of the sans-I/O SIP core.

``RemoteProtocolError``: the peer sent something wrong; answer it (``status``)
or drop it, and keep serving. ``LocalProtocolError``: our own code misused the
API; it raises. Peer bytes enter at exactly one place (``parse_message`` and
the stream framer), and the split is made there.
"""

from __future__ import annotations

from callscript.errors import SipError


class RemoteProtocolError(SipError):
    """The peer broke the protocol; ``status`` is the response it implies."""

    status: int = 400

    def __init__(self, reason: str, *, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        if status is not None:
            self.status = status


class LocalProtocolError(SipError):
    """Our own code asked for something the protocol does not allow."""


class ParseError(RemoteProtocolError):
    """Bytes that are not a valid SIP message, header or URI.

    Attributes:
        reason: what is wrong, in a few words.
        line: 1-based line of the message where it was found (0 when unknown).
        text: the offending line or value, shortened for display.
        status: the SIP status a server answers with (400, 505, 416, 413, 513).
    """

    def __init__(self, reason: str, *, line: int = 0, text: str = "", status: int = 400) -> None:
        super().__init__(reason, status=status)
        self.line = line
        self.text = text[:120]

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        return f"{where}{self.reason}"

    def at_line(self, line: int, text: str = "") -> ParseError:
        """Return a copy that names ``line`` (used when a header value fails later)."""
        return ParseError(self.reason, line=line, text=text or self.text, status=self.status)
