"""SIP, SIPS and TEL URIs, and any other absolute URI kept as opaque text.

RFC 3261 §19.1 (SIP and SIPS URI components), §19.1.4 (URI comparison),
§25.1 (grammar); RFC 3966 (tel); RFC 5118 / RFC 5954 (IPv6 references).

A :class:`URI` is immutable: it prints back exactly as it was parsed, and
:meth:`URI.replace` builds a changed copy.
"""

from __future__ import annotations

import ipaddress
import re
from typing import cast

from callscript.sip.abnf import (
    Params,
    format_params,
    has_control,
    normalize_escapes,
    unescape,
)
from callscript.sip.errors import LocalProtocolError, ParseError

_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")
# RFC 3261 §25.1: user = 1*( unreserved / escaped / user-unreserved )
_USER_RE = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()&=+$,;?/]|%[0-9A-Fa-f]{2})+")
# RFC 3261 §25.1: password = *( unreserved / escaped / "&" / "=" / "+" / "$" / "," )
_PASSWORD_RE = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()&=+$,]|%[0-9A-Fa-f]{2})*")
# RFC 3261 §25.1: hostname = *( domainlabel "." ) toplabel [ "." ], and a toplabel
# starts with a letter, so "192.0.2.300" is a bad IPv4 address, not a host name.
# A label is runs of alphanumerics joined by runs of hyphens; the possessive runs never
# give characters back, since what follows a run can only be '-', '.' or the end.
HOSTNAME = (
    r"(?:[A-Za-z0-9]++(?:-++[A-Za-z0-9]++)*+\.)*"
    r"[A-Za-z][A-Za-z0-9]*+(?:-++[A-Za-z0-9]++)*+\.?"
)
# RFC 3261 §25.1: IPv4address = 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT (each 0-255).
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|[01]?[0-9]?[0-9])"
IPV4 = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
# The alphabet of an IPv6 reference; is_ipv6_reference() checks the address itself.
IPV6_REFERENCE = r"\[[0-9A-Fa-f:.]+\]"
# host = hostname / IPv4address in the order that is cheaper to try: a dotted quad fails
# at once on a name, while a name pattern backtracks through every label of an address.
HOST = rf"{IPV4}(?![A-Za-z0-9.\-])|{HOSTNAME}"
HOST_RE = re.compile(HOST)
IPV4_RE = re.compile(IPV4)
# A dotted quad as ipaddress reads it: no leading zeros.
_CANONICAL_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4_CANONICAL_RE = re.compile(rf"{_CANONICAL_OCTET}(?:\.{_CANONICAL_OCTET}){{3}}")
_IPV6_RE = re.compile(IPV6_REFERENCE)
# RFC 3261 §25.1: paramchar = param-unreserved / unreserved / escaped
_PARAMCHARS_RE = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()\[\]/:&+$]|%[0-9A-Fa-f]{2})+")
# RFC 3261 §25.1: hname / hvalue = 1*( hnv-unreserved / unreserved / escaped )
_HCHARS_RE = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()\[\]/?:+$]|%[0-9A-Fa-f]{2})*")
# RFC 3966 §3: the characters of a tel URI's number and parameters.
_TEL_RE = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()\[\]/:&+$=;]|%[0-9A-Fa-f]{2})+")
_OPAQUE_RE = re.compile(r"[A-Za-z0-9\-_.!~*'()%;?:@&=+$,/\[\]#]+")

DEFAULT_PORTS = {"sip": 5060, "sips": 5061}
# RFC 3261 §19.1.4: these parameters must match when either URI has them.
_STRICT_PARAMS = ("user", "ttl", "method", "maddr", "transport")


