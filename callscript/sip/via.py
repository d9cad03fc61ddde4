"""Via header values (RFC 3261 §20.42, §18.2.1; RFC 3581 ``rport``).

``Via: SIP / 2.0 / UDP host:port;branch=z9hG4bK...`` with LWS allowed around
the slashes and the colon (RFC 3261 §25.1 SLASH, COLON; RFC 4475 §3.1.1.1).
"""

from __future__ import annotations

import re
from typing import ClassVar

from callscript.sip.abnf import (
    SIMPLE_PARAMS,
    Params,
    check_param,
    checked_params,
    format_params,
    is_token,
    parse_params,
    split_simple_params,
)
from callscript.sip.errors import LocalProtocolError, ParseError
from callscript.sip.uri import (
    HOST,
    HOST_RE,
    IPV4_RE,
    ip_literal,
    is_ipv6_reference,
)

_TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"
# The common shape: a host name or IPv4 address and token parameters. A branch alone
# has its own alternative, so that no parameter splitting is needed.
_FAST = (
    rf"SIP/2\.0/({_TOKEN}+) ({HOST})(?::([0-9]{{1,5}}))?"
    rf"(?:;branch=({_TOKEN}+)|({SIMPLE_PARAMS}))"
)
# A whole header line holding one such value: name, colon, LWS, value, LWS.
_LINE_RE = re.compile(rf"[^:]*+:[ \t]*+({_FAST})[ \t]*+")
# Parameters whose values parse_via checks beyond the token grammar (and branch, below).
_CHECKED = frozenset({"ttl", "received", "rport"})
_SLOW_RE = re.compile(
    rf"[ \t]*({_TOKEN})[ \t]*/[ \t]*({_TOKEN})[ \t]*/[ \t]*({_TOKEN})[ \t]+"
    r"([A-Za-z0-9\-.]+|\[[^\]]*\])(?:[ \t]*:[ \t]*([0-9]+))?[ \t]*(;.*)?",
    re.DOTALL,
)
_TRANSPORTS = frozenset({"UDP", "TCP", "TLS", "SCTP", "WS", "WSS"})
_BRANCH_RE = re.compile(_TOKEN)

# RFC 3261 §8.1.1.7: branches that start with the magic cookie are RFC 3261 branches.
MAGIC_COOKIE = "z9hG4bK"


class Via:
    """One Via value: ``transport``, ``host``, ``port`` and ``params``.

    Immutable; :meth:`with_params` builds a changed copy (a proxy adds
    ``received``/``rport`` that way, RFC 3261 §18.2.1, RFC 3581 §4).
    """

    # ``branch`` is kept apart from ``params``, as the stack reads it for every message.
    # A parsed Via whose only parameter is its branch keeps ``_params`` None; ``params``
    # builds the Params the first time it is read.
    __slots__ = ("_params", "_text", "branch", "host", "port", "transport")

    protocol: ClassVar[str] = "SIP/2.0"
    transport: str
    host: str
    port: int | None
    branch: str | None
    """The ``branch`` parameter, or ``None`` (RFC 2543 peers send none)."""
    _params: Params | None
    _text: str | None

    def __init__(
        self,
        transport: str,
        host: str,
        port: int | None = None,
        params: Params | dict[str, str | None] | None = None,
        protocol: str = "SIP/2.0",
    ) -> None:
        upper = transport.upper()
        if protocol != "SIP/2.0" or (upper not in _TRANSPORTS and not is_token(transport)):
            raise LocalProtocolError(f"bad Via protocol {protocol!r}/{transport!r}")
        if ":" in host and not host.startswith("["):
            # An IPv6 address is written as a reference in a Via (RFC 3261 §25.1 sent-by).
            host = f"[{host}]"
        if not (HOST_RE.fullmatch(host) or is_ipv6_reference(host)):
            raise LocalProtocolError(f"bad Via host {host!r}")
        if port is not None and (isinstance(port, bool) or not 0 <= port <= 65535):
            raise LocalProtocolError(f"bad Via port {port!r}")
        self.transport = upper
        self.host = host
        self.port = port
        self._text = None
        if type(params) is dict and len(params) == 1:
            # The usual Via of our own, a branch alone, keeps its Params for later.
            branch = params.get("branch")
            if branch is not None and _BRANCH_RE.fullmatch(branch) is not None:
                self._params = None
                self.branch = branch
                return
        checked = self._params = checked_params(params)
        self.branch = dict.get(checked, "branch")

    @classmethod
    def parse(cls, text: str) -> Via:
        """Parse one Via value.

        Raises:
            ParseError: a malformed value (RFC 4475 §3.1.2.1 included).
        """
        return parse_via(text)

    @property
    def params(self) -> Params:
        """The Via parameters (``branch``, ``received``, ``rport``...)."""
        params = self._params
        if params is None:
            branch = self.branch
            params = self._params = Params() if branch is None else Params({"branch": branch})
        return params

    @property
    def received(self) -> str | None:
        """The ``received`` parameter, or ``None``."""
        return dict.get(self.params, "received")

    @property
    def rport(self) -> int | None:
        """The ``rport`` value when it carries a port, else ``None``."""
        value = self.params.get("rport")
        return int(value) if value and value.isdigit() else None

    @property
    def sent_by(self) -> tuple[str, int | None]:
        """``(host, port)`` as the sender wrote them."""
        return self.host, self.port

    @property
    def value(self) -> str:
        """The value as it prints."""
        return str(self)

    def with_params(self, **changes: str | None) -> Via:
        """A copy with parameters added or replaced.

        Raises:
            LocalProtocolError: a name or value that would not print as a parameter.
        """
        params = dict(self.params)
        for name, value in changes.items():
            params[check_param(name, value)] = value
        # Transport, host and port were checked when this Via was made.
        via = object.__new__(Via)
        via.transport = self.transport
        via.host = self.host
        via.port = self.port
        via._params = Params(params)
        via.branch = params.get("branch")
        via._text = None
        return via

    def __str__(self) -> str:
        text = self._text
        if text is None:
            port = "" if self.port is None else f":{self.port}"
            params = self._params
            if params is None:
                tail = "" if self.branch is None else f";branch={self.branch}"
            else:
                tail = format_params(params.items()) if params else ""
            text = self._text = f"SIP/2.0/{self.transport} {self.host}{port}{tail}"
        return text

    def __repr__(self) -> str:
        return f"Via({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Via):
            return NotImplemented
        return (
            self.transport == other.transport
            and self.host.lower() == other.host.lower()
            and self.port == other.port
            and dict(self.params) == dict(other.params)
        )

    def __hash__(self) -> int:
        return hash((self.transport, self.host.lower(), self.port, self.branch))


