"""RFC 3263 §4 target selection over records built in the test (no DNS).

``run`` plays the resolver: it answers every query :func:`locate` asks for
from a dict of records (absent means a negative answer) and keeps the order
in which the queries were asked, so tests can check what was *not* looked up.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

import pytest

from callscript.sip.errors import LocalProtocolError
from callscript.sip.events import Peer
from callscript.sip.locate import (
    MAX_SRV_HOSTS,
    Naptr,
    Pending,
    Query,
    Record,
    Srv,
    locate,
    locate_host,
    naptr_services,
    next_after,
    order_srv,
    srv_services,
)
from callscript.sip.uri import URI


class Draws:
    """A RandomSource that returns scripted draws and records the ranges asked for."""

    def __init__(self, *values: int) -> None:
        self.values = list(values)
        self.ranges: list[tuple[int, int]] = []

    def randint(self, a: int, b: int) -> int:
        self.ranges.append((a, b))
        value = self.values.pop(0) if self.values else a
        assert a <= value <= b
        return value


def run(
    uri: str,
    records: Mapping[Query, Sequence[Record]],
    *,
    rand: Draws | random.Random | None = None,
    supported: frozenset[str] = frozenset({"UDP", "TCP", "TLS"}),
    prefer_ipv6: bool = False,
) -> tuple[list[Peer], list[Query]]:
    """Drive locate() to the end; return the targets and the queries asked, in order."""
    known: dict[Query, Sequence[Record]] = {}
    asked: list[Query] = []
    for _ in range(10):
        result = locate(
            URI.parse(uri),
            known,
            rand=rand or Draws(),
            supported=supported,
            prefer_ipv6=prefer_ipv6,
        )
        if not isinstance(result, Pending):
            return result, asked
        assert result.queries, "Pending must name at least one query"
        for query in result.queries:
            assert query not in known, f"{query} asked twice"
            asked.append(query)
            known[query] = tuple(records.get(query, ()))
    raise AssertionError("locate() did not finish")


def a(name: str, *addresses: str) -> dict[Query, Sequence[Record]]:
    return {Query(name, "A"): addresses}


def aaaa(name: str, *addresses: str) -> dict[Query, Sequence[Record]]:
    return {Query(name, "AAAA"): addresses}


def srv(name: str, *records: Srv) -> dict[Query, Sequence[Record]]:
    return {Query(name, "SRV"): records}


def naptr(name: str, *records: Naptr) -> dict[Query, Sequence[Record]]:
    return {Query(name, "NAPTR"): records}


def s_naptr(order: int, pref: int, service: str, replacement: str) -> Naptr:
    return Naptr(order, pref, "s", service, "", replacement)


# -- §4.1 / §4.2 without DNS ------------------------------------------------------


def test_numeric_ipv4_host_uses_udp_and_5060_without_any_query() -> None:
    """RFC 3263 §4.1: a numeric host without transport parameter means UDP for a sip URI."""
    assert run("sip:alice@192.0.2.1", {}) == ([Peer("UDP", "192.0.2.1", 5060)], [])


def test_numeric_ipv6_host_keeps_its_port_and_loses_its_brackets() -> None:
    """RFC 3263 §4.2: a numeric host is the address, at the URI's port; IPv6 is stored bare."""
    targets, asked = run("sip:[2001:db8::0001]:5070", {})
    assert targets == [Peer("UDP", "2001:db8::1", 5070)]
    assert asked == []
    assert targets[0].address == ("2001:db8::1", 5070)


def test_numeric_sips_host_uses_tls_on_5061() -> None:
    """RFC 3263 §4.1: a numeric host in a sips URI means TLS over TCP, port 5061."""
    assert run("sips:192.0.2.1", {}) == ([Peer("TLS", "192.0.2.1", 5061)], [])