class URI:
    """An absolute URI; SIP, SIPS and TEL ones are parsed into their parts.

    Attributes:
        scheme: lower-cased scheme (``sip``, ``sips``, ``tel`` or another).
        user: user part as written (escapes kept), or ``None``; a tel number.
        password: password as written, or ``None``.
        host: host as written (IPv6 with brackets), ``""`` for tel/opaque URIs.
        port: explicit port or ``None``.
        params: URI parameters (``;transport=tcp;lr``).
        headers: URI headers (``?subject=hi``), names and values as written.
        opaque: for schemes other than sip/sips/tel, the text after ``scheme:``.
    """

    __slots__ = (
        "_text",
        "headers",
        "host",
        "opaque",
        "params",
        "password",
        "port",
        "scheme",
        "user",
    )

    scheme: str
    user: str | None
    password: str | None
    host: str
    port: int | None
    params: Params
    headers: tuple[tuple[str, str], ...]
    opaque: str
    _text: str | None

    def __init__(
        self,
        scheme: str = "sip",
        *,
        user: str | None = None,
        password: str | None = None,
        host: str = "",
        port: int | None = None,
        params: Params | dict[str, str | None] | None = None,
        headers: tuple[tuple[str, str], ...] = (),
        opaque: str = "",
    ) -> None:
        self.scheme = scheme.lower()
        self.user = user
        self.password = password
        self.host = host
        self.port = port
        self.params = params if isinstance(params, Params) else Params(params or {})
        self.headers = headers
        self.opaque = opaque
        self._text = None

    # -- parsing -----------------------------------------------------------

    @classmethod
    def parse(cls, text: str) -> URI:
        """Parse an absolute URI.

        Raises:
            ParseError: the text is not a valid URI of its scheme.
        """
        return parse_uri(text)

    # -- views -------------------------------------------------------------

    @property
    def is_sip(self) -> bool:
        """True for ``sip:`` and ``sips:`` URIs."""
        return self.scheme == "sip" or self.scheme == "sips"

    @property
    def secure(self) -> bool:
        """True for ``sips:`` URIs."""
        return self.scheme == "sips"

    @property
    def transport(self) -> str | None:
        """The ``transport`` parameter, lower-cased, or ``None``."""
        value = self.params.get("transport")
        return value.lower() if value else None

    @property
    def lr(self) -> bool:
        """True when the URI carries the loose-routing ``lr`` parameter (RFC 3261 §19.1.1)."""
        return "lr" in self.params

    @property
    def maddr(self) -> str | None:
        """The ``maddr`` parameter, or ``None``."""
        return self.params.get("maddr")

    @property
    def host_key(self) -> str:
        """The host as compared: lower-case, IPv6 brackets kept."""
        return self.host.lower()

    @property
    def aor(self) -> str:
        """``scheme:user@host`` without port, parameters or headers: the address of record key."""
        user = unescape(self.user) if self.user is not None else None
        if not self.is_sip:
            return str(self) if self.scheme != "tel" else f"tel:{self.user}"
        return (
            f"{self.scheme}:{user}@{self.host.lower()}"
            if user
            else f"{self.scheme}:{self.host.lower()}"
        )

    def replace(self, **changes: object) -> URI:
        """A copy with the given attributes changed (``host=``, ``port=``, ``params=``...)."""
        new = URI.__new__(URI)
        for name in URI.__slots__:
            if name != "_text":
                setattr(new, name, getattr(self, name))
        for name, value in changes.items():
            if name not in URI.__slots__ or name == "_text":
                raise TypeError(f"URI has no attribute {name!r}")
            if name == "scheme" and isinstance(value, str):
                value = value.lower()
            if name == "params" and not isinstance(value, Params):
                value = Params(cast(dict[str, str | None], value))
            setattr(new, name, value)
        text = new._format()
        # A changed URI must still print as one URI: no CR/LF, SP or controls anywhere.
        if has_control(text) or " " in text or "\t" in text or not text.isascii():
            raise LocalProtocolError(
                f"URI would contain whitespace, controls or non-ASCII: {text!r}"
            )
        new._text = text
        return new

    def with_params(self, **changes: str | None) -> URI:
        """A copy with URI parameters added or replaced."""
        return self.replace(params=self.params.replace(**changes))

    def without_params(self, *names: str) -> URI:
        """A copy without the named URI parameters."""
        return self.replace(params=self.params.without(*names))

    # -- printing ----------------------------------------------------------

    def __str__(self) -> str:
        text = self._text
        if text is None:
            text = self._text = self._format()
        return text

    def _format(self) -> str:
        if self.scheme == "tel":
            return f"tel:{self.user}{format_params(self.params.items())}"
        if not self.is_sip:
            return f"{self.scheme}:{self.opaque}"
        if self.user is None:
            userinfo = ""
        elif self.password is None:
            userinfo = f"{self.user}@"
        else:
            userinfo = f"{self.user}:{self.password}@"
        port = "" if self.port is None else f":{self.port}"
        params = format_params(self.params.items()) if self.params else ""
        headers = "?" + "&".join([f"{k}={v}" for k, v in self.headers]) if self.headers else ""
        return f"{self.scheme}:{userinfo}{self.host}{port}{params}{headers}"

    def __repr__(self) -> str:
        return f"URI({str(self)!r})"

    # -- comparison (RFC 3261 §19.1.4) -----------------------------------------

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            try:
                other = parse_uri(other)
            except ParseError:
                return False
        if not isinstance(other, URI):
            return NotImplemented
        return uri_equal(self, other)

    def __hash__(self) -> int:
        # Only what equal URIs always share: parameters may differ between equal URIs.
        if self.is_sip:
            return hash((self.scheme, _normal(self.user), self.host.lower(), self.port))
        if self.scheme == "tel":
            return hash((self.scheme, _tel_key(self)))
        return hash((self.scheme, normalize_escapes(self.opaque)))


