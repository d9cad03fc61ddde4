"""``name-addr`` / ``addr-spec`` header values: From, To, Contact, Route, Record-Route...

RFC 3261 §20.10 (Contact), §20.20 (From), §20.39 (To), §20.30/§20.34 (Record-Route,
Route), §25.1 (name-addr, addr-spec, display-name). RFC 4475 §3.1.1.6: no LWS
before ``<`` is accepted.
"""

from __future__ import annotations

import re

from callscript.sip.abnf import (
    SIMPLE_PARAMS,
    WSP,
    Params,
    check_param,
    checked_params,
    format_params,
    is_token,
    parse_params,
    quote,
    read_quoted,
    split_simple_params,
)
from callscript.sip.errors import LocalProtocolError, ParseError
from callscript.sip.uri import URI, parse_uri

_TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"
# The common shapes, ``"Name" <uri>;tag=x`` and ``<uri>;tag=x``, without LWS surprises.
_FAST = (
    rf'(?:"([^"\\]*+)" ?|({_TOKEN}+(?: {_TOKEN}+)*+) )?<([^<>\s"]++)>'
    rf"(?:;tag=({_TOKEN}+)|({SIMPLE_PARAMS}))"
)
# What a URI may hold to go inside '<...>': printable ASCII but SP and '>'.
_IN_ANGLES_RE = re.compile(r"[!-=?-~]+")
# A whole header line holding one such value: name, colon, LWS, value, LWS.
_LINE_RE = re.compile(rf"[^:]*+:[ \t]*+({_FAST})[ \t]*+")


class Address:
    """A display name, a URI and header parameters (``"Bob" <sip:bob@b.com>;tag=1``).

    Immutable; :meth:`with_params` and :meth:`replace` build changed copies.
    ``uri`` is parsed on first access so a proxy that only reads the tag pays
    nothing for it. A Contact of ``*`` is an Address with ``star`` true.
    """

    # ``tag`` is kept apart from ``params``, as the stack reads it for every message.
    # A parsed address whose only parameter is its tag keeps ``_params`` None;
    # ``params`` builds the Params the first time it is read.
    __slots__ = ("_params", "_text", "_uri", "_uri_text", "display", "star", "tag")

    display: str | None
    star: bool
    tag: str | None
    """The ``tag`` parameter (From/To), or ``None``."""
    _params: Params | None

    def __init__(
        self,
        uri: URI | str,
        display: str | None = None,
        params: Params | dict[str, str | None] | None = None,
    ) -> None:
        if isinstance(uri, str):
            # What parse_uri accepts holds no whitespace, control, '>' or non-ASCII character.
            uri = parse_uri(uri)
            uri_text = str(uri)
        else:
            uri_text = str(uri)
            if _IN_ANGLES_RE.fullmatch(uri_text) is None:
                raise LocalProtocolError(f"URI {uri_text!r} cannot go inside '<...>'")
        if display is not None and ("\r" in display or "\n" in display):
            raise LocalProtocolError("display name contains CR or LF")
        self._uri: URI | None = uri
        self._uri_text = uri_text
        self.display = display
        checked = self._params = checked_params(params)
        self.tag = dict.get(checked, "tag")
        self.star = False
        self._text: str | None = None

    @classmethod
    def parse(cls, text: str) -> Address:
        """Parse a ``name-addr`` or ``addr-spec`` followed by parameters.

        Raises:
            ParseError: a malformed value (RFC 4475 §3.1.2.6, §3.1.2.13-15 cases included).
        """
        return parse_address(text)

    @classmethod
    def any(cls) -> Address:
        """The ``Contact: *`` wildcard that removes all bindings (RFC 3261 §10.2.2)."""
        star = cls.__new__(cls)
        star._uri = None
        star._uri_text = "*"
        star.display = None
        star._params = Params()
        star.tag = None
        star.star = True
        star._text = "*"
        return star

    @property
    def uri(self) -> URI:
        """The address's URI (parsed on first access)."""
        uri = self._uri
        if uri is None:
            if self.star:
                raise LocalProtocolError("Contact: * has no URI")
            uri = self._uri = parse_uri(self._uri_text)
        return uri

    @property
    def params(self) -> Params:
        """The header parameters (``tag``, ``expires``, ``q``...)."""
        params = self._params
        if params is None:
            tag = self.tag
            params = self._params = Params() if tag is None else Params({"tag": tag})
        return params

    @property
    def value(self) -> str:
        """The value as it prints."""
        return str(self)

    def with_params(self, **changes: str | None) -> Address:
        """A copy with header parameters added or replaced (``with_params(tag='x')``).

        Raises:
            LocalProtocolError: a name or value that would not print as a parameter,
                or the address is ``Contact: *``.
        """
        if self.star:
            raise LocalProtocolError("Contact: * takes no parameters")
        params = dict(self.params)
        for name, value in changes.items():
            params[check_param(name, value)] = value
        # The URI and display name were checked when this address was made or parsed.
        addr = object.__new__(Address)
        addr._uri = self._uri
        addr._uri_text = self._uri_text
        addr.display = self.display
        addr._params = Params(params)
        addr.tag = params.get("tag")
        addr.star = False
        addr._text = None
        return addr

    def replace(self, *, uri: URI | None = None, display: str | None = None) -> Address:
        """A copy with another URI or display name."""
        return Address(
            uri or self.uri, display if display is not None else self.display, self.params
        )

    def __str__(self) -> str:
        text = self._text
        if text is None:
            out = ""
            if self.display is not None:
                out = (self.display if _plain_display(self.display) else quote(self.display)) + " "
            params = self._params
            if params is None:
                tail = "" if self.tag is None else f";tag={self.tag}"
            else:
                tail = format_params(params.items()) if params else ""
            text = self._text = f"{out}<{self._uri_text}>{tail}"
        return text

    def __repr__(self) -> str:
        return f"Address({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Address):
            return NotImplemented
        if self.star or other.star:
            return self.star == other.star
        return self.uri == other.uri and dict(self.params) == dict(other.params)

    def __hash__(self) -> int:
        return hash(("*",) if self.star else (self.uri, tuple(sorted(self.params))))