def test_transport_parameter_wins_over_the_numeric_default() -> None:
    """RFC 3263 §4.1: the transport parameter, when present, is the transport used."""
    assert run("sip:192.0.2.1;transport=TCP", {})[0] == [Peer("TCP", "192.0.2.1", 5060)]
    assert run("sip:192.0.2.1;transport=tls", {})[0] == [Peer("TLS", "192.0.2.1", 5061)]
    assert run("sips:192.0.2.1:5071;transport=tcp", {})[0] == [Peer("TLS", "192.0.2.1", 5071)]


@pytest.mark.parametrize(
    "uri",
    ["sips:192.0.2.1;transport=udp", "sip:192.0.2.1;transport=sctp", "sip:192.0.2.1;transport=ws"],
)
def test_transport_that_cannot_be_used_gives_no_target(uri: str) -> None:
    """RFC 3263 §4.1: a sips URI never goes over UDP; unknown transports give no target."""
    assert run(uri, {}) == ([], [])


def test_transport_parameter_outside_supported_gives_no_target() -> None:
    """RFC 3263 §4.1: only transports the client supports are used."""
    assert run("sip:192.0.2.1;transport=tls", {}, supported=frozenset({"UDP", "TCP"})) == ([], [])
    assert run("sip:192.0.2.1", {}, supported=frozenset({"TCP"}))[0] == [
        Peer("TCP", "192.0.2.1", 5060)
    ]
    assert run("sips:192.0.2.1", {}, supported=frozenset({"UDP", "TCP"})) == ([], [])


def test_name_with_explicit_port_looks_up_addresses_only() -> None:
    """RFC 3263 §4.2: a name with an explicit port: A/AAAA of the name, no NAPTR, no SRV."""
    records = {
        **a("example.test", "192.0.2.10"),
        **aaaa("example.test", "2001:db8::10"),
        **naptr("example.test", s_naptr(10, 10, "SIP+D2T", "_sip._tcp.example.test")),
        **srv("_sip._udp.example.test", Srv(0, 0, 5999, "other.example.test")),
    }
    targets, asked = run("sip:bob@Example.TEST.:5080", records)
    assert targets == [Peer("UDP", "192.0.2.10", 5080), Peer("UDP", "2001:db8::10", 5080)]
    assert asked == [Query("example.test", "A"), Query("example.test", "AAAA")]


def test_sips_name_with_explicit_port_uses_tls() -> None:
    """RFC 3263 §4.1: a name with an explicit port: UDP for sip, TLS for sips."""
    targets, _ = run("sips:example.test:5081", a("example.test", "192.0.2.10"))
    assert targets == [Peer("TLS", "192.0.2.10", 5081)]


# -- §4.1 NAPTR ----------------------------------------------------------------------


def test_naptr_services_ordered_by_order_then_preference() -> None:
    """RFC 3263 §4.1: NAPTR records are used by order, then preference."""
    records = [
        s_naptr(20, 10, "SIP+D2U", "_sip._udp.example.test"),
        s_naptr(10, 50, "SIP+D2T", "_sip._tcp.example.test"),
        s_naptr(10, 20, "SIPS+D2T", "_sips._tcp.example.test"),
    ]
    services = naptr_services(records, secure=False, supported=frozenset({"UDP", "TCP", "TLS"}))
    assert [(s.transport, s.srv_name) for s in services] == [
        ("TLS", "_sips._tcp.example.test"),
        ("TCP", "_sip._tcp.example.test"),
        ("UDP", "_sip._udp.example.test"),
    ]


def test_naptr_drops_unsupported_and_non_sip_services() -> None:
    """RFC 3263 §4.1: only SIP services of supported transports are kept (SCTP is ignored)."""
    records = [
        s_naptr(1, 1, "SIP+D2S", "_sip._sctp.example.test"),
        s_naptr(2, 1, "E2U+sip", "_sip._udp.example.test"),
        Naptr(3, 1, "u", "SIP+D2U", "!^.*$!sip:x@example.test!", "."),
        Naptr(4, 1, "s", "SIP+D2U", "!x!y!", "_sip._udp.example.test"),
        s_naptr(5, 1, "SIP+D2U", "."),
        s_naptr(6, 1, "SIPS+D2T", "_sips._tcp.example.test"),
        s_naptr(7, 1, "sip+d2t", "_sip._tcp.example.test"),
    ]
    services = naptr_services(records, secure=False, supported=frozenset({"UDP", "TCP"}))
    assert [(s.transport, s.srv_name) for s in services] == [("TCP", "_sip._tcp.example.test")]


