"""SIP requests and responses: parse, read, change, serialize.

RFC 3261 §7 (messages), §7.3 (header fields), §7.4 / §18.3 (bodies and
framing), §8.1.1 (mandatory headers), §20 (header fields).

Parsing is lazy: :func:`parse_message` splits the header section into fields
and reads only the start line and Content-Length. A header's value is parsed
the first time it is read. A field that nobody changed serializes exactly as
received. :meth:`Message.validate` parses and checks everything, as a server
does before it answers; the hot path never needs it.

Headers live in three parallel lists: ``_keys`` (the header key of each
line), ``_lines`` (the raw line, folds included) and ``_values`` (the line's
parsed values, ``None`` until first read). Every change keeps them in step.
A line and its values are never changed in place, only replaced, so a copy
shares them. Values handed in by our own code come with the line built from
them, so they are never parsed back.

The hot path is shaped by bench/parse.py: one dictionary subscript per header
line while parsing, and the typed accessors (``top_via``, ``from_addr``,
``cseq``, ``call_id``) go through the line parser of their header's common
shape (one regular expression over the whole line) before the general path.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from types import MappingProxyType
from typing import Any, Self

from callscript.sip.abnf import has_control, is_token, unfold
from callscript.sip.address import Address, parse_address_line
from callscript.sip.errors import LocalProtocolError, ParseError
from callscript.sip.headers import (
    LIST_HEADERS,
    LIST_PARSERS,
    REPEATED_HEADERS,
    SINGLE_PARSERS,
    SPELLINGS,
    CSeq,
    HeaderValue,
    Text,
    header_key,
    make_value,
    parse_call_id_line,
    parse_cseq_line,
    parse_max_forwards_line,
    parse_uint,
    parse_values,
)
from callscript.sip.uri import URI, parse_uri
from callscript.sip.via import Via, parse_via_line

_CONTENT_LENGTH = sys.intern("Content-Length")

# RFC 3261 §8.1.1: headers that a request (and its responses) must carry, once each.
REQUIRED = ("To", "From", "CSeq", "Call-ID", "Via")
SINGLE = (
    "To", "From", "CSeq", "Call-ID", "Max-Forwards", "Content-Type", "Content-Length", "Expires",
    "Min-Expires",
)  # fmt: skip


class Message:
    """Common base of :class:`Request` and :class:`Response`.

    ``msg['From']`` gives the value of a single-valued header (``KeyError`` when
    absent); ``msg['Via']`` gives every value of a list header, top first.
    ``msg.get(name)`` returns ``None`` when absent; ``msg.get_all(name)`` is
    always a list. Header names are case-insensitive and compact forms work.
    """

    __slots__ = ("_keys", "_lines", "_values", "body")

    _keys: list[str]
    _lines: list[str]
    _values: list[list[HeaderValue] | None]
    body: bytes

    # -- reading -------------------------------------------------------------

    def __getitem__(self, name: str) -> Any:
        key = SPELLINGS.get(name) or _lookup_key(name)
        if key in LIST_HEADERS or key in REPEATED_HEADERS:
            return self._all(key)
        value = self._first(key)
        if value is None:
            raise KeyError(name)
        return value

    def get(self, name: str, default: Any = None) -> Any:
        """Like ``msg[name]``, but ``default`` when the header is absent."""
        try:
            return self[name]
        except KeyError:
            return default

    def get_all(self, name: str) -> list[HeaderValue]:
        """Every value of header ``name`` in order, top first (``[]`` when absent)."""
        try:
            return self._all(SPELLINGS.get(name) or _lookup_key(name))
        except KeyError:
            return []

    def _line_values(self, i: int) -> list[HeaderValue]:
        """The values of header line ``i``, parsed on first use."""
        values = self._values[i]
        if values is None:
            values = self._values[i] = _parse_line(self._lines[i], self._keys[i])
        return values

    def _first(self, key: str) -> HeaderValue | None:
        keys = self._keys
        if key not in keys:
            return None
        i = keys.index(key)
        while True:
            values = self._line_values(i)
            if values:
                return values[0]
            try:
                i = keys.index(key, i + 1)
            except ValueError:
                return None

    def _required(self, key: str) -> HeaderValue:
        value = self._first(key)
        if value is None:
            raise ParseError(f"missing {key} header")
        return value

    def _all(self, key: str) -> list[HeaderValue]:
        keys = self._keys
        count = keys.count(key)
        if count <= 1:
            return self._line_values(keys.index(key))[:] if count else []
        out: list[HeaderValue] = []
        i = -1
        for _ in range(count):
            i = keys.index(key, i + 1)
            out += self._line_values(i)
        return out

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        try:
            return (SPELLINGS.get(name) or _lookup_key(name)) in self._keys
        except KeyError:
            return False

    def header_names(self) -> list[str]:
        """Header keys in order of appearance, one per header line."""
        return list(self._keys)

    def raw_headers(self) -> Iterator[tuple[str, str]]:
        """``(key, value text)`` per header line, unfolded and trimmed, in order."""
        for key, line in zip(self._keys, self._lines, strict=True):
            yield key, unfold(line[line.find(":") + 1 :]).strip(" \t")

    # -- typed accessors for the stack (raise ParseError when missing or bad) --

    def _typed(self, key: str, parse_line: Callable[[str], HeaderValue | None]) -> HeaderValue:
        # The first ``key`` value, through the line parser of its common shape; anything
        # else takes _required's general path (and its errors).
        try:
            i = self._keys.index(key)
        except ValueError:
            return self._required(key)
        values = self._values[i]
        if values is None:
            value = parse_line(self._lines[i])
            if value is not None:
                self._values[i] = [value]
                return value
        elif values:
            return values[0]
        return self._required(key)

    # The line parsers of these headers only make values of the type named, so the
    # accessors return them unchecked (typing.cast would cost a call each time).

    @property
    def top_via(self) -> Via:
        """The topmost Via value."""
        return self._typed("Via", parse_via_line)  # type: ignore[return-value]

    @property
    def from_addr(self) -> Address:
        """The From value."""
        return self._typed("From", parse_address_line)  # type: ignore[return-value]

    @property
    def to_addr(self) -> Address:
        """The To value."""
        return self._typed("To", parse_address_line)  # type: ignore[return-value]

    @property
    def cseq(self) -> CSeq:
        """The CSeq value."""
        return self._typed("CSeq", parse_cseq_line)  # type: ignore[return-value]

    @property
    def via(self) -> list[Via]:
        """All Via values, top first."""
        return self._all("Via")  # type: ignore[return-value]

    @property
    def call_id(self) -> str:
        """The Call-ID."""
        value = self._typed("Call-ID", parse_call_id_line)
        return value.text  # type: ignore[union-attr,no-any-return]

    @property
    def max_forwards(self) -> int | None:
        """Max-Forwards, or ``None`` when absent (RFC 2543 peers omit it)."""
        if "Max-Forwards" not in self._keys:
            return None
        value = self._typed("Max-Forwards", parse_max_forwards_line)
        return value.number  # type: ignore[union-attr,no-any-return]

    @property
    def contacts(self) -> list[Address]:
        """All Contact values."""
        return self._all("Contact")  # type: ignore[return-value]

    # -- changing ------------------------------------------------------------

    def _new_line(self, key: str, name: str, value: object) -> tuple[str, list[HeaderValue]]:
        # The line for ``value`` and its values, so that the line is never parsed back.
        if isinstance(value, (list, tuple)):
            values = [make_value(key, v) for v in value]
            if not values:
                raise LocalProtocolError(f"no value for {key}; use discard() to remove it")
            if len(values) > 1 and key not in LIST_HEADERS:
                # RFC 3261 §7.3.1: only list headers may carry several comma-separated values.
                raise LocalProtocolError(f"{key} is not a list header; add() each value")
            text = ", ".join([str(v) for v in values])
        else:
            values = [make_value(key, value)]
            text = str(values[0])
        # A known spelling is written as its key; another name as the caller wrote it.
        if name in SPELLINGS:
            return f"{key}: {text}", values
        written = name.strip(" \t")
        if SPELLINGS.get(written) is not None or not is_token(written):
            written = key
        return f"{written}: {text}", values

    def __setitem__(self, name: str, value: object) -> None:
        """Replace every ``name`` header with ``value`` (a list gives several values)."""
        key = _local_key(name)
        line, values = self._new_line(key, name, value)
        keys = self._keys
        if key not in keys:
            keys.append(key)
            self._lines.append(line)
            self._values.append(values)
            return
        first = keys.index(key)
        self._lines[first] = line
        self._values[first] = values
        if keys.count(key) > 1:
            self._keep(lambda i, k: i <= first or k != key)

    def _keep(self, wanted: Callable[[int, str], bool]) -> None:
        # Rebuild the three parallel lists with the lines ``wanted(index, key)`` keeps.
        kept = [i for i, k in enumerate(self._keys) if wanted(i, k)]
        self._keys = [self._keys[i] for i in kept]
        self._lines = [self._lines[i] for i in kept]
        self._values = [self._values[i] for i in kept]

    def __delitem__(self, name: str) -> None:
        if not self.discard(name):
            raise KeyError(name)

    def discard(self, name: str) -> int:
        """Remove every ``name`` header; returns how many lines went."""
        key = _local_key(name)
        count = self._keys.count(key)
        if count:
            self._keep(lambda _, k: k != key)
        return count

    def add(self, name: str, value: object) -> None:
        """Append a ``name`` header line after all the others."""
        key = _local_key(name)
        line, values = self._new_line(key, name, value)
        self._lines.append(line)
        self._values.append(values)
        self._keys.append(key)

    def insert(self, name: str, value: object) -> None:
        """Put a ``name`` value on top: before the first ``name`` line, else first of all.

        This is how a proxy pushes its Via (RFC 3261 §16.6 step 8) and
        Record-Route (§16.6 step 4).
        """
        key = _local_key(name)
        keys = self._keys
        i = keys.index(key) if key in keys else 0
        line, values = self._new_line(key, name, value)
        self._lines.insert(i, line)
        self._values.insert(i, values)
        keys.insert(i, key)

    def pop(self, name: str) -> HeaderValue:
        """Remove and return the topmost ``name`` value (RFC 3261 §16.7 step 3 for Via).

        Raises:
            KeyError: no such header.
        """
        key = _local_key(name)
        keys, lines = self._keys, self._lines
        while key in keys:
            i = keys.index(key)
            values = self._line_values(i)
            if len(values) > 1:
                line = lines[i]
                lines[i], self._values[i] = self._new_line(key, line[: line.find(":")], values[1:])
                return values[0]
            del keys[i], lines[i], self._values[i]
            if values:
                return values[0]
        raise KeyError(name)

    def set_top(self, name: str, value: object) -> None:
        """Replace the topmost ``name`` value, keeping the others (e.g. Via ``received``)."""
        key = _local_key(name)
        keys, lines = self._keys, self._lines
        for i, k in enumerate(keys):
            if k == key:
                values = self._line_values(i)
                if values:
                    line = lines[i]
                    lines[i], self._values[i] = self._new_line(
                        key, line[: line.find(":")], [value, *values[1:]]
                    )
                    return
        raise KeyError(name)

    def _header_lines(self, key: str) -> list[str]:
        """The raw lines of header ``key`` (a key, not a name), for copying between messages."""
        return [line for k, line in zip(self._keys, self._lines, strict=True) if k == key]

    def _append_line(self, key: str, line: str) -> None:
        """Append a raw line taken from another message with :meth:`_header_lines`."""
        self._keys.append(key)
        self._lines.append(line)
        self._values.append(None)

    def set_body(self, body: bytes, content_type: str | None = None) -> None:
        """Replace the body and keep Content-Length (and Content-Type) in step."""
        self.body = body
        self["Content-Length"] = len(body)
        if content_type is not None:
            self["Content-Type"] = content_type

    def copy(self) -> Self:
        """An independent copy; header lines and their parsed values are shared."""
        new = object.__new__(type(self))
        new._keys = self._keys[:]
        new._lines = self._lines[:]
        new._values = self._values[:]
        new.body = self.body
        self._copy_start(new)
        return new

    def _copy_start(self, new: Any) -> None:
        raise NotImplementedError

    # -- serializing -----------------------------------------------------------

    @property
    def start_line(self) -> str:
        """The request line or status line."""
        raise NotImplementedError

    def __bytes__(self) -> bytes:
        lines = [self.start_line, *self._lines]
        if _CONTENT_LENGTH not in self._keys:
            # RFC 3261 §18.3: stream transports need Content-Length, so always write it.
            lines.append(f"Content-Length: {len(self.body)}")
        lines.append("\r\n")
        return "\r\n".join(lines).encode("utf-8", "surrogateescape") + self.body

    def __str__(self) -> str:
        return bytes(self).decode("utf-8", "replace")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message) or type(self) is not type(other):
            return NotImplemented
        return (
            self._start_key() == other._start_key()
            and list(self.raw_headers()) == list(other.raw_headers())
            and self.body == other.body
        )

    __hash__ = None  # type: ignore[assignment]

    def _start_key(self) -> tuple[object, ...]:
        raise NotImplementedError

    # -- full check ----------------------------------------------------------------

    def validate(self) -> None:
        """Parse every header and check what RFC 3261 requires of any message.

        Raises:
            ParseError: the first problem, with its line number and the status to answer.
        """
        line_no = 2
        for i, (key, line) in enumerate(zip(self._keys, self._lines, strict=True)):
            try:
                values = self._line_values(i)
            except ParseError as exc:
                raise ParseError(
                    f"bad {key} header: {exc.reason}", line=line_no, text=line, status=exc.status
                ) from None
            for value in values:
                if isinstance(value, Address) and not value.star:
                    try:
                        value.uri  # noqa: B018 - parsing is the check
                    except ParseError as exc:
                        raise ParseError(
                            f"bad {key} URI: {exc.reason}", line=line_no, text=line
                        ) from None
                elif isinstance(value, Text) and has_control(value.text):
                    raise ParseError(f"control character in {key}", line=line_no, text=line)
            line_no += line.count("\n") + 1
        # RFC 3261 §8.1.1: To, From, CSeq, Call-ID and Via are mandatory (RFC 4475 §3.3.1).
        for key in REQUIRED:
            if key not in self._keys:
                raise ParseError(f"missing {key} header")
        # RFC 3261 §7.3.1: these headers appear once (RFC 4475 §3.3.8).
        for key in SINGLE:
            if len(self._all(key)) > 1:
                raise ParseError(f"more than one {key} header")


class Request(Message):
    """A SIP request: ``method``, ``uri`` (the Request-URI) and headers."""

    __slots__ = ("_uri", "_uri_text", "method")

    method: str
    _uri: URI | None
    _uri_text: str

    def __init__(
        self,
        method: str,
        uri: URI | str,
        headers: list[tuple[str, object]] | None = None,
        body: bytes = b"",
    ) -> None:
        if not is_token(method):
            raise LocalProtocolError(f"bad method {method!r}")
        self.method = method
        self.uri = uri
        self._keys = []
        self._lines = []
        self._values = []
        self.body = body
        for name, value in headers or ():
            self.add(name, value)

    @property
    def uri(self) -> URI:
        """The Request-URI (parsed on first access)."""
        uri = self._uri
        if uri is None:
            uri = self._uri = parse_uri(self._uri_text)
        return uri

    @uri.setter
    def uri(self, value: URI | str) -> None:
        if isinstance(value, str):
            value = parse_uri(value)
        text = str(value)
        if has_control(text) or " " in text or "\t" in text or not text.isascii():
            raise LocalProtocolError(f"Request-URI {text!r} holds whitespace or controls")
        self._uri = value
        self._uri_text = text

    @property
    def start_line(self) -> str:
        return f"{self.method} {self._uri_text} SIP/2.0"

    def _copy_start(self, new: Any) -> None:
        new.method = self.method
        new._uri = self._uri
        new._uri_text = self._uri_text

    def _start_key(self) -> tuple[object, ...]:
        return (self.method, self._uri_text)

    def validate(self) -> None:
        try:
            uri = self.uri
        except ParseError as exc:
            raise ParseError(
                f"bad Request-URI: {exc.reason}", line=1, text=self._uri_text
            ) from None
        # RFC 3261 §19.1.1: headers are not allowed in a Request-URI (RFC 4475 §3.1.2.11).
        if uri.headers:
            raise ParseError("Request-URI must not carry headers", line=1, text=self._uri_text)
        super().validate()
        # RFC 3261 §8.1.1.5: the CSeq method matches the request method (RFC 4475 §3.1.2.17).
        if self.cseq.method != self.method:
            raise ParseError(f"CSeq method {self.cseq.method} does not match {self.method}")

    def __repr__(self) -> str:
        return f"<Request {self.method} {self._uri_text}>"


class Response(Message):
    """A SIP response: ``status``, ``reason`` and headers."""

    __slots__ = ("reason", "status")

    status: int
    reason: str

    def __init__(
        self,
        status: int,
        reason: str = "",
        headers: list[tuple[str, object]] | None = None,
        body: bytes = b"",
    ) -> None:
        if not 100 <= status <= 699:
            raise LocalProtocolError(f"status {status} is not 100-699")
        if has_control(reason) or not _encodable(reason):
            raise LocalProtocolError("reason phrase contains control characters or lone surrogates")
        self.status = status
        self.reason = reason
        self._keys = []
        self._lines = []
        self._values = []
        self.body = body
        for name, value in headers or ():
            self.add(name, value)

    @property
    def start_line(self) -> str:
        return f"SIP/2.0 {self.status} {self.reason}"

    @property
    def method(self) -> str:
        """The method of the request this answers (from CSeq)."""
        return self.cseq.method

    def validate(self) -> None:
        # RFC 3261 §25.1: Reason-Phrase holds no control characters but HTAB.
        if has_control(self.reason):
            raise ParseError("control character in the reason phrase", line=1, text=self.reason)
        super().validate()

    def _copy_start(self, new: Any) -> None:
        new.status = self.status
        new.reason = self.reason

    def _start_key(self) -> tuple[object, ...]:
        return (self.status, self.reason)

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason}>"


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return False
    return True


def _lookup_key(name: str) -> str:
    # A name that cannot be a header name is simply absent.
    try:
        return header_key(name)
    except ParseError:
        raise KeyError(name) from None


def _local_key(name: str) -> str:
    # Our own code names the header to change, so a bad name is our mistake.
    try:
        return header_key(name)
    except ParseError:
        raise LocalProtocolError(f"bad header name {name[:40]!r}") from None


# Parsers of whole header lines in their common shape (one value, no folds); they
# return None for anything else, which then takes the general path below.
_LINE_PARSERS: MappingProxyType[str, Callable[[str], HeaderValue | None]] = MappingProxyType(
    {
        "Via": parse_via_line,
        "From": parse_address_line,
        "To": parse_address_line,
        "Contact": parse_address_line,
        "Route": parse_address_line,
        "Record-Route": parse_address_line,
        "CSeq": parse_cseq_line,
        "Call-ID": parse_call_id_line,
        "Max-Forwards": parse_max_forwards_line,
    }
)


def _parse_line(line: str, key: str) -> list[HeaderValue]:
    """The values of header line ``line``, whose key is ``key``."""
    if key in _LINE_PARSERS:
        found = _LINE_PARSERS[key](line)
        if found is not None:
            return [found]
    colon = line.find(":")
    if colon <= 0:
        raise ParseError("header line without ':'", text=line)
    text = line[colon + 1 :]
    if "\n" in text:
        text = unfold(text)
    value = text.strip(" \t")
    if key in SINGLE_PARSERS:
        return [SINGLE_PARSERS[key](value)]
    # One list element with nothing that could hide a comma: no list splitting.
    if key in LIST_PARSERS and value and "," not in value and '"' not in value and "<" not in value:
        return [LIST_PARSERS[key](value)]
    return parse_values(key, text)


# -- parsing -------------------------------------------------------------------


def parse_message(data: bytes, *, max_size: int | None = None) -> Request | Response:
    """Parse one message received as a datagram (RFC 3261 §18.3 framing rules).

    The body is what Content-Length says; octets after it are ignored (RFC 4475
    §3.1.1.8). Without Content-Length the body is the rest of the datagram.

    Raises:
        ParseError: for any input that is not a SIP message; never anything else.
    """
    if max_size is not None and len(data) > max_size:
        # RFC 3261 §21.5.14: 513 Message Too Large, more than this server takes.
        raise ParseError(f"message of {len(data)} bytes exceeds {max_size}", status=513)
    # A datagram without a body ends with the empty line that closes its header
    # section: one split of the whole datagram finds that line and every other.
    if data[-4:] == b"\r\n\r\n":
        lines = data.decode("utf-8", "surrogateescape").split("\r\n")
        if lines.index("") == len(lines) - 2:
            del lines[-2:]
            body_start = len(data)
        else:
            lines, body_start, data = _header_lines(data)
    else:
        lines, body_start, data = _header_lines(data)
    # Every CR and LF of the header section must belong to a CRLF line end; with the
    # line ends cut out, one memchr each finds any other.
    joined = "".join(lines)
    if "\r" in joined or "\n" in joined:
        raise ParseError("bare CR or LF inside the header section")
    start = lines[0]
    del lines[0]
    # One subscript per line: the name as written maps straight to its key. A line
    # that misses (a continuation line, an unknown or oddly spelled name, no colon)
    # sends the whole header section down the careful path.
    try:
        keys = [SPELLINGS[line.partition(":")[0]] for line in lines]
    except KeyError:
        msg, lines, keys = _parse_careful(start, lines)
    else:
        # The common start lines inline: "SIP/2.0 200 OK" and "INVITE sip:... SIP/2.0".
        prefix = start[:12]
        if prefix in _STATUS_PREFIXES:
            msg = object.__new__(Response)
            msg.status = _STATUS_PREFIXES[prefix]
            msg.reason = start[12:]
        else:
            parts = start.split(" ")
            if len(parts) == 3 and parts[2] == "SIP/2.0" and parts[0] in _METHODS and parts[1]:
                msg = object.__new__(Request)
                msg.method, msg._uri_text, _ = parts
                msg._uri = None
            else:
                msg = _parse_start(start)
    msg._keys = keys
    msg._lines = lines
    msg._values = [None] * len(lines)
    lengths = keys.count(_CONTENT_LENGTH)
    if not lengths:
        # RFC 3261 §18.3: on a datagram without Content-Length the body runs to its end.
        msg.body = data[body_start:]
        return msg
    # The common cases inline: one Content-Length, 0 as usually written, or a few digits
    # that fit the datagram.
    if lengths == 1:
        line = lines[keys.index(_CONTENT_LENGTH)]
        if line == "Content-Length: 0":
            msg.body = b""
            return msg
        text = line.partition(":")[2].strip(" \t")
        if text.isdigit() and len(text) < 9 and text.isascii():
            length = int(text)
            if length <= len(data) - body_start:
                msg.body = data[body_start : body_start + length]
                return msg
    msg.body = _datagram_body(
        data, body_start, [ln for k, ln in zip(keys, lines, strict=True) if k == _CONTENT_LENGTH]
    )
    return msg


def _header_lines(data: bytes) -> tuple[list[str], int, bytes]:
    """The lines of the header section, where the body starts, and the data without
    leading CRLFs."""
    if data[:2] == b"\r\n":
        # RFC 3261 §7.5: ignore CRLFs before the start line.
        data = data.lstrip(b"\r\n")
    end = data.find(b"\r\n\r\n")
    if end >= 0:
        return data[:end].decode("utf-8", "surrogateescape").split("\r\n"), end + 4, data
    end = data.find(b"\n\n")
    if end < 0:
        raise ParseError("header section not terminated by an empty line")
    # DEVIATION RFC 3261 §7: bare-LF line ends are accepted (RFC 5118 archive bytes use them).
    head = (
        data[:end].replace(b"\r\n", b"\n").decode("utf-8", "surrogateescape").replace("\n", "\r\n")
    )
    return head.split("\r\n"), end + 2, data


def _parse_careful(start: str, lines: list[str]) -> tuple[Request | Response, list[str], list[str]]:
    # Folds are joined before anything else, so that errors name the folded line.
    if any(line[:1] in (" ", "\t") and line for line in lines):
        lines = _folded_lines([start, *lines])
        del lines[0]
    msg = _parse_start(start)
    key_of = SPELLINGS.get
    keys = [key_of(line.partition(":")[0]) or _slow_key(line, i) for i, line in enumerate(lines)]
    return msg, lines, keys


def _slow_key(line: str, index: int) -> str:
    colon = line.find(":")
    if colon <= 0:
        raise ParseError("header line without a name and ':'", line=index + 2, text=line)
    try:
        return header_key(line[:colon])
    except ParseError as exc:
        raise exc.at_line(index + 2, line) from None


def _folded_lines(raw_lines: list[str]) -> list[str]:
    # RFC 3261 §7.3.1: a line that starts with SP/HTAB continues the previous one.
    # Each header's pieces are joined once, so a long run of folds stays linear.
    lines: list[str] = []
    pieces: list[str] = []
    for number, line in enumerate(raw_lines, 1):
        if line[:1] in (" ", "\t") and line:
            if number <= 2:
                raise ParseError(
                    "continuation line before the first header", line=number, text=line
                )
            pieces.append(line)
        else:
            if pieces:
                lines.append("\r\n".join(pieces))
            pieces = [line]
    lines.append("\r\n".join(pieces))
    return lines


_METHODS = frozenset(
    {"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "SUBSCRIBE", "NOTIFY",
     "PUBLISH", "INFO", "REFER", "MESSAGE", "UPDATE"}
)  # fmt: skip


# RFC 3261 §7.2, §21: Status-Code is three digits, 1xx to 6xx; the text maps to the number.
_STATUS_CODES = MappingProxyType({str(code): code for code in range(100, 700)})
# "SIP/2.0 200 " (or "SIP/2.0 200" alone) -> 200: a status line's first twelve characters.
_STATUS_PREFIXES = MappingProxyType(
    {f"SIP/2.0 {code}{end}": code for code in range(100, 700) for end in (" ", "")}
)


def _parse_start(line: str) -> Request | Response:
    # The common shapes first: "SIP/2.0 200 OK" and "INVITE sip:... SIP/2.0".
    if line[:8] == "SIP/2.0 ":
        code = line[8:11]
        if code in _STATUS_CODES and line[11:12] in (" ", ""):
            response = object.__new__(Response)
            response.status = _STATUS_CODES[code]
            response.reason = line[12:]
            return response
        return _parse_status_line(line)
    method, _, rest = line.partition(" ")
    uri_text, _, version = rest.partition(" ")
    if version == "SIP/2.0" and uri_text and (method in _METHODS or is_token(method)):
        request = object.__new__(Request)
        request.method = method
        request._uri_text = uri_text
        request._uri = None
        return request
    if line.startswith("SIP/"):
        return _parse_status_line(line)
    parts = line.split(" ")
    # RFC 3261 §7.1: Method SP Request-URI SP SIP-Version, single spaces (RFC 4475 §3.1.2.9-10).
    if len(parts) != 3 or not all(parts):
        raise ParseError(_request_line_problem(line), line=1, text=line)
    method, uri_text, version = parts
    _check_version(version, line)
    if not is_token(method):
        raise ParseError(f"method {method[:30]!r} is not a token", line=1, text=line)
    request = object.__new__(Request)
    request.method = method
    request._uri = None
    request._uri_text = uri_text
    return request


def _request_line_problem(line: str) -> str:
    # Name what is wrong: RFC 4475 §3.1.2.8 (LWS in the URI), §3.1.2.9 (extra SP), §3.1.2.10.
    shape = "request line is not 'Method SP Request-URI SP SIP/2.0'"
    if line != line.rstrip(" \t"):
        return f"{shape}: whitespace after the SIP-Version"
    if "  " in line or "\t" in line:
        return f"{shape}: more than one SP between its elements"
    if line.count(" ") > 2:
        return f"{shape}: whitespace inside the Request-URI"
    return f"{shape}: missing element"


def _check_version(version: str, line: str) -> None:
    if version != "SIP/2.0" and version.upper() != "SIP/2.0":
        name, _, number = version.partition("/")
        major, dot, minor = number.partition(".")
        if name.upper() == "SIP" and dot and major.isdigit() and minor.isdigit():
            # RFC 3261 §21.5.6: 505 Version Not Supported (RFC 4475 §3.1.2.16).
            raise ParseError(f"SIP version {number} not supported", line=1, text=line, status=505)
        raise ParseError(f"bad SIP version {version[:20]!r}", line=1, text=line)


def _parse_status_line(line: str) -> Response:
    # RFC 3261 §7.2: SIP-Version SP Status-Code SP Reason-Phrase; the reason may be empty.
    version, _, rest = line.partition(" ")
    _check_version(version, line)
    code, sep, reason = rest[:3], rest[3:4], rest[4:]
    if not (code.isdigit() and code.isascii()) or sep not in (" ", ""):
        raise ParseError("status code must be three digits (RFC 3261 §7.2)", line=1, text=line)
    status = int(code)
    if not 100 <= status <= 699:
        # RFC 3261 §21: response classes run from 1xx to 6xx.
        raise ParseError(f"status code {status} is not 100-699", line=1, text=line)
    response = object.__new__(Response)
    response.status = status
    response.reason = reason
    return response


def _datagram_body(data: bytes, start: int, lengths: list[str]) -> bytes:
    texts = [line[line.find(":") + 1 :] for line in lengths]
    values = {unfold(text).strip(" \t") for text in texts}
    if len(values) > 1:
        # RFC 3261 §18.3 / RFC 4475 §3.3.9: conflicting Content-Length values cannot frame.
        raise ParseError("conflicting Content-Length headers")
    length = parse_uint(values.pop(), what="Content-Length")
    available = len(data) - start
    if length > available:
        # RFC 3261 §18.3: a datagram shorter than Content-Length is discarded (400 on UDP).
        raise ParseError(f"Content-Length {length} exceeds the {available} body bytes received")
    return data[start : start + length]
