"""Checks on the values a script hands back: target URIs, reason phrases, log text.

The same functions run twice: inside the sandbox, so a script gets its error at
the line that made it, and in the SIP process on the JSON a worker returned, so
a compromised worker still cannot open a relay or inject header lines.

A proxy target must be a ``sip:``/``sips:`` URI without URI headers, in a domain
the policy allows (the served domains and their subdomains, the policy's extra
domains) or exactly one of the owner's registered contacts (or, for an outgoing
call, its own request-URI). Loopback, private, link-local, multicast and other
non-global addresses are refused in every spelling ``inet_aton`` accepts
(``127.1``, ``2130706433``, ``0x7f.1``, ``0177.0.0.1``) and every IPv6 form that
embeds one (``[::1]``, ``[::ffff:127.0.0.1]``, 6to4, NAT64, Teredo), in the host
and in a ``maddr`` parameter, unless the policy allows private targets.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from callscript.sandbox.policy import ApiRules, TargetRules
from callscript.sip.errors import ParseError
from callscript.sip.uri import URI, parse_uri

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# C0 controls (CR, LF and TAB included), DEL, C1 controls and Unicode line breaks:
# none may reach a header line.
_CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_URI_CHAR_RE = re.compile(r"[!-~]*")
_INET_PART_RE = re.compile(r"0[xX][0-9A-Fa-f]*|0[0-7]*|[1-9][0-9]*")
_LOOSE_HOST_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:(?:[^@]*@)?(\[[^\]]*\]|[^:;?>]*)")
_LOCAL_NAMES = frozenset(
    {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback", "localhost6"}
)
_ESCAPES = {"\r": "\\r", "\n": "\\n", "\t": "\\t"}
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_V4_COMPATIBLE = ipaddress.IPv6Network("::/96")


class Refused(ValueError):
    """A value a script handed back breaks a rule; the message says which."""


@dataclass(frozen=True, slots=True)
class TargetContext:
    """What the target rules need to know about one event."""

    direction: str
    owner: str
    request_uri: str
    contacts: tuple[str, ...]
    served_domains: tuple[str, ...]


def inet_address(host: str) -> IPAddress | None:
    """The address a numeric host names in any spelling, or None for a name.

    IPv4 follows ``inet_aton``: one to four parts, each decimal, ``0x`` hex or
    ``0`` octal, the last filling the remaining bytes. An all-numeric host that is
    not a valid address maps to ``0.0.0.0`` (refused as unspecified).
    """
    text = host.strip().lower()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    text = text.partition("%")[0]
    if ":" in text:
        try:
            return ipaddress.IPv6Address(text)
        except ValueError:
            return ipaddress.IPv4Address(0)
    if text.endswith("."):
        text = text[:-1]
    parts = text.split(".")
    if not text or not all(_INET_PART_RE.fullmatch(part) for part in parts):
        return None
    if len(parts) > 4:
        return ipaddress.IPv4Address(0)
    values = [int(p, 16) if p[:2] == "0x" else int(p, 8) if p[0] == "0" else int(p) for p in parts]
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (5 - len(values)):
        return ipaddress.IPv4Address(0)
    number = last
    for index, value in enumerate(head):
        number |= value << (8 * (3 - index))
    return ipaddress.IPv4Address(number)


def is_internal_address(address: IPAddress) -> bool:
    """True for anything but a global unicast address (IPv4 embedded in IPv6 included)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if address.teredo is not None:
            embedded = address.teredo[1]
        if address in _NAT64 or (address in _V4_COMPATIBLE and int(address) > 1):
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None and is_internal_address(embedded):
            return True
    return (
        not address.is_global
        or address.is_multicast
        or address.is_unspecified
        or address.is_reserved
        or address.is_loopback
        or address.is_link_local
    )


def is_internal_host(host: str) -> bool:
    """True when ``host`` names this machine or a non-global address, in any spelling."""
    name = host.strip().lower().rstrip(".")
    if name in _LOCAL_NAMES or name.endswith(".localhost"):
        return True
    address = inet_address(host)
    return address is not None and is_internal_address(address)