def test_sips_uri_keeps_only_sips_naptr_services() -> None:
    """RFC 3263 §4.1: a client resolving a SIPS URI discards the services that are not SIPS."""
    records = {
        **naptr(
            "example.test",
            s_naptr(10, 10, "SIP+D2U", "_sip._udp.example.test"),
            s_naptr(20, 10, "SIPS+D2T", "_sips._tcp.example.test"),
        ),
        **srv("_sip._udp.example.test", Srv(0, 0, 5060, "udp.example.test")),
        **srv("_sips._tcp.example.test", Srv(0, 0, 5061, "tls.example.test")),
        **a("udp.example.test", "192.0.2.1"),
        **a("tls.example.test", "192.0.2.2"),
    }
    targets, asked = run("sips:example.test", records)
    assert targets == [Peer("TLS", "192.0.2.2", 5061)]
    assert Query("_sip._udp.example.test", "SRV") not in asked


def test_naptr_srv_address_chain_lists_every_transport_in_naptr_order() -> None:
    """RFC 3263 §4.2: the SRV records of the NAPTR services, then their addresses, in order."""
    records = {
        **naptr(
            "example.test",
            s_naptr(20, 10, "SIP+D2U", "_sip._udp.example.test"),
            s_naptr(10, 10, "SIP+D2T", "_sip._tcp.example.test"),
        ),
        **srv("_sip._tcp.example.test", Srv(0, 0, 5080, "tcp.example.test")),
        **srv("_sip._udp.example.test", Srv(0, 0, 5090, "udp.example.test")),
        **a("tcp.example.test", "192.0.2.11"),
        **a("udp.example.test", "192.0.2.12"),
    }
    targets, asked = run("sip:alice@example.test", records)
    assert targets == [Peer("TCP", "192.0.2.11", 5080), Peer("UDP", "192.0.2.12", 5090)]
    assert asked[0] == Query("example.test", "NAPTR")
    assert Query("example.test", "A") not in asked


def test_naptr_service_without_srv_falls_back_to_addresses_with_its_transport() -> None:
    """RFC 3263 §4.2: no SRV records: A/AAAA of the name, transport from NAPTR, default port."""
    records = {
        **naptr("example.test", s_naptr(10, 10, "SIP+D2T", "_sip._tcp.example.test")),
        **a("example.test", "192.0.2.20"),
    }
    targets, _ = run("sip:example.test", records)
    assert targets == [Peer("TCP", "192.0.2.20", 5060)]


def test_naptr_without_usable_services_is_treated_as_no_naptr() -> None:
    """RFC 3263 §4.1: NAPTR records with no usable service lead to the SRV queries."""
    records = {
        **naptr("example.test", s_naptr(10, 10, "SIP+D2S", "_sip._sctp.example.test")),
        **srv("_sip._udp.example.test", Srv(0, 0, 5062, "udp.example.test")),
        **a("udp.example.test", "192.0.2.30"),
    }
    targets, asked = run("sip:example.test", records)
    assert targets == [Peer("UDP", "192.0.2.30", 5062)]
    assert Query("_sip._udp.example.test", "SRV") in asked


# -- §4.1 SRV without NAPTR ---------------------------------------------------------


