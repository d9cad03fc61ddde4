"""Header names and the typed values of the headers a SIP element reads.

RFC 3261 §7.3 (header fields, compact forms §7.3.3, lists §7.3.1), §20 (each
header), §25.1 (grammar). Header names compare case-insensitively; every
header has a *key*: its canonical spelling when known (``Call-ID``), else its
lower-cased name. Values are parsed on first access (see message.py).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from types import MappingProxyType

from callscript.sip.abnf import (
    WSP,
    Params,
    format_params,
    is_token,
    is_word,
    parse_params,
    read_quoted,
    skip_quoted,
    split_list,
    split_outside_quotes,
)
from callscript.sip.address import Address, parse_address, parse_contact
from callscript.sip.errors import LocalProtocolError, ParseError
from callscript.sip.via import Via, parse_via

# RFC 3261 §7.3.3 compact forms, plus those registered later (RFC 3265, 3515, 3892, 4028...).
COMPACT = MappingProxyType(
    {
        "a": "Accept-Contact", "b": "Referred-By", "c": "Content-Type", "d": "Request-Disposition",
        "e": "Content-Encoding", "f": "From", "i": "Call-ID", "j": "Reject-Contact",
        "k": "Supported", "l": "Content-Length", "m": "Contact", "n": "Identity-Info",
        "o": "Event", "r": "Refer-To", "s": "Subject", "t": "To", "u": "Allow-Events",
        "v": "Via", "x": "Session-Expires", "y": "Identity",
    }
)  # fmt: skip


_KNOWN = (
    "Accept", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow", "Authentication-Info",
    "Authorization", "Call-ID", "Call-Info", "Contact", "Content-Disposition", "Content-Encoding",
    "Content-Language", "Content-Length", "Content-Type", "CSeq", "Date", "Error-Info", "Expires",
    "From", "In-Reply-To", "Max-Forwards", "Min-Expires", "MIME-Version", "Organization",
    "Priority", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Require", "Record-Route",
    "Reply-To", "Require", "Retry-After", "Route", "Server", "Subject", "Supported", "Timestamp",
    "To", "Unsupported", "User-Agent", "Via", "Warning", "WWW-Authenticate", "Path",
    "Service-Route", "Event", "Allow-Events", "Subscription-State", "Refer-To", "Referred-By",
    "RSeq", "RAck", "Session-Expires", "Min-SE", "P-Asserted-Identity", "Privacy", "Reason",
    "Accept-Contact", "Reject-Contact", "Request-Disposition", "Identity", "Identity-Info",
)  # fmt: skip

KNOWN = tuple(sys.intern(name) for name in _KNOWN)
_BY_LOWER = {name.lower(): name for name in KNOWN}
_BY_LOWER.update({short: sys.intern(name) for short, name in COMPACT.items()})
# Exact spellings seen on the wire map straight to their key without lower-casing.
_SPELLINGS = {name: name for name in KNOWN}
_SPELLINGS.update(_BY_LOWER)
_SPELLINGS.update({short.upper(): name for short, name in _BY_LOWER.items() if len(short) == 1})
_SPELLINGS.update({"Call-Id": "Call-ID", "Cseq": "CSeq", "Www-Authenticate": "WWW-Authenticate"})
SPELLINGS = MappingProxyType({k: sys.intern(v) for k, v in _SPELLINGS.items()})
_BY_LOWER = MappingProxyType(_BY_LOWER)  # type: ignore[assignment]
del _SPELLINGS

# RFC 3261 §7.3.1: headers whose values are comma-separated lists.
LIST_HEADERS = frozenset(
    {
        "Accept", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow", "Call-Info",
        "Contact", "Content-Encoding", "Content-Language", "Error-Info", "In-Reply-To",
        "Proxy-Require", "Record-Route", "Require", "Route", "Supported", "Unsupported", "Via",
        "Warning", "Path", "Service-Route", "Allow-Events", "P-Asserted-Identity", "Reason",
        "Accept-Contact", "Reject-Contact",
    }
)  # fmt: skip
# RFC 3261 §7.3.1: repeated as whole lines, never split on commas (their values hold commas).
REPEATED_HEADERS = frozenset(
    {"Authorization", "Proxy-Authorization", "WWW-Authenticate", "Proxy-Authenticate"}
)
# Lists whose whole value may be empty (RFC 3261 §20.1, §20.37 ...: ``Supported:``).
EMPTY_OK = frozenset(
    {"Accept", "Accept-Encoding", "Accept-Language", "Allow", "Supported", "Unsupported"}
)


def header_key(name: str) -> str:
    """The key a header name is stored and looked up under (``v`` -> ``Via``).

    Raises:
        ParseError: the name is not a token.
    """
    key = SPELLINGS.get(name)
    if key is not None:
        return key
    stripped = name.strip(WSP)
    low = stripped.lower()
    key = _BY_LOWER.get(low)
    if key is not None:
        return key
    if not is_token(stripped):
        raise ParseError(f"bad header name {name[:40]!r}", text=name)
    return low


class Header:
    """Base of typed header values; every value prints back with ``str()``."""

    __slots__ = ()

    @property
    def value(self) -> object:
        """The plain value (an ``int``, a ``str``...)."""
        return str(self)


class Text(Header):
    """An unparsed or free-text value (unknown headers, Subject, User-Agent...)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    @property
    def value(self) -> str:
        return self.text

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Text({self.text!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            return self.text == other
        return isinstance(other, Text) and self.text == other.text

    def __hash__(self) -> int:
        return hash(self.text)


class Number(Header):
    """An unsigned integer value (Max-Forwards, Content-Length, Expires...)."""

    __slots__ = ("number",)

    def __init__(self, number: int) -> None:
        self.number = number

    @property
    def value(self) -> int:
        return self.number

    def __int__(self) -> int:
        return self.number

    def __str__(self) -> str:
        return str(self.number)

    def __repr__(self) -> str:
        return f"Number({self.number})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, int):
            return self.number == other
        return isinstance(other, Number) and self.number == other.number

    def __hash__(self) -> int:
        return hash(self.number)


class CSeq(Header):
    """``CSeq: 4711 INVITE`` (RFC 3261 §20.16)."""

    __slots__ = ("method", "number")

    def __init__(self, number: int, method: str) -> None:
        self.number = number
        self.method = method

    def __str__(self) -> str:
        return f"{self.number} {self.method}"

    def __repr__(self) -> str:
        return f"CSeq({self.number}, {self.method!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CSeq) and (self.number, self.method) == (
            other.number,
            other.method,
        )

    def __hash__(self) -> int:
        return hash((self.number, self.method))


class MediaType(Header):
    """``type/subtype;params`` (Content-Type §20.15, Accept §20.1 elements)."""

    __slots__ = ("params", "subtype", "type")

    def __init__(self, type: str, subtype: str, params: Params | None = None) -> None:
        self.type = type.lower()
        self.subtype = subtype.lower()
        self.params = params or Params()

    @property
    def mime(self) -> str:
        """``type/subtype`` in lower case."""
        return f"{self.type}/{self.subtype}"

    def __str__(self) -> str:
        return f"{self.type}/{self.subtype}{format_params(self.params.items())}"

    def __repr__(self) -> str:
        return f"MediaType({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MediaType) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))


class Auth(Header):
    """A challenge or credentials: ``Digest realm="x", nonce="y"`` (RFC 3261 §20.7, §22.4).

    ``params`` keeps values as written (quotes included); :meth:`get` unquotes.
    """

    __slots__ = ("params", "scheme")

    def __init__(self, scheme: str, params: Params) -> None:
        self.scheme = scheme
        self.params = params

    def get(self, name: str) -> str | None:
        """The unquoted value of auth-param ``name``, or ``None``."""
        value = self.params.get(name)
        if value is not None and value.startswith('"'):
            return read_quoted(value, 0)[0]
        return value

    def __str__(self) -> str:
        body = ", ".join(f"{k}={v}" if v is not None else k for k, v in self.params.items())
        return f"{self.scheme} {body}"

    def __repr__(self) -> str:
        return f"Auth({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Auth) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))


class Date(Header):
    """``Date: Sat, 13 Nov 2010 23:29:00 GMT`` (RFC 3261 §20.17, RFC 1123 in GMT only)."""

    __slots__ = ("moment", "text")

    def __init__(self, moment: datetime, text: str | None = None) -> None:
        self.moment = moment
        self.text = text or moment.strftime("%a, %d %b %Y %H:%M:%S GMT")

    @property
    def value(self) -> datetime:
        return self.moment

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Date({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Date) and self.moment == other.moment

    def __hash__(self) -> int:
        return hash(self.moment)


# -- parsers -------------------------------------------------------------------

_UINT32 = 2**32 - 1
_DATE_RE = re.compile(
    r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\d{2}) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"(\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT"
)
_WORD = r"[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+"
_CALL_ID_RE = re.compile(rf"{_WORD}(?:@{_WORD})?")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MEDIA_RE = re.compile(
    r"([A-Za-z0-9\-.!%*_+`'~]+)[ \t]*/[ \t]*([A-Za-z0-9\-.!%*_+`'~]+)[ \t]*(;.*)?", re.S
)
_WARNING_RE = re.compile(r"([0-9]{3}) ([^ ]+) (\".*\")", re.S)
_CSEQ_RE = re.compile(r"[ \t]*([0-9]+)[ \t]+([A-Za-z0-9\-.!%*_+`'~]+)[ \t]*")
# Whole header lines in their common shapes: name, colon, LWS, value, LWS.
_CSEQ_LINE_RE = re.compile(r"[^:]*+:[ \t]*+([0-9]{1,9})[ \t]++([A-Za-z0-9\-.!%*_+`'~]++)[ \t]*+")
_CALL_ID_LINE_RE = re.compile(rf"[^:]*+:[ \t]*+({_WORD}+(?:@{_WORD}+)?)[ \t]*+")
_SMALL_NUMBER_LINE_RE = re.compile(r"[^:]*+:[ \t]*+([0-9]{1,9})[ \t]*+")


def parse_uint(text: str, *, limit: int = _UINT32, what: str = "value") -> int:
    """Parse ``1*DIGIT`` up to ``limit`` without ever building a huge integer."""
    text = text.strip(WSP)
    digits = text.lstrip("0") or "0"
    if (
        not text.isdigit()
        or not text.isascii()
        or len(digits) > len(str(limit))
        or int(digits) > limit
    ):
        raise ParseError(f"bad {what} {text[:30]!r} (0 to {limit})", text=text)
    return int(digits)


def _number(limit: int, what: str) -> Callable[[str], Header]:
    def parse(text: str) -> Header:
        number = object.__new__(Number)
        # The common case, a few ASCII digits, without the general checks.
        if text.isdigit() and len(text) < 4 and text.isascii() and int(text) <= limit:
            number.number = int(text)
        else:
            number.number = parse_uint(text, limit=limit, what=what)
        return number

    return parse


# Methods of RFC 3261 and its extensions: a CSeq naming one needs no token check.
_METHODS = frozenset(
    {"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "SUBSCRIBE", "NOTIFY",
     "PUBLISH", "INFO", "REFER", "MESSAGE", "UPDATE"}
)  # fmt: skip


def parse_cseq(text: str) -> CSeq:
    """RFC 3261 §20.16: ``1*DIGIT LWS Method``; the number fits in 32 bits."""
    number_text, _, method = text.partition(" ")
    digits = number_text.isdigit() and number_text.isascii()
    if digits and len(number_text) < 10 and method in _METHODS:
        cseq = object.__new__(CSeq)
        cseq.number = int(number_text)
        cseq.method = method
        return cseq
    match = _CSEQ_RE.fullmatch(text)
    if match is None:
        raise ParseError(f"malformed CSeq {text[:40]!r}", text=text)
    number, method = match.groups()
    if len(number) < 10:
        return CSeq(int(number), method)
    # RFC 3261 §8.1.1.5: the sequence number is a 32-bit unsigned integer (RFC 4475 §3.1.2.4).
    return CSeq(parse_uint(number, what="CSeq number"), method)


def parse_cseq_line(line: str) -> CSeq | None:
    """The CSeq of a header line in the common shape, else ``None`` (parse it the general way)."""
    match = _CSEQ_LINE_RE.fullmatch(line)
    if match is None:
        return None
    cseq = object.__new__(CSeq)
    number, cseq.method = match.groups()
    cseq.number = int(number)  # nine digits at most: always within 32 bits
    return cseq


def parse_call_id_line(line: str) -> Text | None:
    """The Call-ID of a header line in the common shape, else ``None``."""
    match = _CALL_ID_LINE_RE.fullmatch(line)
    if match is None:
        return None
    call_id = object.__new__(Text)
    call_id.text = match.group(1)
    return call_id


def parse_max_forwards_line(line: str) -> Number | None:
    """The Max-Forwards of a header line in the common shape, else ``None``."""
    match = _SMALL_NUMBER_LINE_RE.fullmatch(line)
    if match is None:
        return None
    hops = int(match.group(1))
    # RFC 3261 §20.22: Max-Forwards is 0-255; other values take the general path's error.
    if hops > 255:
        return None
    number = object.__new__(Number)
    number.number = hops
    return number


def parse_call_id(text: str) -> Text:
    """RFC 3261 §20.8: ``word [ "@" word ]``."""
    value = text.strip(WSP)
    if _CALL_ID_RE.fullmatch(value) is not None:
        call_id = object.__new__(Text)
        call_id.text = value
        return call_id
    local, at, host = value.partition("@")
    if not is_word(local) or (at and not is_word(host)):
        raise ParseError(f"malformed Call-ID {value[:40]!r}", text=text)
    return Text(value)


def parse_token(text: str) -> Text:
    """A single token value (Allow, Supported, Require... elements)."""
    value = text.strip(WSP)
    if not is_token(value):
        raise ParseError(f"expected a token, got {value[:40]!r}", text=text)
    return Text(value)


def parse_media_type(text: str) -> MediaType:
    """RFC 3261 §20.15: ``m-type SLASH m-subtype *(SEMI m-parameter)``."""
    match = _MEDIA_RE.fullmatch(text.strip(WSP))
    if match is None:
        raise ParseError(f"malformed media type {text[:40]!r}", text=text)
    return MediaType(match.group(1), match.group(2), Params(parse_params(match.group(3) or "")))


def parse_auth(text: str) -> Auth:
    """RFC 3261 §25.1: ``auth-scheme LWS auth-param *(COMMA auth-param)``, any scheme."""
    value = text.strip(WSP)
    # RFC 3261 §25.1: LWS (SP or HTAB) separates the scheme from the parameters.
    cut = next((i for i, ch in enumerate(value) if ch in WSP), len(value))
    scheme, rest = value[:cut], value[cut:]
    if not is_token(scheme):
        raise ParseError(f"bad auth scheme {scheme[:30]!r}", text=text)
    params: list[tuple[str, str | None]] = []
    rest = rest.strip(WSP)
    if rest:
        for chunk in split_outside_quotes(rest, ","):
            name, eq, val = chunk.partition("=")
            name, val = name.strip(WSP), val.strip(WSP)
            if not is_token(name) or not eq or not val:
                raise ParseError(f"bad auth-param {chunk.strip()[:30]!r}", text=text)
            if val.startswith('"'):
                if skip_quoted(val, 0) != len(val):
                    raise ParseError(f"bad quoted auth-param {val[:30]!r}", text=text)
            elif not is_token(val):
                raise ParseError(f"bad auth-param value {val[:30]!r}", text=text)
            params.append((name.lower(), val))
    return Auth(scheme, Params(params))


def parse_date(text: str) -> Date:
    """RFC 3261 §20.17: an RFC 1123 date in GMT (RFC 4475 §3.1.2.12 rejects ``EST``)."""
    value = text.strip(WSP)
    match = _DATE_RE.fullmatch(value)
    if match is None:
        raise ParseError(f"bad Date {value[:40]!r} (RFC 1123 in GMT)", text=text)
    _, day, month, year, hh, mm, ss = match.groups()
    try:
        moment = datetime(
            int(year),
            _MONTHS.index(month) + 1,
            int(day),
            int(hh),
            int(mm),
            int(ss),
            tzinfo=UTC,
        )
    except ValueError as exc:
        raise ParseError(f"bad Date {value[:40]!r}: {exc}", text=text) from None
    return Date(moment, value)


def parse_warning(text: str) -> Text:
    """RFC 3261 §20.43: ``warn-code SP warn-agent SP warn-text`` (3-digit code)."""
    value = text.strip(WSP)
    match = _WARNING_RE.fullmatch(value)
    if match is None:
        raise ParseError(f"malformed Warning {value[:40]!r}", text=text)
    read_quoted(match.group(3), 0)
    return Text(value)


def parse_retry_after(text: str) -> Number:
    """RFC 3261 §20.33: ``delta-seconds [ comment ] *( SEMI retry-param )``."""
    value = text.strip(WSP)
    digits = re.match(r"\d+", value)
    if digits is None:
        raise ParseError(f"malformed Retry-After {value[:40]!r}", text=text)
    return Number(parse_uint(digits.group(0), what="Retry-After"))


def parse_text(text: str) -> Text:
    """Any value, kept as written (LWS trimmed)."""
    return Text(text.strip(WSP))


PARSERS: MappingProxyType[str, Callable[[str], Header | Address | Via]] = MappingProxyType(
    {
        "Via": parse_via,
        "From": parse_address,
        "To": parse_address,
        "Contact": parse_contact,
        "Route": parse_address,
        "Record-Route": parse_address,
        "Path": parse_address,
        "Service-Route": parse_address,
        "Reply-To": parse_address,
        "Refer-To": parse_address,
        "Referred-By": parse_address,
        "P-Asserted-Identity": parse_address,
        "Call-ID": parse_call_id,
        "CSeq": parse_cseq,
        # RFC 3261 §20.22: Max-Forwards is 0-255 (RFC 4475 §3.1.2.4).
        "Max-Forwards": _number(255, "Max-Forwards"),
        "Content-Length": _number(_UINT32, "Content-Length"),
        "Expires": _number(_UINT32, "Expires"),
        "Min-Expires": _number(_UINT32, "Min-Expires"),
        "RSeq": _number(_UINT32, "RSeq"),
        "Retry-After": parse_retry_after,
        "Content-Type": parse_media_type,
        "Accept": parse_media_type,
        "Allow": parse_token,
        "Supported": parse_token,
        "Require": parse_token,
        "Proxy-Require": parse_token,
        "Unsupported": parse_token,
        "Content-Encoding": parse_token,
        "Allow-Events": parse_token,
        "Authorization": parse_auth,
        "Proxy-Authorization": parse_auth,
        "WWW-Authenticate": parse_auth,
        "Proxy-Authenticate": parse_auth,
        "Date": parse_date,
        "Warning": parse_warning,
    }
)

HeaderValue = Header | Address | Via
# Headers whose values are addresses (Contact may also be '*').
ADDRESS_HEADERS = frozenset(
    key for key, parser in PARSERS.items() if parser in (parse_address, parse_contact)
)
# Headers whose value is one unsigned number, with its largest value.
NUMBER_LIMITS = MappingProxyType(
    {
        "Max-Forwards": 255,
        "Content-Length": _UINT32,
        "Expires": _UINT32,
        "Min-Expires": _UINT32,
        "RSeq": _UINT32,
    }
)
# Parsers of the headers that hold exactly one value per line: the hot path skips list splitting.
SINGLE_PARSERS = MappingProxyType(
    {key: parser for key, parser in PARSERS.items() if key not in LIST_HEADERS}
)
# The element parser of every list header.
LIST_PARSERS = MappingProxyType({key: PARSERS.get(key, parse_text) for key in LIST_HEADERS})


def parse_values(key: str, text: str) -> list[HeaderValue]:
    """Parse the value text of one header line into its values (one, or a list).

    Raises:
        ParseError: a malformed value or list element.
    """
    parser = PARSERS.get(key, parse_text)
    if key in LIST_HEADERS:
        if "," not in text and '"' not in text and "<" not in text:
            # One element and nothing that could hide a comma: no list splitting.
            value = text.strip(WSP)
            if value:
                return [parser(value)]
        parts = split_list(text)
        if len(parts) == 1 and not parts[0]:
            if key in EMPTY_OK:
                return []
            raise ParseError(f"empty {key}", text=text)
        if "" in parts:
            # RFC 3261 §7.3.1: list elements are never empty (RFC 4475 §3.1.2.1).
            raise ParseError(f"empty element in {key} list", text=text)
        return [parser(part) for part in parts]
    return [parser(text.strip(WSP))]


def make_value(key: str, value: object) -> HeaderValue:
    """Turn what a caller hands to ``msg[key] = value`` into a typed value.

    A ``str`` or ``int`` is parsed as the header's value; a typed value must be
    of the type the header holds (a :class:`Via` for Via, an :class:`Address`
    for From...) and print as one valid value.

    Raises:
        LocalProtocolError: the value would not print as one valid header value.
    """
    # The common cases first: our own Via or address for its header, a number in range.
    if type(value) is Via:
        if key == "Via":
            return value
    elif type(value) is Address:
        if key in ADDRESS_HEADERS and (key == "Contact" or not value.star):
            return value
    elif type(value) is int and key in NUMBER_LIMITS and 0 <= value <= NUMBER_LIMITS[key]:
        number = object.__new__(Number)
        number.number = value
        return number
    parser = PARSERS.get(key, parse_text)
    if isinstance(value, Via | Address):
        # Their constructors check every part, so only the type is left to check.
        wanted = parse_via if isinstance(value, Via) else parse_address
        if parser is not wanted and not (parser is parse_contact and wanted is parse_address):
            raise LocalProtocolError(f"a {type(value).__name__} is not a {key} value")
        if isinstance(value, Address) and value.star and parser is not parse_contact:
            raise LocalProtocolError(f"'*' is not a {key} value")
        return value
    if isinstance(value, Header):
        text = str(value)
    elif isinstance(value, bool) or not isinstance(value, int | str):
        raise LocalProtocolError(f"cannot use {type(value).__name__} as a {key} value")
    else:
        text = str(value)
    if "\r" in text or "\n" in text or "\x00" in text:
        raise LocalProtocolError(f"{key} value contains CR, LF or NUL")
    try:
        text.encode("utf-8", "surrogateescape")
        values = parse_values(key, text)
    except (ParseError, UnicodeEncodeError) as exc:
        reason = exc.reason if isinstance(exc, ParseError) else "not encodable as UTF-8"
        raise LocalProtocolError(f"bad {key} value {text[:40]!r}: {reason}") from None
    if len(values) != 1:
        raise LocalProtocolError(f"{key} value must be exactly one value")
    if isinstance(value, Header) and type(values[0]) is not type(value):
        raise LocalProtocolError(f"a {type(value).__name__} is not a {key} value")
    # The value as parsed from its text, so that it reads the same as after a re-parse.
    return values[0]
