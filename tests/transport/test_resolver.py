"""RFC 3263 server location against a real DNS server (dnsmasq on 127.0.0.1).

The zone below holds one small domain per case. dnsmasq logs every query it
answers, so tests can prove what the resolver asked and what it took from its
cache. Time for the cache comes from an injected clock; randomness for SRV
weights from scripted draws.
"""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import Iterator

import dns.message
import pytest

from callscript.errors import TransportError
from callscript.sip.events import Peer
from callscript.sip.locate import next_after
from callscript.sip.uri import URI
from callscript.transport.resolver import Resolver, negative_ttl
from tests.transport.dns_server import DnsServer, running_dnsmasq

pytestmark = pytest.mark.interop

ZONE = (
    # naptr.test: NAPTR -> SRV -> A for TLS, TCP and UDP (listed out of order on purpose).
    "--naptr-record=naptr.test,20,10,s,SIP+D2U,,_sip._udp.naptr.test",
    "--naptr-record=naptr.test,10,20,s,SIP+D2T,,_sip._tcp.naptr.test",
    "--naptr-record=naptr.test,10,10,s,SIPS+D2T,,_sips._tcp.naptr.test",
    "--srv-host=_sips._tcp.naptr.test,tls.naptr.test,5061,0,0",
    "--srv-host=_sip._tcp.naptr.test,tcp.naptr.test,5080,0,0",
    "--srv-host=_sip._udp.naptr.test,udp.naptr.test,5090,0,0",
    "--host-record=tls.naptr.test,127.0.0.10",
    "--host-record=tcp.naptr.test,127.0.0.11",
    "--host-record=udp.naptr.test,127.0.0.12",
    # weights.test: two SRV records at priority 10 (weights 60/40), one at 20.
    "--srv-host=_sip._udp.weights.test,a.weights.test,5060,10,60",
    "--srv-host=_sip._udp.weights.test,b.weights.test,5062,10,40",
    "--srv-host=_sip._udp.weights.test,c.weights.test,5064,20,0",
    "--host-record=a.weights.test,127.0.0.21",
    "--host-record=b.weights.test,127.0.0.22",
    "--host-record=c.weights.test,127.0.0.23",
    # mixed.test: no NAPTR, SRV for UDP and TCP, and an A record of its own.
    "--srv-host=_sip._udp.mixed.test,udp.mixed.test,5060,0,0",
    "--srv-host=_sip._tcp.mixed.test,tcp.mixed.test,5070,0,0",
    "--host-record=udp.mixed.test,127.0.0.31",
    "--host-record=tcp.mixed.test,127.0.0.32",
    "--host-record=mixed.test,127.0.0.30",
    # Addresses only.
    "--host-record=dual.test,127.0.0.40,2001:db8::40",
    "--host-record=v6only.test,2001:db8::41",
    "--host-record=localhost,127.0.0.1",
    # dot.test: "_sip._udp" says "no such service" (target "."), though an A record exists.
    "--srv-host=_sip._udp.dot.test",
    "--host-record=dot.test,127.0.0.50",
    # ttl.test: the SRV record lives 300 s, its target's address only 5 s.
    "--srv-host=_sip._udp.ttl.test,short.ttl.test,5060,0,0",
    "--host-record=short.ttl.test,127.0.0.60,5",
)


class Clock:
    """A hand-moved monotonic clock for cache expiry."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Draws(random.Random):
    """Scripted draws for RFC 2782 weights; the lowest value once the script runs out."""

    def __init__(self, *values: int) -> None:
        super().__init__(0)
        self.values = list(values)

    def randint(self, a: int, b: int) -> int:
        return self.values.pop(0) if self.values else a


@pytest.fixture(scope="module")
def dns_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DnsServer]:
    with running_dnsmasq(tmp_path_factory.mktemp("dnsmasq"), ZONE) as server:
        yield server


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def resolver(dns_server: DnsServer, clock: Clock) -> Resolver:
    return Resolver([dns_server.address], clock=clock, rand=Draws())


@pytest.fixture
def silent_server() -> Iterator[socket.socket]:
    """A UDP socket that takes queries and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        yield sock


def resolve(resolver: Resolver, uri: str) -> list[Peer]:
    return asyncio.run(resolver.resolve(URI.parse(uri)))


def datagrams(sock: socket.socket) -> int:
    count = 0
    while True:
        try:
            sock.recv(4096)
        except BlockingIOError:
            return count
        count += 1