def uri_equal(a: URI, b: URI) -> bool:
    """RFC 3261 §19.1.4: whether two URIs are equivalent (RFC 3966 §4 for tel)."""
    if a.scheme != b.scheme:
        # RFC 3261 §19.1.4: a SIP and a SIPS URI are never equivalent.
        return False
    if not a.is_sip:
        if a.scheme == "tel":
            return _tel_key(a) == _tel_key(b) and _tel_params(a) == _tel_params(b)
        return normalize_escapes(a.opaque) == normalize_escapes(b.opaque)
    # RFC 3261 §19.1.4: userinfo compares case-sensitively, unreserved escapes decoded.
    if _normal(a.user) != _normal(b.user) or _normal(a.password) != _normal(b.password):
        return False
    # RFC 3261 §19.1.4: host compares case-insensitively; an omitted port differs from 5060.
    if a.host.lower() != b.host.lower() or a.port != b.port:
        return False
    if not _params_equal(_param_map(a.params), _param_map(b.params)):
        return False
    # RFC 3261 §19.1.4: header components are never ignored; every one must match.
    return _headers_key(a) == _headers_key(b)


def _normal(text: str | None) -> str | None:
    return None if text is None else normalize_escapes(text)


def _tel_key(uri: URI) -> str:
    # RFC 3966 §4: visual separators do not count when comparing numbers.
    return re.sub(r"[\-.()]", "", unescape(uri.user or "")).lower()


def _tel_params(uri: URI) -> dict[str, str | None]:
    # RFC 3966 §4: every parameter must be in both; values compare case-insensitively.
    return _param_map(uri.params)


def _param_map(params: Params) -> dict[str, str | None]:
    # Names and values as compared: unreserved escapes decoded, case folded.
    return {
        normalize_escapes(name).lower(): None if value is None else normalize_escapes(value).lower()
        for name, value in params.items()
    }


def _params_equal(a: dict[str, str | None], b: dict[str, str | None]) -> bool:
    # RFC 3261 §19.1.4: user/ttl/method/maddr/transport must match when either has them;
    # other parameters must match only when both have them.
    for name in _STRICT_PARAMS:
        if (name in a) != (name in b):
            return False
    return all(b[name] == value for name, value in a.items() if name in b)


def _headers_key(uri: URI) -> list[tuple[str, str]]:
    return sorted((normalize_escapes(k).lower(), normalize_escapes(v)) for k, v in uri.headers)


# -- parsing -----------------------------------------------------------------


