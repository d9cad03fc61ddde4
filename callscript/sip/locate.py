"""RFC 3263 §4: where a client sends a request for a SIP or SIPS URI.

Sans-I/O. :func:`locate` turns a URI and the DNS records fetched so far into
either the ordered list of :class:`~callscript.sip.events.Peer` targets or a
:class:`Pending` naming the queries it still needs. The resolver adapter
(``callscript.transport.resolver``) fetches those, adds them to ``known`` and
calls again, so every decision of §4.1 (transport) and §4.2 (port and
address) is made here, over plain records, and is tested without DNS:

    numeric host                -> that address (no DNS at all)
    name with an explicit port  -> A/AAAA of the name, at that port
    transport parameter         -> SRV for that transport, else A/AAAA
    otherwise                   -> NAPTR, else SRV _sips._tcp/_sip._tcp/_sip._udp,
                                   else A/AAAA at the default port

Hosts in the returned peers are IP addresses *without* brackets in the compact
form :mod:`ipaddress` prints (``::1``, ``127.0.0.1``): the form sockets report,
so a target compares equal to the source of a message that came from it.

SRV records of one priority are ordered by RFC 2782's weighted random draw;
the draw comes from an injected :class:`RandomSource` (``random.Random`` fits).
The list is what RFC 3263 §4.3 asks the client to walk: on a transport error,
a timeout or a 503 the next target is tried (:func:`next_after`).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol, TypeVar

from callscript.sip.errors import LocalProtocolError
from callscript.sip.events import TRANSPORTS, Peer
from callscript.sip.uri import URI

DEFAULT_SUPPORTED = frozenset({"UDP", "TCP", "TLS"})
# RFC 3263 §4.2: no port in the URI and no SRV record: 5060, or 5061 for TLS.
DEFAULT_PORTS = MappingProxyType({"UDP": 5060, "TCP": 5060, "TLS": 5061})
# RFC 3263 §4.1: NAPTR services -> transport. SCTP is listed so that it is recognised
# and skipped: a Peer cannot carry it, so it is never in ``supported``.
NAPTR_SERVICES = MappingProxyType(
    {"SIP+D2U": "UDP", "SIP+D2T": "TCP", "SIPS+D2T": "TLS", "SIP+D2S": "SCTP", "SIPS+D2S": "SCTP"}
)
# RFC 3263 §4.1: without NAPTR, the SRV services a client may query, most preferred
# first (TLS, then TCP, then UDP).
SRV_SERVICES = (("TLS", "_sips._tcp"), ("TCP", "_sip._tcp"), ("UDP", "_sip._udp"))
# Bounds on what one answer can make us do: a hostile zone may list hundreds of
# NAPTR or SRV records, and each SRV target costs two more queries.
MAX_SERVICES = 8
MAX_SRV_HOSTS = 16
# A DNS name as it may appear in a URI host, maddr, NAPTR replacement or SRV target.
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_\-]{0,61}[A-Za-z0-9_])?"
_NAME_RE = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_T = TypeVar("_T")


class RandomSource(Protocol):
    """What RFC 2782's weighted draw needs; ``random.Random`` is one."""

    def randint(self, a: int, b: int) -> int:
        """A uniformly chosen integer ``n`` with ``a <= n <= b``."""
        ...


@dataclass(frozen=True, slots=True)
class Naptr:
    """One NAPTR record (RFC 3403 §4.1); ``replacement`` is a name ("." for none)."""

    order: int
    preference: int
    flags: str
    service: str
    regexp: str
    replacement: str


@dataclass(frozen=True, slots=True)
class Srv:
    """One SRV record (RFC 2782); ``target`` "." means the service is not offered."""

    priority: int
    weight: int
    port: int
    target: str


# What one query returns: NAPTR or SRV records, or addresses (text) for A and AAAA.
Record = Naptr | Srv | str
_R = TypeVar("_R", Naptr, Srv)


@dataclass(frozen=True, slots=True)
class Query:
    """A DNS question: ``name`` (lower-case, no final dot) and ``rdtype`` (NAPTR, SRV, A, AAAA)."""

    name: str
    rdtype: str


@dataclass(frozen=True, slots=True)
class Pending:
    """:func:`locate` needs these queries answered (an empty answer included) to go on."""

    queries: tuple[Query, ...]


