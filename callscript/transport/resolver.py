"""RFC 3263 server location over real DNS: dnspython's asyncio resolver plus a TTL cache.

The decisions (which transport, which records, which order) are made by the
sans-I/O :func:`callscript.sip.locate.locate`; this adapter only fetches the
queries it asks for, caches the answers and hands them back until the list of
targets is complete. Queries of one step (the SRV services, the A/AAAA of every
SRV target) go out together.

Caching is per query, in the :class:`Resolver` instance: an answer is kept for
its TTL (the smallest TTL of the CNAMEs and records it was built from), a
negative answer (NXDOMAIN or no records) for the SOA's negative TTL (RFC 2308
§5) or ``negative_ttl`` when the server sends no SOA. Failures (timeouts,
SERVFAIL, REFUSED) are not cached. So a list of targets is never older than the
shortest TTL among the records it came from, and SRV weights are drawn afresh
on each :meth:`Resolver.resolve`. Expiry uses the event loop's clock
(``loop.time()``) unless a ``clock`` is injected. Concurrent resolutions that
need the same query share one request.

Target hosts are IP addresses without brackets (see :mod:`callscript.sip.locate`).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Iterable

import dns.asyncresolver
import dns.exception
import dns.message
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver
import dns.rrset
from dns.rdtypes.ANY.SOA import SOA
from dns.rdtypes.IN.A import A
from dns.rdtypes.IN.AAAA import AAAA
from dns.rdtypes.IN.NAPTR import NAPTR
from dns.rdtypes.IN.SRV import SRV

from callscript.errors import TransportError
from callscript.sip.errors import LocalProtocolError
from callscript.sip.events import TRANSPORTS, Peer
from callscript.sip.locate import (
    DEFAULT_SUPPORTED,
    Naptr,
    Pending,
    Query,
    RandomSource,
    Record,
    Srv,
    locate,
    locate_host,
)
from callscript.sip.uri import URI

log = logging.getLogger(__name__)

# locate() needs at most NAPTR, then SRV, then A/AAAA: three rounds of queries.
_MAX_ROUNDS = 4
_Answer = tuple[Record, ...]


class Resolver:
    """Resolves SIP and SIPS URIs to the ordered targets of RFC 3263 §4.

    Args:
        nameservers: ``(address, port)`` of the DNS servers to ask; ``None`` reads
            the system configuration (``/etc/resolv.conf``).
        timeout: seconds one query may take, over all servers and retries.
        clock: monotonic seconds for cache expiry; default ``loop.time()``.
        rand: draws for SRV weights (RFC 2782), ``random.Random``-like; default a fresh one.
        supported: transports targets may use (subset of UDP, TCP, TLS).
        prefer_ipv6: list AAAA addresses before A ones.
        negative_ttl: seconds a negative answer is kept when it carries no SOA.
        max_cache_entries: bound on cached queries; the oldest go first.

    Raises:
        TransportError: ``supported`` names an unknown transport, or there is no
            system DNS configuration to read.
    """

    def __init__(
        self,
        nameservers: list[tuple[str, int]] | None = None,
        *,
        timeout: float = 2.0,
        clock: Callable[[], float] | None = None,
        rand: RandomSource | None = None,
        supported: frozenset[str] = DEFAULT_SUPPORTED,
        prefer_ipv6: bool = False,
        negative_ttl: float = 30.0,
        max_cache_entries: int = 10_000,
    ) -> None:
        if not supported <= frozenset(TRANSPORTS):
            raise TransportError(f"unknown transports in supported: {sorted(supported)}")
        try:
            self._dns = dns.asyncresolver.Resolver(configure=nameservers is None)
        except dns.exception.DNSException as exc:
            raise TransportError(f"no DNS configuration: {exc}") from exc
        if nameservers is not None:
            self._dns.nameservers = [
                dns.nameserver.Do53Nameserver(host, port) for host, port in nameservers
            ]
        self._dns.timeout = timeout
        self._dns.lifetime = timeout
        self._clock = clock
        self._rand: RandomSource = rand if rand is not None else random.Random()
        self._supported = supported
        self._prefer_ipv6 = prefer_ipv6
        self._negative_ttl = negative_ttl
        self._max_cache_entries = max_cache_entries
        self._cache: dict[Query, tuple[float, _Answer]] = {}
        self._inflight: dict[Query, asyncio.Task[_Answer]] = {}

    async def resolve(self, uri: URI) -> list[Peer]:
        """The targets for ``uri`` in the order to try them (RFC 3263 §4); ``[]`` if none.

        DNS failures make the answer shorter or empty; they never raise.

        Raises:
            TransportError: ``uri`` is not a sip: or sips: URI.
        """
        known: dict[Query, _Answer] = {}
        for _ in range(_MAX_ROUNDS):
            try:
                step = locate(
                    uri,
                    known,
                    rand=self._rand,
                    supported=self._supported,
                    prefer_ipv6=self._prefer_ipv6,
                )
            except LocalProtocolError as exc:
                raise TransportError(str(exc)) from exc
            if not isinstance(step, Pending):
                log.debug("resolved %s to %s", uri, step)
                return step
            await self._fetch_all(step, known)
        return []

    async def lookup_host(self, name: str) -> list[str]:
        """The addresses of ``name`` (A then AAAA, or AAAA first with ``prefer_ipv6``).

        An IP literal comes back as it is (without brackets) and touches no DNS.
        """
        known: dict[Query, _Answer] = {}
        for _ in range(_MAX_ROUNDS):
            step = locate_host(name, known, prefer_ipv6=self._prefer_ipv6)
            if not isinstance(step, Pending):
                return step
            await self._fetch_all(step, known)
        return []

    def clear_cache(self) -> None:
        """Forget every cached answer (after a configuration change, say)."""
        self._cache.clear()

    # -- fetching -----------------------------------------------------------------

    async def _fetch_all(self, step: Pending, known: dict[Query, _Answer]) -> None:
        answers = await asyncio.gather(*(self._records(q) for q in step.queries))
        known.update(zip(step.queries, answers, strict=True))

    async def _records(self, query: Query) -> _Answer:
        cached = self._cached(query)
        if cached is not None:
            return cached
        task = self._inflight.get(query)
        if task is None:
            task = asyncio.ensure_future(self._fetch(query))
            self._inflight[query] = task
            task.add_done_callback(lambda done: self._forget_inflight(query, done))
        # Shielded: one caller giving up must not cancel the query for the others.
        return await asyncio.shield(task)

    def _forget_inflight(self, query: Query, task: asyncio.Task[_Answer]) -> None:
        if self._inflight.get(query) is task:
            del self._inflight[query]

    async def _fetch(self, query: Query) -> _Answer:
        records: _Answer = ()
        ttl = 0.0
        try:
            answer = await self._dns.resolve(
                dns.name.from_text(query.name),
                query.rdtype,
                search=False,
                raise_on_no_answer=False,
            )
        except dns.resolver.NXDOMAIN as exc:
            responses = exc.responses()  # type: ignore[no-untyped-call]  # dnspython leaves it untyped
            ttl = negative_ttl(responses.values(), self._negative_ttl)
        except dns.exception.DNSException as exc:
            # Timeout, SERVFAIL, REFUSED, a malformed answer: not cached, so the next
            # resolution asks again.
            log.warning("DNS %s %s failed: %s", query.rdtype, query.name, exc)
            return ()
        except Exception:
            # Answers are peer data: whatever they hold, a call must not crash on them.
            log.exception("DNS %s %s: unexpected error", query.rdtype, query.name)
            return ()
        else:
            if answer.rrset is None:
                ttl = negative_ttl([answer.response], self._negative_ttl)
            else:
                records = tuple(records_of(answer.rrset))
                ttl = float(answer.chaining_result.minimum_ttl)
        self._store(query, records, ttl)
        return records

    # -- cache ------------------------------------------------------------------------

    def _now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    def _cached(self, query: Query) -> _Answer | None:
        entry = self._cache.get(query)
        if entry is None:
            return None
        expires, records = entry
        if expires <= self._now():
            del self._cache[query]
            return None
        return records

    def _store(self, query: Query, records: _Answer, ttl: float) -> None:
        if ttl <= 0:
            return  # TTL 0: use once, never cache (RFC 1035 §3.2.1)
        now = self._now()
        if len(self._cache) >= self._max_cache_entries:
            for key in [k for k, (expires, _) in self._cache.items() if expires <= now]:
                del self._cache[key]
        while len(self._cache) >= self._max_cache_entries:
            del self._cache[next(iter(self._cache))]
        self._cache.pop(query, None)
        self._cache[query] = (now + ttl, records)


def records_of(rrset: dns.rrset.RRset) -> list[Record]:
    """The NAPTR, SRV and address records of ``rrset`` as :mod:`callscript.sip.locate` values."""
    out: list[Record] = []
    for rdata in rrset:
        if isinstance(rdata, A | AAAA):
            out.append(str(rdata.address))
        elif isinstance(rdata, SRV):
            out.append(Srv(rdata.priority, rdata.weight, rdata.port, rdata.target.to_text()))
        elif isinstance(rdata, NAPTR):
            out.append(
                Naptr(
                    rdata.order,
                    rdata.preference,
                    _text(rdata.flags),
                    _text(rdata.service),
                    _text(rdata.regexp),
                    rdata.replacement.to_text(),
                )
            )
    return out


def negative_ttl(responses: Iterable[dns.message.Message], default: float) -> float:
    """Seconds to keep a negative answer: from the SOA of the first response that has one.

    Falls back to ``default`` when no response carries an SOA in its authority section.
    """
    for response in responses:
        for rrset in response.authority:
            if rrset.rdtype == dns.rdatatype.SOA:
                for rdata in rrset:
                    if isinstance(rdata, SOA):
                        # RFC 2308 §5: negative TTL = min(SOA record's TTL, SOA MINIMUM field).
                        return float(min(rrset.ttl, rdata.minimum))
    return default


def _text(value: bytes) -> str:
    # NAPTR character-strings are bytes on the wire; latin-1 maps every byte.
    return value.decode("latin-1")