# The common shape of a SIP URI: lower-case scheme, user and parameters without escapes,
# a host name or IPv4 address, no password, no headers. Anything else takes the
# general path below, which accepts (or names the fault in) every form of §25.1.
_PARAMCHAR = r"[A-Za-z0-9\-_.!~*'()\[\]/:&+$]"
_SIP_FAST_RE = re.compile(
    rf"(sips?):(?:([A-Za-z0-9\-_.!~*'()&=+$,;?/]++)@)?({HOST})"
    rf"(?::([0-9]{{1,5}}))?((?:;{_PARAMCHAR}++(?:={_PARAMCHAR}++)?)*+)"
)


def parse_uri(text: str) -> URI:
    """Parse an absolute URI (RFC 3261 §19.1 for sip/sips, RFC 3966 for tel).

    Raises:
        ParseError: what is wrong and the text it was found in.
    """
    match = _SIP_FAST_RE.fullmatch(text)
    if match is not None:
        scheme, user, host, port, param_text = match.groups()
        if port is None or int(port) <= 65535:
            uri = object.__new__(URI)
            uri.scheme = scheme
            uri.user = user
            uri.password = None
            uri.host = host
            uri.port = None if port is None else int(port)
            uri.params = _split_uri_params(param_text) if param_text else Params()
            uri.headers = ()
            uri.opaque = ""
            uri._text = text
            return uri
    if has_control(text) or " " in text or "\t" in text:
        raise ParseError("URI contains whitespace or control characters", text=text)
    scheme, colon, rest = text.partition(":")
    if not colon or not _SCHEME_RE.fullmatch(scheme):
        raise ParseError(f"not an absolute URI: {text[:40]!r}", text=text)
    low = scheme.lower()
    if low == "sip" or low == "sips":
        uri = _parse_sip(low, rest, text)
    elif low == "tel":
        uri = _parse_tel(rest, text)
    else:
        if not rest or not _OPAQUE_RE.fullmatch(rest):
            raise ParseError(f"bad {scheme!r} URI", text=text)
        uri = URI(low, opaque=rest)
    uri._text = text
    return uri


def _parse_sip(scheme: str, rest: str, text: str) -> URI:
    user = password = None
    at = rest.find("@")
    if at >= 0:
        userinfo, rest = rest[:at], rest[at + 1 :]
        user, colon, pw = userinfo.partition(":")
        # RFC 3261 §19.1.1: the user part may not be empty when '@' is present.
        if not _USER_RE.fullmatch(user):
            raise ParseError(f"bad user part in {text[:60]!r}", text=text)
        if colon:
            if not _PASSWORD_RE.fullmatch(pw):
                raise ParseError(f"bad password in {text[:60]!r}", text=text)
            password = pw
    hostport, qmark, header_text = rest.partition("?")
    hostport, semi, param_text = hostport.partition(";")
    host, port = _parse_hostport(hostport, text)
    params = Params()
    if semi:
        params = Params(_parse_uri_params(param_text, text))
    headers: tuple[tuple[str, str], ...] = ()
    if qmark:
        headers = _parse_uri_headers(header_text, text)
    return URI(
        scheme, user=user, password=password, host=host, port=port, params=params, headers=headers
    )


def _parse_hostport(hostport: str, text: str) -> tuple[str, int | None]:
    if hostport.startswith("["):
        close = hostport.find("]")
        host, after = hostport[: close + 1], hostport[close + 1 :]
        if close < 0 or not is_ipv6_reference(host):
            raise ParseError(f"bad IPv6 reference in {text[:60]!r}", text=text)
        port_text = after[1:] if after.startswith(":") else None
        if after and port_text is None:
            raise ParseError(f"junk after IPv6 reference in {text[:60]!r}", text=text)
    else:
        host, colon, port_text_ = hostport.partition(":")
        port_text = port_text_ if colon else None
        if ":" in port_text_ and isinstance(ip_literal(hostport), ipaddress.IPv6Address):
            # RFC 5118 §4.2: an IPv6 address in a URI must be enclosed in '[' and ']'.
            raise ParseError(f"IPv6 address without '[ ]' in {text[:60]!r}", text=text)
        if not HOST_RE.fullmatch(host):
            raise ParseError(f"bad host {host[:40]!r} in {text[:60]!r}", text=text)
    port = None
    if port_text is not None:
        # RFC 3261 §25.1: port = 1*DIGIT; a TCP/UDP port fits in 16 bits.
        if (
            not port_text.isdigit()
            or not port_text.isascii()
            or len(port_text) > 5
            or int(port_text) > 65535
        ):
            raise ParseError(f"bad port {port_text[:20]!r} in {text[:60]!r}", text=text)
        port = int(port_text)
    return host, port


