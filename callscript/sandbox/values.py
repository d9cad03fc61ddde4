"""The plain values a script sees: URI, Header, EventTime, and how values print in log().

Each is immutable, cannot be subclassed by a script, and exposes only the names
listed in its ``PUBLIC`` entry (the attribute guard reads that table). Equality
and hashing are our own code; nothing here ever calls a method of a script's
object (values are told apart by exact type).
"""

from __future__ import annotations

import datetime
from typing import Any, NoReturn

from callscript.sandbox.guards import ScriptType, scrub
from callscript.sip.abnf import Params
from callscript.sip.address import parse_address, parse_contact
from callscript.sip.errors import LocalProtocolError, ParseError
from callscript.sip.uri import URI as SipURI
from callscript.sip.uri import parse_uri
from callscript.sip.via import parse_via

MAX_URI_TEXT = 4096
ADDRESS_HEADERS = frozenset(
    {
        "From", "To", "Contact", "Route", "Record-Route", "Reply-To", "Refer-To", "Referred-By",
        "P-Asserted-Identity", "Path", "Service-Route",
    }
)  # fmt: skip


class _Frozen:
    """Base of the script-facing values: no new attributes, no subclasses from scripts."""

    __slots__ = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        if isinstance(cls, ScriptType):
            raise TypeError("this API class cannot be subclassed")
        super().__init_subclass__(**kwargs)

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError("API values are read-only")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError("API values are read-only")


class URI(_Frozen):
    """A SIP URI as a script sees it: ``URI('sip:alice@example.com')``."""

    __slots__ = ("_uri",)
    _uri: SipURI

    def __init__(self, text: object) -> None:
        if type(text) is URI:
            object.__setattr__(self, "_uri", text._uri)
            return
        if type(text) is not str:
            raise TypeError("URI() takes a string such as 'sip:alice@example.com'")
        if len(text) > MAX_URI_TEXT or any(c <= " " or c == "\x7f" for c in text):
            raise ValueError("a URI must be short and free of spaces and control characters")
        try:
            uri = parse_uri(text)
        except ParseError:
            raise ValueError(f"not a valid URI: {text[:80]!r}") from None
        object.__setattr__(self, "_uri", uri)

    @classmethod
    def wrap(cls, uri: SipURI) -> URI:
        """A script URI for a URI our own code parsed."""
        new = cls.__new__(cls)
        object.__setattr__(new, "_uri", uri)
        return new

    @property
    def scheme(self) -> str:
        """``sip``, ``sips``, ``tel``..."""
        return self._uri.scheme

    @property
    def user(self) -> str | None:
        """The user part, or None."""
        return self._uri.user

    @property
    def host(self) -> str:
        """The host (IPv6 in brackets)."""
        return self._uri.host

    @property
    def port(self) -> int | None:
        """The explicit port, or None."""
        return self._uri.port

    @property
    def params(self) -> dict[str, str | None]:
        """The URI parameters, a fresh dict each time."""
        return dict(self._uri.params)

    @property
    def aor(self) -> str:
        """``sip:user@host``: the address-of-record form."""
        return self._uri.aor

    def __str__(self) -> str:
        return str(self._uri)

    def __repr__(self) -> str:
        return f"URI({str(self._uri)!r})"

    def __eq__(self, other: object) -> bool:
        if type(other) is URI:
            return self._uri == other._uri
        if type(other) is str:
            return self._uri == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._uri)