def parse_via(text: str) -> Via:
    """Parse one Via value (see :class:`Via`)."""
    return parse_via_line(":" + text) or _parse_via_slow(text)


def parse_via_line(line: str) -> Via | None:
    """The Via of a header line that holds one value in the common shape, else ``None``.

    ``None`` only means "not the common shape": the caller parses the line the general way.
    """
    match = _LINE_RE.fullmatch(line)
    if match is None:
        return None
    text, transport, host, port, branch, param_text = match.groups()
    via = object.__new__(Via)
    if param_text:
        params = split_simple_params(param_text)
        if params is None:
            return _parse_via_slow(text)
        # A valueless branch is the one branch check the token grammar leaves.
        if not _CHECKED.isdisjoint(params) or dict.get(params, "branch", "") is None:
            _check_via_params(params, text)
        via._params = params
        via.branch = dict.get(params, "branch")
    else:
        via._params = None
        via.branch = branch
    via.transport = transport if transport in _TRANSPORTS else transport.upper()
    via.host = host
    if port is None:
        via.port = None
    else:
        via.port = int(port)
        if via.port > 65535:
            raise ParseError(f"bad port in Via {port!r}", text=text)
    via._text = text
    return via


def _parse_via_slow(text: str) -> Via:
    match = _SLOW_RE.fullmatch(text)
    if match is None:
        raise ParseError(f"malformed Via {text[:60]!r}", text=text)
    name, version, transport, host, port, param_text = match.groups()
    if name.upper() != "SIP":
        raise ParseError(f"Via protocol {name!r} is not SIP", text=text)
    if version != "2.0":
        # RFC 3261 §21.5.6: another SIP version is answered 505 (RFC 4475 §3.1.2.16).
        raise ParseError(f"Via version SIP/{version} not supported", text=text, status=505)
    via = object.__new__(Via)
    via.transport = transport.upper()
    via.host = _checked_host(host, text)
    via.port = _checked_port(port, text)
    params = via._params = Params(parse_params(param_text or ""))
    via.branch = dict.get(params, "branch")
    via._text = text
    _check_via_params(params, text)
    return via


def _checked_host(host: str, text: str) -> str:
    if host.startswith("["):
        if not is_ipv6_reference(host):
            raise ParseError(f"bad IPv6 reference in Via {host!r}", text=text)
    elif HOST_RE.fullmatch(host) is None:
        raise ParseError(f"bad host in Via {host!r}", text=text)
    return host


def _checked_port(port: str | None, text: str) -> int | None:
    if port is None:
        return None
    if len(port) > 5 or int(port) > 65535 or not port.isascii():
        raise ParseError(f"bad port in Via {port!r}", text=text)
    return int(port)


def _check_via_params(params: Params, text: str) -> None:
    get = dict.get  # keys are stored lower-cased, so the plain lookup is exact
    # RFC 3261 §20.42 / §25.1: via-ttl 0-255, via-received an address, via-branch a token.
    ttl = get(params, "ttl")
    if ttl is not None and not (ttl.isdigit() and len(ttl) <= 3 and int(ttl) <= 255):
        raise ParseError(f"bad ttl in Via {ttl!r}", text=text)
    received = get(params, "received")
    # RFC 5118 §4.5: accept received with or without brackets.
    if (
        received is not None
        and IPV4_RE.fullmatch(received) is None
        and ip_literal(received) is None
    ):
        raise ParseError(f"received={received!r} is not an IP address", text=text)
    # RFC 3581 §3: rport is empty in requests and a port number in responses.
    rport = get(params, "rport")
    if rport is not None and not (rport.isdigit() and len(rport) <= 5 and int(rport) <= 65535):
        raise ParseError(f"bad rport in Via {rport!r}", text=text)
    if dict.__contains__(params, "branch") and not get(params, "branch"):
        raise ParseError("empty branch in Via", text=text)