def test_without_naptr_srv_queries_go_tls_tcp_udp() -> None:
    """RFC 3263 §4.1: no NAPTR: SRV queries for the supported transports, _sips._tcp first."""
    _, asked = run("sip:example.test", {})
    assert asked[:4] == [
        Query("example.test", "NAPTR"),
        Query("_sips._tcp.example.test", "SRV"),
        Query("_sip._tcp.example.test", "SRV"),
        Query("_sip._udp.example.test", "SRV"),
    ]
    services = srv_services("example.test", secure=False, supported=frozenset({"UDP"}))
    assert [s.srv_name for s in services] == ["_sip._udp.example.test"]
    services = srv_services("example.test", secure=True, supported=frozenset({"UDP", "TCP", "TLS"}))
    assert [(s.transport, s.srv_name) for s in services] == [("TLS", "_sips._tcp.example.test")]


def test_without_naptr_every_srv_service_found_is_listed_in_preference_order() -> None:
    """RFC 3263 §4.1: the SRV services found are used, TLS before TCP before UDP."""
    records = {
        **srv("_sip._udp.example.test", Srv(0, 0, 5060, "udp.example.test")),
        **srv("_sip._tcp.example.test", Srv(0, 0, 5070, "tcp.example.test")),
        **a("udp.example.test", "192.0.2.1"),
        **a("tcp.example.test", "192.0.2.2"),
    }
    targets, _ = run("sip:example.test", records)
    assert targets == [Peer("TCP", "192.0.2.2", 5070), Peer("UDP", "192.0.2.1", 5060)]


def test_no_naptr_no_srv_means_addresses_on_the_default_port() -> None:
    """RFC 3263 §4.2: no SRV records: A/AAAA of the host, UDP 5060 (sip) or TLS 5061 (sips)."""
    records = {**a("example.test", "192.0.2.40"), **aaaa("example.test", "2001:db8::40")}
    assert run("sip:example.test", records)[0] == [
        Peer("UDP", "192.0.2.40", 5060),
        Peer("UDP", "2001:db8::40", 5060),
    ]
    assert run("sips:example.test", records)[0] == [
        Peer("TLS", "192.0.2.40", 5061),
        Peer("TLS", "2001:db8::40", 5061),
    ]


def test_transport_parameter_with_a_name_queries_only_that_srv_service() -> None:
    """RFC 3263 §4.2: with a transport parameter, the SRV query is for that transport only."""
    records = {
        **srv("_sip._udp.example.test", Srv(0, 0, 5060, "udp.example.test")),
        **srv("_sip._tcp.example.test", Srv(0, 0, 5070, "tcp.example.test")),
        **a("udp.example.test", "192.0.2.1"),
        **a("tcp.example.test", "192.0.2.2"),
    }
    targets, asked = run("sip:example.test;transport=udp", records)
    assert targets == [Peer("UDP", "192.0.2.1", 5060)]
    assert asked[0] == Query("_sip._udp.example.test", "SRV")
    assert Query("example.test", "NAPTR") not in asked
    # RFC 3263 §4.2: _sips is used whenever TLS is wanted, a sips URI's tcp is TLS.
    assert run("sips:example.test;transport=tcp", {})[1][0] == Query(
        "_sips._tcp.example.test", "SRV"
    )
    assert run("sip:example.test;transport=tls", {})[1][0] == Query(
        "_sips._tcp.example.test", "SRV"
    )


def test_transport_parameter_without_srv_uses_the_addresses_on_the_default_port() -> None:
    """RFC 3263 §4.2: a transport parameter and no SRV: A/AAAA at that transport's port."""
    targets, _ = run("sip:example.test;transport=tls", a("example.test", "192.0.2.5"))
    assert targets == [Peer("TLS", "192.0.2.5", 5061)]


# -- §4.2 SRV ordering -----------------------------------------------------------------