@dataclass(frozen=True, slots=True)
class Service:
    """A transport and the SRV name that lists the servers offering it."""

    transport: str
    srv_name: str


@dataclass(frozen=True, slots=True)
class Target:
    """What RFC 3263 §4 resolves for a URI, before any DNS.

    ``host`` is the maddr or URI host: a name (lower-case, no final dot) or an
    IP address (no brackets) when ``numeric``. ``transport`` is set when §4.1
    settles it without DNS (transport parameter, numeric host, explicit port).
    """

    host: str
    numeric: bool
    port: int | None
    transport: str | None
    secure: bool


def locate(
    uri: URI,
    known: Mapping[Query, Sequence[Record]],
    *,
    rand: RandomSource,
    supported: frozenset[str] = DEFAULT_SUPPORTED,
    prefer_ipv6: bool = False,
) -> list[Peer] | Pending:
    """The ordered targets for ``uri`` (RFC 3263 §4), or the queries still needed.

    Args:
        uri: a ``sip:`` or ``sips:`` URI (a Request-URI or a Route).
        known: answers fetched so far; an empty sequence is a negative answer or a
            failed query. A query missing from it is asked for through :class:`Pending`.
        rand: the draw for RFC 2782 weights, used once all records are known.
        supported: transports this client can use (subset of UDP, TCP, TLS).
        prefer_ipv6: AAAA addresses before A ones.

    Returns:
        The targets to try in order (empty when nothing resolves), or :class:`Pending`.

    Raises:
        LocalProtocolError: ``uri`` is not a SIP or SIPS URI, or ``supported`` names
            a transport a :class:`Peer` cannot carry.
    """
    target = target_of(uri, supported)
    if target is None:
        return []
    if target.transport is not None and target.numeric:
        return [Peer(target.transport, target.host, target.port or DEFAULT_PORTS[target.transport])]
    if target.transport is not None and target.port is not None:
        # RFC 3263 §4.2: a name with an explicit port: A/AAAA of the name, no SRV.
        return _host_targets(target.host, target.transport, target.port, known, prefer_ipv6)
    naptr_found = False
    if target.transport is not None:
        services = [service_for(target.host, target.transport)]
    else:
        naptr_query = Query(target.host, "NAPTR")
        if naptr_query not in known:
            return Pending((naptr_query,))
        services = naptr_services(known[naptr_query], secure=target.secure, supported=supported)
        naptr_found = bool(services)
        if not naptr_found:
            services = srv_services(target.host, secure=target.secure, supported=supported)
    missing = tuple(q for s in services if (q := Query(s.srv_name, "SRV")) not in known)
    if missing:
        return Pending(missing)
    found = [
        (s, recs) for s in services if (recs := _of_type(known[Query(s.srv_name, "SRV")], Srv))
    ]
    if found:
        return _srv_targets(found, known, rand, prefer_ipv6)
    # RFC 3263 §4.2: no SRV records: A/AAAA of the name at the default port, over the
    # transport chosen before (parameter, first NAPTR service, else the URI's default).
    transport = target.transport or (services[0].transport if naptr_found else None)
    transport = transport or default_transport(secure=target.secure, supported=supported)
    if transport is None:
        return []
    return _host_targets(target.host, transport, DEFAULT_PORTS[transport], known, prefer_ipv6)


def locate_host(
    host: str, known: Mapping[Query, Sequence[Record]], *, prefer_ipv6: bool = False
) -> list[str] | Pending:
    """The addresses of ``host`` (a name or an IP literal), or the A/AAAA queries needed.

    An IP literal is returned as it is (normalised, without brackets); a text that
    is neither an address nor a DNS name gives ``[]``.
    """
    address = normal_address(host)
    if address is not None:
        return [address]
    name = normal_name(host)
    if name is None:
        return []
    v4, v6 = host_queries(name)
    missing = tuple(q for q in (v4, v6) if q not in known)
    if missing:
        return Pending(missing)
    return order_addresses(known[v4], known[v6], prefer_ipv6=prefer_ipv6)