# -- §4.1 / §4.2 over real records ----------------------------------------------------


def test_naptr_srv_a_chain_gives_each_transport_with_its_srv_port(
    resolver: Resolver, dns_server: DnsServer
) -> None:
    """RFC 3263 §4.1: NAPTR picks the transports in order, SRV their ports, A the addresses."""
    mark = dns_server.mark()
    targets = resolve(resolver, "sip:alice@naptr.test")
    assert targets == [
        Peer("TLS", "127.0.0.10", 5061),
        Peer("TCP", "127.0.0.11", 5080),
        Peer("UDP", "127.0.0.12", 5090),
    ]
    asked = dns_server.queries_since(mark)
    assert asked[0] == ("NAPTR", "naptr.test")
    assert ("A", "naptr.test") not in asked


def test_naptr_keeps_only_supported_transports(dns_server: DnsServer) -> None:
    """RFC 3263 §4.1: NAPTR services of transports the client lacks are skipped."""
    resolver = Resolver([dns_server.address], supported=frozenset({"UDP", "TCP"}))
    assert resolve(resolver, "sip:naptr.test") == [
        Peer("TCP", "127.0.0.11", 5080),
        Peer("UDP", "127.0.0.12", 5090),
    ]


def test_failover_list_holds_every_target_in_order(resolver: Resolver) -> None:
    """RFC 3263 §4.3: the client walks the whole list, one target after another."""
    targets = resolve(resolver, "sip:naptr.test")
    walked = [targets[0]]
    while (following := next_after(targets, walked[-1])) is not None:
        walked.append(following)
    assert walked == targets
    assert len(walked) == 3


def test_sips_uses_tls_only(resolver: Resolver) -> None:
    """RFC 3263 §4.1: a SIPS URI keeps only SIPS+D2T, or _sips._tcp, or TLS on 5061."""
    assert resolve(resolver, "sips:bob@naptr.test") == [Peer("TLS", "127.0.0.10", 5061)]
    assert resolve(resolver, "sips:bob@mixed.test") == [Peer("TLS", "127.0.0.30", 5061)]


def test_srv_priority_then_weights_with_scripted_draws(dns_server: DnsServer) -> None:
    """RFC 3263 §4.2: SRV by priority, weighted draw within one (a=60, b=40: a draw of 70 is b)."""
    heavy_last = Resolver([dns_server.address], rand=Draws(70))
    assert resolve(heavy_last, "sip:weights.test") == [
        Peer("UDP", "127.0.0.22", 5062),
        Peer("UDP", "127.0.0.21", 5060),
        Peer("UDP", "127.0.0.23", 5064),
    ]
    heavy_first = Resolver([dns_server.address], rand=Draws(60))
    assert [t.port for t in resolve(heavy_first, "sip:weights.test")] == [5060, 5062, 5064]


def test_without_naptr_srv_services_are_tried_tls_tcp_udp(
    resolver: Resolver, dns_server: DnsServer
) -> None:
    """RFC 3263 §4.1: no NAPTR: SRV queries _sips._tcp, _sip._tcp, _sip._udp; all found are used."""
    mark = dns_server.mark()
    assert resolve(resolver, "sip:mixed.test") == [
        Peer("TCP", "127.0.0.32", 5070),
        Peer("UDP", "127.0.0.31", 5060),
    ]
    asked = dns_server.queries_since(mark)
    assert asked[0] == ("NAPTR", "mixed.test")
    assert sorted(asked[1:4]) == [
        ("SRV", "_sip._tcp.mixed.test"),
        ("SRV", "_sip._udp.mixed.test"),
        ("SRV", "_sips._tcp.mixed.test"),
    ]


def test_explicit_port_bypasses_naptr_and_srv(resolver: Resolver, dns_server: DnsServer) -> None:
    """RFC 3263 §4.2: a name with a port: its A/AAAA records at that port, no SRV."""
    mark = dns_server.mark()
    assert resolve(resolver, "sip:mixed.test:5099") == [Peer("UDP", "127.0.0.30", 5099)]
    assert sorted(dns_server.queries_since(mark)) == [("A", "mixed.test"), ("AAAA", "mixed.test")]