def check_text(value: object, what: str, max_length: int) -> str:
    """A reason phrase or display text: a str, capped, free of control characters.

    Raises:
        Refused: not a str, too long, CR/LF or another control character, not UTF-8.
    """
    if type(value) is not str:
        raise Refused(f"{what} must be a string")
    if len(value) > max_length:
        raise Refused(f"{what} is longer than {max_length} characters")
    if _CONTROL_RE.search(value):
        raise Refused(f"{what} must not contain CR, LF or other control characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise Refused(f"{what} is not valid text") from None
    return value


def clean_log_text(text: str, max_length: int) -> str:
    """Log text made safe to store and print: controls escaped, length capped."""
    text = _CONTROL_RE.sub(_escape, text)
    text = text.encode("utf-8", "replace").decode("utf-8")
    if len(text) > max_length:
        text = text[: max_length - 1] + "…"
    return text


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return _ESCAPES.get(char) or f"\\x{ord(char):02x}"


def is_clean_log_text(text: object, max_length: int) -> bool:
    """Whether ``text`` is what :func:`clean_log_text` may have produced."""
    return type(text) is str and len(text) <= max_length and not _CONTROL_RE.search(text)


def parse_target(value: object, api: ApiRules) -> URI:
    """Parse a target URI (text) and check its form; see :func:`check_target`."""
    if type(value) is not str:
        raise Refused("a target must be a URI or a string")
    if len(value) > api.max_uri_length:
        raise Refused(f"a target is longer than {api.max_uri_length} characters")
    if not _URI_CHAR_RE.fullmatch(value):
        raise Refused(f"{_show(value)}: a URI must not contain spaces or control characters")
    try:
        uri = parse_uri(value)
    except ParseError:
        host = _loose_host(value)
        if host is not None and is_internal_host(host):
            raise Refused(f"{_show(value)}: {host} is a loopback or private address") from None
        raise Refused(f"{_show(value)}: not a valid SIP URI") from None
    if uri.scheme not in ("sip", "sips") or not uri.host:
        raise Refused(f"{_show(value)}: a target must be a sip: or sips: URI")
    if uri.headers:
        raise Refused(f"{_show(value)}: a target must not carry URI headers ('?')")
    return uri


def check_target(
    value: object, ctx: TargetContext, rules: TargetRules, api: ApiRules, *, redirect: bool = False
) -> str:
    """Check one proxy or redirect target; returns its text.

    Raises:
        Refused: the message names the target and the rule it breaks.
    """
    uri = parse_target(value, api)
    text = str(uri)
    hosts = [uri.host] + ([uri.maddr] if uri.maddr is not None else [])
    if _same_aor(uri, ctx.owner):
        raise Refused(f"{text}: the call would loop back to this script")
    if _is_contact(uri, ctx) or (rules.allow_contacts and _is_known(uri, ctx.contacts)):
        return text
    if not rules.allow_private:
        for host in hosts:
            if is_internal_host(host):
                raise Refused(f"{text}: {host} is a loopback or private address")
    if redirect and rules.redirect_anywhere:
        return text
    allowed = list(rules.domains)
    if rules.allow_served_domains:
        allowed += ctx.served_domains
    for host in hosts:
        if not _in_domains(host, allowed):
            raise Refused(f"{text}: {host} is not a domain this script may send calls to")
    return text


def _is_contact(uri: URI, ctx: TargetContext) -> bool:
    # An outgoing call may always go where it was going.
    return ctx.direction == "outgoing" and _is_known(uri, (ctx.request_uri,))


def _is_known(uri: URI, known: tuple[str, ...]) -> bool:
    key = (uri.host.lower().rstrip("."), uri.port or 5060, uri.maddr)
    for text in known:
        try:
            other = parse_uri(text)
        except ParseError:
            continue
        if (other.host.lower().rstrip("."), other.port or 5060, other.maddr) == key:
            return True
    return False


def _same_aor(uri: URI, owner: str) -> bool:
    try:
        return uri.user is not None and uri.aor == parse_uri(owner).aor
    except ParseError:
        return False


def _in_domains(host: str, domains: list[str]) -> bool:
    name = host.lower().rstrip(".")
    if inet_address(name) is not None or name.startswith("["):
        return any(name == d.lower() for d in domains)
    for domain in domains:
        d = domain.lower().rstrip(".")
        if d == "*" or name == d or name.endswith("." + d):
            return True
    return False


def _loose_host(text: str) -> str | None:
    match = _LOOSE_HOST_RE.match(text)
    return match.group(1) if match else None


def _show(text: str) -> str:
    return text if len(text) <= 80 else text[:77] + "..."