def target_of(uri: URI, supported: frozenset[str] = DEFAULT_SUPPORTED) -> Target | None:
    """RFC 3263 §4 and §4.1 decisions taken from the URI alone; ``None``: it cannot resolve.

    Raises:
        LocalProtocolError: not a SIP or SIPS URI, or an unknown transport in ``supported``.
    """
    if not uri.is_sip:
        raise LocalProtocolError(f"RFC 3263 locates sip: and sips: URIs, not {uri.scheme}:")
    if not supported <= frozenset(TRANSPORTS):
        raise LocalProtocolError(
            f"unsupported transports {sorted(supported - frozenset(TRANSPORTS))}"
        )
    # RFC 3263 §4: the maddr parameter, when present, is the TARGET instead of the host.
    host = uri.maddr or uri.host
    address = normal_address(host)
    name = normal_name(host) if address is None else None
    if address is None and name is None:
        return None
    transport: str | None = None
    if uri.transport is not None:
        # RFC 3263 §4.1: the transport parameter, when present, is used.
        transport = param_transport(uri.transport, secure=uri.secure)
        if transport is None or transport not in supported:
            return None
    elif address is not None or uri.port is not None:
        # RFC 3263 §4.1: a numeric host or an explicit port: UDP for sip, TLS (over TCP) for sips.
        transport = default_transport(secure=uri.secure, supported=supported)
        if transport is None:
            return None
    if address is not None:
        return Target(address, True, uri.port, transport, uri.secure)
    return Target(name or "", False, uri.port, transport, uri.secure)


def param_transport(value: str, *, secure: bool) -> str | None:
    """The transport a ``transport=`` value names, or ``None`` when it cannot be used.

    A sips URI is reached over TLS only: ``transport=tcp`` (or the older ``tls``)
    means TLS over TCP, and ``transport=udp`` cannot be honoured.
    """
    value = value.lower()
    if value in ("tcp", "tls"):
        return "TLS" if secure or value == "tls" else "TCP"
    if value == "udp" and not secure:
        return "UDP"
    return None


def default_transport(*, secure: bool, supported: frozenset[str]) -> str | None:
    """UDP for sip (TCP when UDP is not supported), TLS for sips; ``None`` when unusable."""
    for transport in ("TLS",) if secure else ("UDP", "TCP"):
        if transport in supported:
            return transport
    return None


def service_for(name: str, transport: str) -> Service:
    """The SRV name for ``transport`` at ``name``: ``_sip._udp``, ``_sip._tcp`` or ``_sips._tcp``.

    RFC 3263 §4.2 uses ``_sips`` whenever TLS is wanted, for a sip URI as well.
    """
    return Service(transport, f"{dict(SRV_SERVICES)[transport]}.{name}")


def naptr_services(
    records: Iterable[Record], *, secure: bool, supported: frozenset[str]
) -> list[Service]:
    """RFC 3263 §4.1: the usable NAPTR services, by order then preference.

    Only ``s``-flag records of a known SIP service, with an empty regexp and a
    replacement, whose transport is supported; a sips URI keeps SIPS+D2T only.
    """
    usable: list[tuple[int, int, Service]] = []
    for rec in _of_type(records, Naptr):
        transport = NAPTR_SERVICES.get(rec.service.upper())
        replacement = normal_name(rec.replacement)
        if transport is None or transport not in supported or replacement is None:
            continue
        if rec.flags.lower() != "s" or rec.regexp:
            continue
        # RFC 3263 §4.1: a client resolving a SIPS URI discards services that are not SIPS.
        if secure and not rec.service.upper().startswith("SIPS+"):
            continue
        usable.append((rec.order, rec.preference, Service(transport, replacement)))
    usable.sort(key=lambda item: (item[0], item[1]))
    return _unique(s for _, _, s in usable)[:MAX_SERVICES]


def srv_services(name: str, *, secure: bool, supported: frozenset[str]) -> list[Service]:
    """RFC 3263 §4.1: without NAPTR, the SRV names to query, most preferred first.

    A sip URI asks for ``_sips._tcp``, ``_sip._tcp`` and ``_sip._udp`` (those supported);
    a sips URI for ``_sips._tcp`` only.
    """
    return [
        Service(transport, f"{prefix}.{name}")
        for transport, prefix in SRV_SERVICES
        if transport in supported and (transport == "TLS" or not secure)
    ]