def _plain_display(display: str) -> bool:
    return bool(display) and all(is_token(word) for word in display.split(" "))


def parse_address(text: str) -> Address:
    """Parse one address value (see :class:`Address`)."""
    return parse_address_line(":" + text) or _parse_address_slow(text)


def parse_address_line(line: str) -> Address | None:
    """The address of a header line that holds one value in the common shape, else ``None``.

    ``None`` only means "not the common shape": the caller parses the line the general way.
    """
    match = _LINE_RE.fullmatch(line)
    if match is None:
        return None
    text, quoted, plain, uri_text, tag, param_text = match.groups()
    addr = object.__new__(Address)
    if param_text:
        params = split_simple_params(param_text)
        if params is None:
            return None
        addr._params = params
        addr.tag = dict.get(params, "tag")
    else:
        addr._params = None
        addr.tag = tag
    addr.display = quoted if quoted is not None else plain
    addr._uri = None
    addr._uri_text = uri_text
    addr.star = False
    addr._text = text
    return addr


def _parse_address_slow(original: str) -> Address:
    text = original.strip(WSP)
    display: str | None = None
    if text.startswith('"'):
        display, end = read_quoted(text, 0)
        rest = text[end:].lstrip(WSP)
        if not rest.startswith("<"):
            raise ParseError("quoted display name not followed by '<'", text=original)
        uri_text, rest = _angle(rest, original)
    else:
        lt = text.find("<")
        if 0 <= text.find('"') < lt:
            # The '<' sits in a quoted parameter value after a bare URI, not before one.
            lt = -1
        if lt >= 0:
            words = text[:lt].strip(WSP)
            # RFC 3261 §25.1: display-name = *(token LWS) / quoted-string (RFC 4475 §3.1.2.15).
            if words:
                for word in words.split():
                    if not is_token(word):
                        raise ParseError(
                            f"display name {words[:40]!r} must be quoted", text=original
                        )
                display = " ".join(words.split())
            uri_text, rest = _angle(text[lt:], original)
        else:
            # RFC 3261 §20: a bare URI ends at ';'; its parameters are header parameters.
            uri_text, semi, params_text = text.partition(";")
            uri_text = uri_text.rstrip(WSP)
            rest = semi + params_text
            if not uri_text:
                raise ParseError("empty address", text=original)
            # RFC 3261 §20: a URI with ',', '?' or ';' must be in '<>' (RFC 4475 §3.1.2.13).
            if "?" in uri_text or "," in uri_text:
                raise ParseError("a URI with '?' or ',' must be enclosed in '<>'", text=original)
    uri = parse_uri(uri_text)
    params = Params(parse_params(rest))
    addr = Address.__new__(Address)
    addr._uri = uri
    addr._uri_text = uri_text
    addr.display = display
    addr._params = params
    addr.tag = dict.get(params, "tag")
    addr.star = False
    addr._text = original.strip(WSP)
    return addr


def _angle(text: str, original: str) -> tuple[str, str]:
    close = text.find(">")
    if close < 0:
        raise ParseError("'<' without '>'", text=original)
    inner = text[1:close]
    # RFC 3261 §25.1: no LWS inside the angle brackets (RFC 4475 §3.1.2.14).
    if inner != inner.strip(WSP):
        raise ParseError("whitespace inside '<...>'", text=original)
    return inner, text[close + 1 :]


def parse_contact(text: str) -> Address:
    """Parse a Contact value: an address, or ``*`` (RFC 3261 §20.10)."""
    if text.strip(WSP) == "*":
        return Address.any()
    return parse_address(text)