def is_ipv6_reference(host: str) -> bool:
    """True when ``host`` is ``[IPv6address]`` (RFC 3261 §25.1, RFC 5954).

    RFC 5118 §4.10 asks parsers to tolerate the RFC 3261 ABNF slip that lets
    an IPv4 tail follow ``::`` with a third colon (``[2001:db8:::192.0.2.1]``).
    """
    if _IPV6_RE.fullmatch(host) is None:
        return False
    inner = host[1:-1]
    try:
        ipaddress.IPv6Address(inner)
        return True
    except ValueError:
        pass
    # RFC 5118 §4.10: "hexseq ::" then ":" IPv4address, the form RFC 5954 removed.
    head, sep, tail = inner.partition(":::")
    if not sep or ":" in tail or IPV4_RE.fullmatch(tail) is None:
        return False
    try:
        ipaddress.IPv6Address(f"{head}::{tail}")
        return True
    except ValueError:
        return False


def _split_uri_params(param_text: str) -> Params:
    # Parameters that _SIP_FAST_RE already matched: split them, nothing to check.
    params: dict[str, str | None] = {}
    for chunk in param_text[1:].split(";"):
        name, eq, value = chunk.partition("=")
        params[name.lower()] = value if eq else None
    return Params(params)


def _parse_uri_params(param_text: str, text: str) -> list[tuple[str, str | None]]:
    params: list[tuple[str, str | None]] = []
    for chunk in param_text.split(";"):
        name, eq, value = chunk.partition("=")
        if not _PARAMCHARS_RE.fullmatch(name) or (eq and not _PARAMCHARS_RE.fullmatch(value)):
            raise ParseError(f"bad URI parameter {chunk[:30]!r}", text=text)
        params.append((name.lower(), value if eq else None))
    return params


def _parse_uri_headers(header_text: str, text: str) -> tuple[tuple[str, str], ...]:
    headers = []
    for chunk in header_text.split("&"):
        name, eq, value = chunk.partition("=")
        if not name or not eq or not _HCHARS_RE.fullmatch(name) or not _HCHARS_RE.fullmatch(value):
            raise ParseError(f"bad URI header {chunk[:30]!r}", text=text)
        headers.append((name, value))
    return tuple(headers)


def _parse_tel(rest: str, text: str) -> URI:
    if not _TEL_RE.fullmatch(rest):
        raise ParseError(f"bad tel URI {text[:60]!r}", text=text)
    number, semi, param_text = rest.partition(";")
    if not number:
        raise ParseError("tel URI without a number", text=text)
    # RFC 3966 §3: parameters are ";" pname [ "=" pvalue ], pvalue made of paramchars.
    params = Params(_parse_uri_params(param_text, text)) if semi else Params()
    return URI("tel", user=number, params=params)


def ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a numeric host names (IPv6 brackets allowed), or ``None`` for a name."""
    if _IPV4_CANONICAL_RE.fullmatch(host) is not None:
        a, b, c, d = host.split(".")
        return ipaddress.IPv4Address(int(a) << 24 | int(b) << 16 | int(c) << 8 | int(d))
    if "[" not in host and ":" not in host:
        # A name: without ':' only a dotted quad can be an address, and ipaddress takes
        # no other form of one (no leading zeros, RFC 6943 §3.1.1).
        return None
    try:
        return ipaddress.ip_address(host[1:-1] if host.startswith("[") else host)
    except ValueError:
        return None
