"""Message framing on stream transports (TCP, TLS): RFC 3261 §18.3, §7.5; RFC 5626 §3.5.1.

A :class:`StreamFramer` takes bytes as they arrive and hands back whole
messages as bytes, to be parsed by ``parse_message``. It never looks past
the header section except to find Content-Length, scans each byte a bounded
number of times (linear in the input however it is split), and never
buffers more than ``max_size`` bytes.

CRLFs between messages are skipped (RFC 3261 §7.5). A double CRLF is a
keep-alive ping (RFC 5626 §3.5.1) and is reported as :data:`PING` so that
the transport can answer with a single CRLF (pong).
"""

from __future__ import annotations

import re

from callscript.sip.errors import LocalProtocolError, ParseError

PING = b"\r\n\r\n"
PONG = b"\r\n"
_LENGTH_RE = re.compile(
    rb"\r\n(?:content-length|l)[ \t]*:[ \t]*(?:\r\n[ \t]+)?([^\r\n]*)", re.IGNORECASE
)


class StreamFramer:
    """Cut a byte stream into SIP messages.

    Args:
        max_size: the largest message (header section plus body) accepted;
            a larger one is an error with status 513.

    After an error the stream cannot be re-synchronised, so the framer is
    broken and the connection must be closed (RFC 3261 §18.3).
    """

    def __init__(self, *, max_size: int = 65536) -> None:
        self.max_size = max_size
        self._buf = bytearray()
        self._pos = 0  # start of the unread part of _buf
        self._scan = 0  # where the search for the end of the header section resumes
        self._need: int | None = None  # total size of the message being read, once known
        self._crlfs = 0
        self.broken = False

    @property
    def buffered(self) -> int:
        """Bytes received and not yet handed out."""
        return len(self._buf) - self._pos

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return every message (or :data:`PING`) now complete.

        Raises:
            ParseError: bad or missing Content-Length (400) or a message over
                ``max_size`` (513). The framer is broken afterwards.
            LocalProtocolError: feeding a broken framer.
        """
        if self.broken:
            raise LocalProtocolError("the stream framer is broken; close the connection")
        self._buf += data
        out: list[bytes] = []
        try:
            while self._next(out):
                pass
        except ParseError:
            self.broken = True
            raise
        self._compact()
        return out

    def _next(self, out: list[bytes]) -> bool:
        buf = self._buf
        if self._need is None:
            if not self._skip_crlfs(out):
                return False
            end = buf.find(b"\r\n\r\n", max(self._scan, self._pos))
            if end < 0:
                self._scan = max(self._pos, len(buf) - 3)
                if len(buf) - self._pos > self.max_size:
                    raise ParseError(
                        f"header section longer than {self.max_size} bytes", status=513
                    )
                self._compact()
                return False
            head = bytes(buf[self._pos : end])
            self._need = end + 4 - self._pos + self._content_length(head)
            if self._need > self.max_size:
                raise ParseError(
                    f"message of {self._need} bytes exceeds {self.max_size}", status=513
                )
        if len(buf) - self._pos < self._need:
            self._compact()
            return False
        out.append(bytes(buf[self._pos : self._pos + self._need]))
        self._pos += self._need
        self._need = None
        self._scan = self._pos
        return True

    def _compact(self) -> None:
        # Drop consumed bytes only when waiting for more, so a read holding many
        # messages costs one move, not one per message.
        if self._pos:
            del self._buf[: self._pos]
            self._scan = max(0, self._scan - self._pos)
            self._pos = 0

    def _skip_crlfs(self, out: list[bytes]) -> bool:
        # RFC 3261 §7.5: ignore CRLFs before a start line; RFC 5626 §3.5.1: CRLFCRLF is a ping.
        buf = self._buf
        pos = self._pos
        while buf[pos : pos + 2] == b"\r\n":
            pos += 2
            self._crlfs += 1
            if self._crlfs == 2:
                out.append(PING)
                self._crlfs = 0
        self._pos = pos
        rest = len(buf) - pos
        if rest == 0 or (rest == 1 and buf[pos] == 13):
            self._compact()
            return False
        self._crlfs = 0
        return True

    @staticmethod
    def _content_length(head: bytes) -> int:
        values = {m.group(1).strip(b" \t") for m in _LENGTH_RE.finditer(head)}
        if not values:
            # RFC 3261 §18.3: Content-Length MUST be used with stream-oriented transports.
            raise ParseError("Content-Length is required on stream transports")
        if len(values) > 1:
            raise ParseError("conflicting Content-Length headers")
        text = values.pop()
        digits = text.lstrip(b"0") or b"0"
        # RFC 3261 §20.14: 1*DIGIT; never build a huge integer from a peer's digits.
        if not text.isdigit() or len(digits) > 10:
            raise ParseError(f"bad Content-Length {text[:20]!r}")
        return int(digits)