def test_srv_priorities_ascend_and_weights_draw_within_a_priority() -> None:
    """RFC 3263 §4.2: SRV records by priority, weighted random order within one (RFC 2782)."""
    records = [
        Srv(20, 0, 5064, "c.example.test"),
        Srv(10, 40, 5062, "b.example.test"),
        Srv(10, 60, 5060, "a.example.test"),
    ]
    # Running sums in the canonical order: a=60, b=100. A draw of 70 picks b, then a.
    draws = Draws(70, 0, 0)
    assert [r.target for r in order_srv(records, draws)] == [
        "b.example.test",
        "a.example.test",
        "c.example.test",
    ]
    assert draws.ranges == [(0, 100), (0, 60), (0, 0)]
    assert [r.target for r in order_srv(records, Draws(60))][:2] == [
        "a.example.test",
        "b.example.test",
    ]


def test_srv_weight_zero_records_come_first_in_the_running_sum() -> None:
    """RFC 3263 §4.2: weight 0 records sit first in RFC 2782's list, so a draw of 0 picks them."""
    records = [Srv(0, 10, 1, "heavy.example.test"), Srv(0, 0, 2, "zero.example.test")]
    assert [r.target for r in order_srv(records, Draws(0, 0))] == [
        "zero.example.test",
        "heavy.example.test",
    ]
    assert [r.target for r in order_srv(records, Draws(1, 0))] == [
        "heavy.example.test",
        "zero.example.test",
    ]


def test_srv_order_does_not_depend_on_the_order_records_arrive_in() -> None:
    """RFC 3263 §4.2: with the same draws, any arrival order gives the same SRV order."""
    records = [Srv(1, w, 5060 + w, f"h{w}.example.test") for w in (5, 10, 20, 0, 30)]
    first = order_srv(records, random.Random(3))
    assert order_srv(list(reversed(records)), random.Random(3)) == first


def test_srv_weights_share_first_picks_in_proportion() -> None:
    """RFC 3263 §4.2: over many draws, a weight 3 record is picked first about 3 times as often."""
    records = [Srv(0, 75, 5060, "a.example.test"), Srv(0, 25, 5060, "b.example.test")]
    rand = random.Random(20240)
    firsts = [order_srv(records, rand)[0].target for _ in range(2000)]
    assert 1350 < firsts.count("a.example.test") < 1650


def test_srv_target_dot_means_no_service_and_no_address_fallback() -> None:
    """RFC 3263 §4.2: an SRV target of "." means the service is not offered; no A lookup."""
    records = {
        **srv("_sip._udp.example.test", Srv(0, 0, 5060, ".")),
        **a("example.test", "192.0.2.50"),
    }
    targets, asked = run("sip:example.test;transport=udp", records)
    assert targets == []
    assert Query("example.test", "A") not in asked


def test_srv_targets_list_every_address_then_the_next_target() -> None:
    """RFC 3263 §4.2: each SRV target contributes its A then AAAA addresses, in SRV order."""
    records = {
        **srv(
            "_sip._udp.example.test",
            Srv(1, 0, 5060, "one.example.test"),
            Srv(2, 0, 5061, "two.example.test"),
        ),
        **a("one.example.test", "192.0.2.1", "192.0.2.2"),
        **aaaa("one.example.test", "2001:db8::1"),
        **a("two.example.test", "192.0.2.3"),
    }
    targets, _ = run("sip:example.test;transport=udp", records)
    assert targets == [
        Peer("UDP", "192.0.2.1", 5060),
        Peer("UDP", "192.0.2.2", 5060),
        Peer("UDP", "2001:db8::1", 5060),
        Peer("UDP", "192.0.2.3", 5061),
    ]
    targets, _ = run("sip:example.test;transport=udp", records, prefer_ipv6=True)
    assert targets[0] == Peer("UDP", "2001:db8::1", 5060)