def test_transport_parameter_queries_only_its_srv_service(
    resolver: Resolver, dns_server: DnsServer
) -> None:
    """RFC 3263 §4.2: with transport=udp, only _sip._udp is asked for."""
    mark = dns_server.mark()
    assert resolve(resolver, "sip:mixed.test;transport=udp") == [Peer("UDP", "127.0.0.31", 5060)]
    assert dns_server.queries_since(mark)[0] == ("SRV", "_sip._udp.mixed.test")


def test_numeric_host_never_touches_dns(silent_server: socket.socket) -> None:
    """RFC 3263 §4.2: a numeric host is the target itself; no query is sent at all."""
    resolver = Resolver([silent_server.getsockname()], timeout=0.5)
    assert resolve(resolver, "sip:127.0.0.1:5070;transport=tcp") == [Peer("TCP", "127.0.0.1", 5070)]
    assert resolve(resolver, "sips:[::1]") == [Peer("TLS", "::1", 5061)]
    assert asyncio.run(resolver.lookup_host("[::1]")) == ["::1"]
    assert datagrams(silent_server) == 0


def test_aaaa_records_and_the_ipv6_preference(resolver: Resolver, dns_server: DnsServer) -> None:
    """RFC 3263 §4.2: A and AAAA records both give targets, A first unless IPv6 is preferred."""
    assert resolve(resolver, "sip:v6only.test") == [Peer("UDP", "2001:db8::41", 5060)]
    assert resolve(resolver, "sip:dual.test") == [
        Peer("UDP", "127.0.0.40", 5060),
        Peer("UDP", "2001:db8::40", 5060),
    ]
    v6_first = Resolver([dns_server.address], prefer_ipv6=True)
    assert asyncio.run(v6_first.lookup_host("dual.test")) == ["2001:db8::40", "127.0.0.40"]


def test_srv_target_dot_means_no_service(resolver: Resolver) -> None:
    """RFC 3263 §4.2: an SRV target of "." means no service; the A record is not used."""
    assert resolve(resolver, "sip:dot.test;transport=udp") == []


def test_maddr_is_resolved_instead_of_the_host(resolver: Resolver, dns_server: DnsServer) -> None:
    """RFC 3263 §4: the maddr parameter is the name looked up; the host is not."""
    mark = dns_server.mark()
    assert resolve(resolver, "sip:alice@naptr.test:5070;maddr=dual.test") == [
        Peer("UDP", "127.0.0.40", 5070),
        Peer("UDP", "2001:db8::40", 5070),
    ]
    assert all(name == "dual.test" for _, name in dns_server.queries_since(mark))


def test_localhost_is_asked_of_the_configured_server(
    resolver: Resolver, dns_server: DnsServer
) -> None:
    """localhost is a name like any other: the configured server answers it, not /etc/hosts."""
    mark = dns_server.mark()
    assert resolve(resolver, "sip:localhost:5070") == [Peer("UDP", "127.0.0.1", 5070)]
    assert ("A", "localhost") in dns_server.queries_since(mark)


def test_nxdomain_gives_no_target(resolver: Resolver) -> None:
    """A name that does not exist resolves to an empty list, not an error."""
    assert resolve(resolver, "sip:alice@nowhere.test") == []
    assert asyncio.run(resolver.lookup_host("nowhere.test")) == []


def test_unreachable_server_gives_no_target_and_is_not_cached(silent_server: socket.socket) -> None:
    """A DNS timeout yields no target; failures are not cached, so the next call asks again."""
    resolver = Resolver([silent_server.getsockname()], timeout=0.2)
    assert resolve(resolver, "sip:far.test:5060") == []
    first = datagrams(silent_server)
    assert resolve(resolver, "sip:far.test:5060") == []
    assert first >= 2
    assert datagrams(silent_server) >= 2


def test_misuse_raises_transport_error(resolver: Resolver) -> None:
    """Only misuse raises: a tel: URI, or a transport a Peer cannot carry."""
    with pytest.raises(TransportError):
        resolve(resolver, "tel:+15551234")
    with pytest.raises(TransportError):
        Resolver([("127.0.0.1", 53)], supported=frozenset({"UDP", "SCTP"}))


# -- cache ----------------------------------------------------------------------------