class Header(_Frozen):
    """One header value: ``.name``, ``.value``, and for addresses ``.uri``, ``.display``,
    ``.params``."""

    __slots__ = ("_name", "_parsed", "_value")
    _name: str
    _value: str
    _parsed: tuple[SipURI | None, str | None, Params] | None

    def __init__(self, name: str, value: str) -> None:
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_value", value)
        object.__setattr__(self, "_parsed", None)

    def _parts(self) -> tuple[SipURI | None, str | None, Params]:
        parsed = self._parsed
        if parsed is None:
            parsed = (None, None, Params())
            try:
                if self._name in ADDRESS_HEADERS:
                    parse = parse_contact if self._name == "Contact" else parse_address
                    address = parse(self._value)
                    if not address.star:
                        parsed = (address.uri, address.display, address.params)
                elif self._name == "Via":
                    parsed = (None, None, parse_via(self._value).params)
            except (ParseError, LocalProtocolError):
                pass
            object.__setattr__(self, "_parsed", parsed)
        return parsed

    @property
    def name(self) -> str:
        """The header's name (``From``)."""
        return self._name

    @property
    def value(self) -> str:
        """The value as received."""
        return self._value

    @property
    def uri(self) -> URI | None:
        """The URI of an address header (From, To, Contact...), else None."""
        uri = self._parts()[0]
        return URI.wrap(uri) if uri is not None else None

    @property
    def display(self) -> str | None:
        """The display name of an address header, else None."""
        return self._parts()[1]

    @property
    def params(self) -> dict[str, str | None]:
        """Header parameters (``tag``, ``branch``...), a fresh dict each time."""
        return dict(self._parts()[2])

    def __str__(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"<{self._name}: {self._value[:80]}>"

    def __eq__(self, other: object) -> bool:
        if type(other) is Header:
            return (self._name, self._value) == (other._name, other._value)
        if type(other) is str:
            return self._value == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._value)


class EventTime(_Frozen):
    """When the request arrived, in the owner's time zone."""

    __slots__ = ("_at",)
    _at: datetime.datetime

    def __init__(self, at: datetime.datetime) -> None:
        object.__setattr__(self, "_at", at)

    year = property(lambda self: self._at.year, doc="The year.")
    month = property(lambda self: self._at.month, doc="The month, 1-12.")
    day = property(lambda self: self._at.day, doc="The day of the month.")
    hour = property(lambda self: self._at.hour, doc="The hour, 0-23.")
    minute = property(lambda self: self._at.minute, doc="The minute.")
    second = property(lambda self: self._at.second, doc="The second.")
    weekday = property(lambda self: self._at.weekday(), doc="0 = Monday ... 6 = Sunday.")
    date = property(lambda self: self._at.date().isoformat(), doc="``YYYY-MM-DD``.")

    def __str__(self) -> str:
        return self._at.isoformat()

    def __repr__(self) -> str:
        return f"<time {self._at.isoformat()}>"


PUBLIC_VALUES = {
    URI: frozenset({"scheme", "user", "host", "port", "params", "aor"}),
    Header: frozenset({"name", "value", "uri", "display", "params"}),
    EventTime: frozenset({"year", "month", "day", "hour", "minute", "second", "weekday", "date"}),
}


def show(value: object, limit: int, depth: int = 0) -> str:
    """How ``value`` prints in a log line: plain values as Python shows them, API values
    with ``str()``, anything else as ``<Name object>``; never a script's own method."""
    kind = type(value)
    if kind is str:
        text: str = value if depth == 0 else repr(value)  # type: ignore[assignment]
    elif kind is bool or kind is float or value is None:
        text = repr(value)
    elif kind is int:
        try:
            text = repr(value)
        except ValueError:
            text = "<int too large to print>"
    elif kind is URI or kind is Header or kind is EventTime:
        text = str(value) if depth == 0 else repr(value)
    elif kind in (list, tuple, set, frozenset, dict):
        text = _show_container(value, limit, depth)
    elif kind is ScriptType or kind is type:
        text = f"<class {getattr(value, '__name__', '?')}>"
    else:
        text = f"<{kind.__name__} object>"
    return scrub(text[: limit + 1])


def _show_container(value: Any, limit: int, depth: int) -> str:
    kind = type(value)
    if depth >= 4:
        return "[...]" if kind is list else "{...}" if kind is dict else "(...)"
    parts: list[str] = []
    size = 0
    items = value.items() if kind is dict else value
    for item in items:
        if kind is dict:
            key, val = item
            part = f"{show(key, limit, depth + 1)}: {show(val, limit, depth + 1)}"
        else:
            part = show(item, limit, depth + 1)
        parts.append(part)
        size += len(part) + 2
        if size > limit:
            parts.append("...")
            break
    inner = ", ".join(parts)
    if kind is list:
        return f"[{inner}]"
    if kind is tuple:
        return f"({inner}{',' if len(parts) == 1 else ''})"
    if kind is dict:
        return "{" + inner + "}"
    return "{" + inner + "}" if parts else f"{kind.__name__}()"