def order_srv(records: Iterable[Srv], rand: RandomSource) -> list[Srv]:
    """RFC 2782 usage rules: priority ascending, weighted random order within a priority.

    Within a priority, records are first sorted (weight 0 first, then by target and
    port) so that the result depends only on the records and ``rand``, not on the
    order the server sent them in. Each draw picks ``n`` in ``[0, sum of weights]``
    and takes the first record whose running sum reaches ``n``.
    """
    by_priority: dict[int, list[Srv]] = {}
    for rec in records:
        by_priority.setdefault(rec.priority, []).append(rec)
    ordered: list[Srv] = []
    for priority in sorted(by_priority):
        group = sorted(
            by_priority[priority], key=lambda r: (r.weight != 0, r.target, r.port, r.weight)
        )
        while group:
            total = sum(r.weight for r in group)
            draw = rand.randint(0, total)
            running = 0
            for index, rec in enumerate(group):
                running += rec.weight
                if running >= draw:
                    ordered.append(group.pop(index))
                    break
    return ordered


def order_addresses(
    v4: Iterable[Record], v6: Iterable[Record], *, prefer_ipv6: bool = False
) -> list[str]:
    """A then AAAA addresses (AAAA first when ``prefer_ipv6``), normalised, duplicates dropped."""
    first, second = (v6, v4) if prefer_ipv6 else (v4, v6)
    out = [
        a
        for rec in (*first, *second)
        if isinstance(rec, str) and (a := normal_address(rec)) is not None
    ]
    return _unique(out)


def host_queries(name: str) -> tuple[Query, Query]:
    """The A and AAAA questions for ``name``."""
    return Query(name, "A"), Query(name, "AAAA")


def next_after(targets: Sequence[Peer], failed: Peer) -> Peer | None:
    """RFC 3263 §4.3: the target to try after ``failed`` (transport error, timeout or 503).

    Compares transport, host and port (not the connection); ``None`` when
    ``failed`` was the last target or is not in the list.
    """
    # RFC 3263 §4.3: a failed target (transport error, timeout, 503) moves on to the next.
    key = failed.without_connection()
    for index, peer in enumerate(targets):
        if peer.without_connection() == key:
            return targets[index + 1] if index + 1 < len(targets) else None
    return None


def normal_address(host: str) -> str | None:
    """``host`` as a bracket-less, normalised IP address, or ``None`` for a name."""
    text = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def normal_name(text: str) -> str | None:
    """``text`` as a query name (lower-case, no final dot), or ``None`` when it is no DNS name.

    "." (an SRV target meaning "no service") and the empty text are no names.
    """
    name = text[:-1] if text.endswith(".") else text
    if len(name) > 253 or not _NAME_RE.fullmatch(name):
        return None
    return name.lower()


# -- helpers ---------------------------------------------------------------------


def _host_targets(
    name: str, transport: str, port: int, known: Mapping[Query, Sequence[Record]], prefer_ipv6: bool
) -> list[Peer] | Pending:
    addresses = locate_host(name, known, prefer_ipv6=prefer_ipv6)
    if isinstance(addresses, Pending):
        return addresses
    return [Peer(transport, a, port) for a in addresses]


def _srv_targets(
    found: list[tuple[Service, list[Srv]]],
    known: Mapping[Query, Sequence[Record]],
    rand: RandomSource,
    prefer_ipv6: bool,
) -> list[Peer] | Pending:
    # Ask for every target's addresses at once, before ordering, so that the weighted
    # draw runs once, over complete data.
    hosts: list[str] = []
    for _, recs in found:
        hosts += [n for r in recs if (n := normal_name(r.target)) is not None]
    hosts = _unique(hosts)[:MAX_SRV_HOSTS]
    missing = tuple(q for h in hosts for q in host_queries(h) if q not in known)
    if missing:
        return Pending(missing)
    peers: list[Peer] = []
    for service, recs in found:
        # RFC 3263 §4.2: SRV records in RFC 2782 order; a target of "." offers nothing.
        for rec in order_srv(recs, rand):
            name = normal_name(rec.target)
            if name is None or name not in hosts or not 0 < rec.port < 65536:
                continue
            v4, v6 = host_queries(name)
            for address in order_addresses(known[v4], known[v6], prefer_ipv6=prefer_ipv6):
                peers.append(Peer(service.transport, address, rec.port))
    return _unique(peers)


def _of_type(records: Iterable[Record], kind: type[_R]) -> list[_R]:
    return [r for r in records if isinstance(r, kind)]


def _unique(items: Iterable[_T]) -> list[_T]:
    return list(dict.fromkeys(items))