def test_second_resolution_is_served_from_the_cache_until_the_ttl_ends(
    resolver: Resolver, dns_server: DnsServer, clock: Clock
) -> None:
    """Records live their TTL (300 s), empty AAAA answers negative_ttl (30 s); then asked again."""
    mark = dns_server.mark()
    first = resolve(resolver, "sip:naptr.test")
    asked = dns_server.queries_since(mark)
    assert len(asked) == 1 + 3 + 6  # NAPTR, three SRV, A and AAAA of three targets
    mark = dns_server.mark()
    clock.now += 29
    assert resolve(resolver, "sip:naptr.test") == first
    assert dns_server.queries_since(mark) == []
    clock.now += 2
    assert resolve(resolver, "sip:naptr.test") == first
    assert sorted(dns_server.queries_since(mark)) == sorted(q for q in asked if q[0] == "AAAA")
    mark = dns_server.mark()
    clock.now += 270
    assert resolve(resolver, "sip:naptr.test") == first
    assert sorted(dns_server.queries_since(mark)) == sorted(asked)


def test_only_expired_records_are_asked_for_again(
    resolver: Resolver, dns_server: DnsServer, clock: Clock
) -> None:
    """The target's 5 s address record is asked again after 5 s; the 300 s SRV record is not."""
    assert resolve(resolver, "sip:ttl.test;transport=udp") == [Peer("UDP", "127.0.0.60", 5060)]
    clock.now += 6
    mark = dns_server.mark()
    assert resolve(resolver, "sip:ttl.test;transport=udp") == [Peer("UDP", "127.0.0.60", 5060)]
    assert dns_server.queries_since(mark) == [("A", "short.ttl.test")]


def test_negative_answers_are_cached_briefly(dns_server: DnsServer, clock: Clock) -> None:
    """NXDOMAIN is kept for negative_ttl when the server sends no SOA, then asked again."""
    resolver = Resolver([dns_server.address], clock=clock, negative_ttl=30.0)
    mark = dns_server.mark()
    assert resolve(resolver, "sip:nowhere.test:5060") == []
    assert sorted(dns_server.queries_since(mark)) == [
        ("A", "nowhere.test"),
        ("AAAA", "nowhere.test"),
    ]
    mark = dns_server.mark()
    clock.now += 29
    assert resolve(resolver, "sip:nowhere.test:5060") == []
    assert dns_server.queries_since(mark) == []
    clock.now += 2
    assert resolve(resolver, "sip:nowhere.test:5060") == []
    assert len(dns_server.queries_since(mark)) == 2


def test_concurrent_resolutions_share_each_query(resolver: Resolver, dns_server: DnsServer) -> None:
    """Two resolutions of one URI at once send each query once."""

    async def both() -> list[list[Peer]]:
        uri = URI.parse("sip:weights.test")
        return list(await asyncio.gather(resolver.resolve(uri), resolver.resolve(uri)))

    mark = dns_server.mark()
    first, second = asyncio.run(both())
    assert first == second != []
    asked = dns_server.queries_since(mark)
    assert len(asked) == len(set(asked))


def test_clear_cache_forgets_every_answer(resolver: Resolver, dns_server: DnsServer) -> None:
    """After clear_cache() the next resolution asks the server again."""
    resolve(resolver, "sip:dual.test:5060")
    resolver.clear_cache()
    mark = dns_server.mark()
    resolve(resolver, "sip:dual.test:5060")
    assert len(dns_server.queries_since(mark)) == 2


def test_negative_ttl_comes_from_the_soa_when_there_is_one() -> None:
    """RFC 2308 §5: a negative answer lives min(SOA TTL, SOA MINIMUM); without SOA the default."""
    response = dns.message.from_text(
        "id 1\nopcode QUERY\nrcode NXDOMAIN\nflags QR AA RD RA\n"
        ";QUESTION\nnowhere.example. IN A\n;ANSWER\n;AUTHORITY\n"
        "example. 3600 IN SOA ns.example. admin.example. 1 7200 900 1209600 120\n"
    )
    assert negative_ttl([response], 30.0) == 120.0
    shorter = dns.message.from_text(
        "id 1\nopcode QUERY\nrcode NXDOMAIN\nflags QR AA RD RA\n"
        ";QUESTION\nnowhere.example. IN A\n;ANSWER\n;AUTHORITY\n"
        "example. 60 IN SOA ns.example. admin.example. 1 7200 900 1209600 120\n"
    )
    assert negative_ttl([shorter], 30.0) == 60.0
    bare = dns.message.from_text(
        "id 1\nopcode QUERY\nrcode NXDOMAIN\nflags QR\n;QUESTION\nnowhere.example. IN A\n"
    )
    assert negative_ttl([bare], 30.0) == 30.0