def test_srv_records_that_cannot_be_targets_are_skipped_and_duplicates_dropped() -> None:
    """RFC 3263 §4.2: port 0, unresolvable and repeated targets do not enter the list."""
    records = {
        **srv(
            "_sip._udp.example.test",
            Srv(1, 0, 0, "zero.example.test"),
            Srv(2, 0, 5060, "same.example.test"),
            Srv(3, 0, 5060, "alias.example.test"),
            Srv(4, 0, 5060, "gone.example.test"),
        ),
        **a("zero.example.test", "192.0.2.9"),
        **a("same.example.test", "192.0.2.1"),
        **a("alias.example.test", "192.0.2.1", "not-an-address"),
    }
    targets, _ = run("sip:example.test;transport=udp", records)
    assert targets == [Peer("UDP", "192.0.2.1", 5060)]


def test_a_hostile_srv_set_costs_a_bounded_number_of_queries() -> None:
    """RFC 3263 §4.2: a huge SRV set is looked up for at most MAX_SRV_HOSTS targets."""
    many = tuple(Srv(0, 0, 5060, f"h{i}.example.test") for i in range(200))
    _, asked = run("sip:example.test;transport=udp", srv("_sip._udp.example.test", *many))
    assert len([q for q in asked if q.rdtype in ("A", "AAAA")]) == 2 * MAX_SRV_HOSTS


# -- maddr, misuse, helpers ---------------------------------------------------------


def test_maddr_replaces_the_host_for_every_lookup() -> None:
    """RFC 3263 §4: the maddr parameter, when present, is looked up instead of the host."""
    records = {**a("proxy.example.test", "192.0.2.60"), **a("example.test", "192.0.2.99")}
    targets, asked = run("sip:alice@example.test:5070;maddr=proxy.example.test", records)
    assert targets == [Peer("UDP", "192.0.2.60", 5070)]
    assert all(q.name == "proxy.example.test" for q in asked)
    assert run("sip:alice@example.test;maddr=[2001:db8::7]", {}) == (
        [Peer("UDP", "2001:db8::7", 5060)],
        [],
    )
    assert run("sip:alice@example.test;maddr=192.0.2.7;transport=tcp", {})[0] == [
        Peer("TCP", "192.0.2.7", 5060)
    ]


def test_maddr_that_is_no_host_gives_no_target() -> None:
    """RFC 3263 §4: a maddr that is neither a name nor an address cannot be resolved."""
    assert run("sip:alice@example.test;maddr=a..b", {}) == ([], [])


def test_non_sip_uri_and_unknown_supported_transport_are_misuse() -> None:
    """locate() refuses a tel: URI and transports a Peer cannot carry."""
    with pytest.raises(LocalProtocolError):
        locate(URI.parse("tel:+15551234"), {}, rand=Draws())
    with pytest.raises(LocalProtocolError):
        locate(URI.parse("sip:example.test"), {}, rand=Draws(), supported=frozenset({"SCTP"}))


def test_locate_host_returns_literals_at_once_and_asks_for_names() -> None:
    """A literal needs no query; a name needs A and AAAA; junk resolves to nothing."""
    assert locate_host("[::FFFF:192.0.2.1]", {}) == ["::ffff:c000:201"]
    assert locate_host("Host.Example.TEST.", {}) == Pending(
        (Query("host.example.test", "A"), Query("host.example.test", "AAAA"))
    )
    known = {**a("h.test", "192.0.2.1"), **aaaa("h.test", "2001:DB8::1")}
    assert locate_host("h.test", known) == ["192.0.2.1", "2001:db8::1"]
    assert locate_host("h.test", known, prefer_ipv6=True) == ["2001:db8::1", "192.0.2.1"]
    assert locate_host("bad host", {}) == []


def test_next_after_walks_the_target_list() -> None:
    """RFC 3263 §4.3: after a failure the client tries the next target, ignoring the connection."""
    targets = [Peer("TCP", "192.0.2.1", 5060), Peer("UDP", "192.0.2.2", 5060)]
    assert next_after(targets, Peer("TCP", "192.0.2.1", 5060, connection=7)) == targets[1]
    assert next_after(targets, targets[1]) is None
    assert next_after(targets, Peer("UDP", "192.0.2.9", 5060)) is None
