"""The layer as a whole: one timer heap, CANCEL, bounded memory, and layers talking over a
network.
"""

from __future__ import annotations

import pytest
from netsim import (
    FakeClock,
    Network,
    Relay,
    Uac,
    Uas,
    drain,
    make_request,
    make_response,
)

from callscript.sip.errors import LocalProtocolError
from callscript.sip.events import (
    CancelSent,
    Outgoing,
    Peer,
    RequestReceived,
    ResponseReceived,
    TransactionTerminated,
    TransactionTimedOut,
)
from callscript.sip.message import Request, Response
from callscript.sip.timers import TimerConfig
from callscript.sip.transaction import TransactionLayer, build_cancel

UDP = Peer("UDP", "10.0.0.2", 5060)
TCP = Peer("TCP", "10.0.0.2", 5060)


def methods(outgoing: list[Outgoing]) -> list[str]:
    return [
        o.message.method if isinstance(o.message, Request) else str(o.message.status)
        for o in outgoing
    ]


# -- CANCEL ------------------------------------------------------------------------------


def test_cancel_copies_the_invite() -> None:
    """RFC 3261 §9.1: CANCEL has the INVITE's Request-URI, Call-ID, To, From, CSeq number, top
    Via and Routes.
    """
    invite = make_request("INVITE", routes=("<sip:p1.example.com;lr>",), cseq=7)
    invite.insert("Via", Via_of_upstream := invite.top_via.with_params(branch="z9hG4bK-up"))
    cancel = build_cancel(invite)
    assert cancel.method == "CANCEL" and cancel.uri == invite.uri
    assert cancel.call_id == invite.call_id
    assert cancel.to_addr == invite.to_addr and cancel.from_addr == invite.from_addr
    assert (cancel.cseq.number, cancel.cseq.method) == (7, "CANCEL")
    assert cancel.via == [Via_of_upstream]
    assert cancel["Route"] == invite["Route"]
    assert cancel.max_forwards == 70
    layer = TransactionLayer()
    key = layer.send_request(invite, UDP, now=0.0)
    assert layer.cancel_request(key) == cancel


def test_cancel_request_needs_an_invite_client_transaction() -> None:
    """RFC 3261 §9.1: only an INVITE can be cancelled."""
    layer = TransactionLayer()
    key = layer.send_request(make_request("OPTIONS"), UDP, now=0.0)
    with pytest.raises(LocalProtocolError):
        layer.cancel_request(key)
    with pytest.raises(KeyError):
        layer.cancel_request("C z9hG4bK-none INVITE")


def test_cancel_goes_out_at_once_after_a_provisional() -> None:
    """RFC 3261 §9.1: with a provisional received, the CANCEL starts its own transaction to the
    same peer.
    """
    layer = TransactionLayer()
    invite = make_request("INVITE")
    key = layer.send_request(invite, UDP, now=0.0)
    layer.handle_response(make_response(invite, 180, to_tag="t"), UDP, now=0.1)
    layer.messages_to_send()
    drain(layer)
    cancel_key = layer.request_cancel(key, now=0.2)
    assert cancel_key is not None
    out = layer.messages_to_send()
    assert methods(out) == ["CANCEL"] and out[0].peer == UDP
    assert drain(layer) == [CancelSent(key, cancel_key)]
    assert layer.request_cancel(key, now=0.3) == cancel_key  # asking twice sends one CANCEL
    assert layer.messages_to_send() == []


def test_cancel_waits_for_the_first_provisional() -> None:
    """RFC 3261 §9.1: no CANCEL before a provisional response; it goes out when one arrives."""
    layer = TransactionLayer()
    invite = make_request("INVITE")
    key = layer.send_request(invite, UDP, now=0.0)
    layer.messages_to_send()
    assert layer.request_cancel(key, now=0.1) is None
    assert layer.request_cancel(key, now=0.2) is None
    assert layer.messages_to_send() == []
    ringing = make_response(invite, 180, to_tag="t")
    layer.handle_response(ringing, UDP, now=0.3)
    assert methods(layer.messages_to_send()) == ["CANCEL"]
    events = drain(layer)
    assert events[0] == ResponseReceived(key, ringing, UDP)
    assert isinstance(events[1], CancelSent) and events[1].key == key
    layer.handle_response(make_response(invite, 183, to_tag="t"), UDP, now=0.4)
    assert layer.messages_to_send() == []


def test_no_cancel_when_the_final_response_comes_first() -> None:
    """RFC 3261 §9.1: a final response before any provisional leaves nothing to cancel."""
    for status in (200, 486):
        layer = TransactionLayer()
        invite = make_request("INVITE")
        key = layer.send_request(invite, UDP, now=0.0)
        layer.messages_to_send()
        assert layer.request_cancel(key, now=0.1) is None
        layer.handle_response(make_response(invite, status, to_tag="t"), UDP, now=0.2)
        assert "CANCEL" not in methods(layer.messages_to_send())
        assert not any(isinstance(e, CancelSent) for e in drain(layer))
        layer.handle_response(make_response(invite, 180, to_tag="t"), UDP, now=0.3)
        assert layer.request_cancel(key, now=0.4) is None
        assert layer.messages_to_send() == []


def test_cancel_of_an_ended_transaction_does_nothing() -> None:
    """RFC 3261 §9.1: a transaction that is gone (or never existed) cannot be cancelled."""
    layer = TransactionLayer()
    assert layer.request_cancel("C z9hG4bK-none INVITE", now=0.0) is None
    assert layer.messages_to_send() == []


# -- the timer heap -----------------------------------------------------------------------


def test_timers_of_all_transactions_fire_in_deadline_order() -> None:
    """RFC 3261 §17.1.2.2: Timer F of each transaction fires at 64*T1 after its start, earliest
    first.
    """
    layer = TransactionLayer()
    late = layer.send_request(make_request("INVITE", branch="z9hG4bK-late"), TCP, now=0.2)
    early = layer.send_request(make_request("OPTIONS", branch="z9hG4bK-early"), TCP, now=0.1)
    assert layer.next_deadline() == pytest.approx(32.1)
    layer.handle_timers(now=40.0)
    assert drain(layer) == [
        TransactionTimedOut(early),
        TransactionTerminated(early),
        TransactionTimedOut(late),
        TransactionTerminated(late),
    ]
    assert layer.next_deadline() is None


def test_late_timer_call_does_not_burst_retransmissions() -> None:
    """RFC 3261 §17.1.2.2: a late handle_timers resends once and restarts Timer E from now."""
    layer = TransactionLayer()
    layer.send_request(make_request("OPTIONS"), UDP, now=0.0)
    layer.messages_to_send()
    layer.handle_timers(now=10.0)
    assert methods(layer.messages_to_send()) == ["OPTIONS"]
    assert layer.next_deadline() == 11.0


def test_next_deadline_skips_cancelled_timers() -> None:
    """RFC 3261 §17.1.1.2: after a provisional neither Timer A nor Timer B is due."""
    layer = TransactionLayer()
    invite = make_request("INVITE")
    layer.send_request(invite, UDP, now=0.0)
    layer.send_request(make_request("OPTIONS", branch="z9hG4bK-2"), TCP, now=1.0)
    assert layer.next_deadline() == 0.5
    layer.handle_response(make_response(invite, 180, to_tag="t"), UDP, now=0.2)
    assert layer.next_deadline() == 33.0


def test_request_stays_readable_until_terminated_event_is_taken() -> None:
    """RFC 3261 §17.1.2.2: with Timer K zero the transaction ends at once; its request is still
    readable.
    """
    layer = TransactionLayer()
    request = make_request("OPTIONS")
    key = layer.send_request(request, TCP, now=0.0)
    layer.handle_response(make_response(request, 200, to_tag="t"), TCP, now=0.1)
    assert key not in layer and len(layer) == 0
    assert isinstance(layer.next_event(), ResponseReceived)
    assert layer.client_request(key) is request
    assert layer.next_event() == TransactionTerminated(key)
    with pytest.raises(KeyError):
        layer.client_request(key)


def test_memory_is_bounded_after_ten_thousand_transactions() -> None:
    """RFC 3261 §17.1.1.2: terminated transactions and their timers are forgotten."""
    uac, uas = TransactionLayer(), TransactionLayer()
    src = Peer("UDP", "10.0.0.1", 5060)
    now = 0.0
    biggest_heap = 0
    for i in range(10_000):
        now = i * 0.001
        method = "INVITE" if i % 2 else "OPTIONS"
        transport = "TCP" if i % 3 == 0 else "UDP"
        peer = Peer(transport, "10.0.0.2", 5060)
        request = make_request(method, branch=f"z9hG4bK-{i}", transport=transport, call_id=f"c{i}")
        uac.send_request(request, peer, now=now)
        for out in uac.messages_to_send():
            uas.handle_request(out.message, Peer(transport, src.host, src.port), now=now)  # type: ignore[arg-type]
        for event in drain(uas):
            if isinstance(event, RequestReceived) and event.key is not None:
                uas.send_response(event.key, make_response(event.request, 180, to_tag="t"), now=now)
                status = (200, 486)[i % 4 == 1]
                uas.send_response(
                    event.key, make_response(event.request, status, to_tag="t"), now=now
                )
        for out in uas.messages_to_send():
            uac.handle_response(out.message, peer, now=now)  # type: ignore[arg-type]
        for out in uac.messages_to_send():  # ACKs for 486
            uas.handle_request(out.message, Peer(transport, src.host, src.port), now=now)  # type: ignore[arg-type]
        drain(uac)
        drain(uas)
        biggest_heap = max(biggest_heap, len(uac._runtime.heap), len(uas._runtime.heap))
    assert len(uac) > 0
    # Stale entries never outnumber the live ones by far: the heap is compacted.
    assert biggest_heap <= 64 + 8 * 10_000
    uac.handle_timers(now=now + 100)
    uas.handle_timers(now=now + 100)
    drain(uac)
    drain(uas)
    for layer in (uac, uas):
        assert len(layer) == 0
        assert layer._clients == {} and layer._servers == {} and layer._finished == {}
        assert (
            layer._runtime.heap == [] and not layer._runtime.events and layer._runtime.outbox == []
        )
        assert layer.next_deadline() is None


def test_heap_drops_stale_timers_of_ended_transactions() -> None:
    """RFC 3261 §17.1.1.2: on TCP a 486 ends the transaction at once; its Timer B entry does not
    linger.
    """
    layer = TransactionLayer()
    for i in range(10_000):
        invite = make_request("INVITE", branch=f"z9hG4bK-{i}", transport="TCP", call_id=f"c{i}")
        layer.send_request(invite, TCP, now=0.0)
        layer.handle_response(make_response(invite, 486, to_tag="t"), TCP, now=0.0)
        assert (
            len(layer._runtime.heap) <= 64 + 8 + 2
        )  # compacted: never 10,000 stale Timer B entries
    layer.messages_to_send()
    drain(layer)
    assert len(layer) == 0 and layer._finished == {}
    assert layer.next_deadline() is None and layer._runtime.heap == []


# -- layers over the in-memory network ----------------------------------------------


def uac_uas(
    net: Network, *, transport: str = "UDP", final: int = 200, provisional: int | None = 180
):  # type: ignore[no-untyped-def]
    uas_tu = Uas(net.timers, final=final, provisional=provisional)
    uas = net.add("uas", "10.0.0.2", tu=uas_tu)
    uac_tu = Uac(uas.peer(transport))
    uac = net.add("uac", "10.0.0.1", tu=uac_tu)
    return uac, uac_tu, uas, uas_tu


def test_invite_200_ack_between_two_layers(net: Network, clock: FakeClock) -> None:
    """RFC 6026 §7.1: the UAS 2xx goes through Accepted, the ACK reaches the TU, both sides end
    at 64*T1.
    """
    uac, uac_tu, uas, uas_tu = uac_uas(net)
    uac_tu.send(uac, make_request("INVITE"), clock.now)
    net.run_until_idle()
    assert net.labels() == [(0.0, "INVITE"), (0.0, "180 INVITE"), (0.0, "200 INVITE"), (0.0, "ACK")]
    assert [r.status for r in uac_tu.responses] == [180, 200]
    assert len(uas_tu.acks) == 1
    assert len(uac.layer) == len(uas.layer) == 0
    assert clock.now == 32.0


def test_non_invite_between_two_layers_over_tcp(net: Network, clock: FakeClock) -> None:
    """RFC 3261 §17.1.2.2: on TCP one request and one response, and both transactions end at
    once.
    """
    uac, uac_tu, uas, _ = uac_uas(net, transport="TCP")
    uac_tu.send(uac, make_request("OPTIONS", transport="TCP"), clock.now)
    net.run_until_idle()
    assert net.labels() == [(0.0, "OPTIONS"), (0.0, "200 OPTIONS")]
    assert clock.now == 0.0
    assert len(uac.layer) == len(uas.layer) == 0


def test_invite_failure_is_acked_hop_by_hop_through_a_relay(net: Network, clock: FakeClock) -> None:
    """RFC 3261 §17.1.1.3: each hop's client transaction ACKs the 486 it received."""
    uas_tu = Uas(net.timers, final=486)
    uas = net.add("uas", "10.0.0.3", tu=uas_tu)
    relay = net.add("relay", "10.0.0.2", tu=Relay(uas.peer(), "10.0.0.2", 5060))
    uac_tu = Uac(relay.peer())
    uac = net.add("uac", "10.0.0.1", tu=uac_tu)
    uac_tu.send(uac, make_request("INVITE"), clock.now)
    net.run_until_idle()
    assert [(s.sender, s.label) for s in net.sent] == [
        ("uac", "INVITE"),
        ("relay", "100 INVITE"),
        ("relay", "INVITE"),
        ("uas", "180 INVITE"),
        ("uas", "486 INVITE"),
        ("relay", "180 INVITE"),
        ("relay", "ACK"),
        ("relay", "486 INVITE"),
        ("uac", "ACK"),
    ]
    assert [r.status for r in uac_tu.responses] == [100, 180, 486]
    assert all(len(node.layer) == 0 for node in net.nodes.values())


def test_cancel_through_a_relay(net: Network, clock: FakeClock) -> None:
    """RFC 3261 §9.1: the CANCEL follows the INVITE hop by hop and the 487 ends the call attempt."""
    uas_tu = Uas(net.timers, final=0)
    uas = net.add("uas", "10.0.0.3", tu=uas_tu)
    relay = net.add("relay", "10.0.0.2", tu=Relay(uas.peer(), "10.0.0.2", 5060))
    uac_tu = Uac(relay.peer())
    uac = net.add("uac", "10.0.0.1", tu=uac_tu)
    key = uac_tu.send(uac, make_request("INVITE"), clock.now)
    net.run_until_idle(until=1.0)
    clock.now = 1.0
    assert uac.layer.request_cancel(key, now=clock.now) is not None
    net.run_until_idle()
    assert [r.status for r in uac_tu.responses] == [100, 180, 200, 487]
    assert [r.method for r in uas_tu.requests] == ["INVITE", "CANCEL"]
    assert ("uac", "ACK") in [(s.sender, s.label) for s in net.sent]
    assert all(len(node.layer) == 0 for node in net.nodes.values())


def lossy_call(seed: int, final: int, method: str = "INVITE") -> tuple[Network, Uac, Uas]:
    clock = FakeClock()
    net = Network(clock, seed=seed, loss=0.2, duplicate=0.2, delay=(0.01, 0.3))
    uas_tu = Uas(net.timers, final=final)
    uas = net.add("uas", "10.0.0.3", tu=uas_tu)
    net.add("relay", "10.0.0.2", tu=Relay(uas.peer(), "10.0.0.2", 5060))
    uac_tu = Uac(Peer("UDP", "10.0.0.2", 5060))
    uac = net.add("uac", "10.0.0.1", tu=uac_tu)
    uac_tu.send(uac, make_request(method), clock.now)
    net.run_until_idle()
    assert all(len(node.layer) == 0 for node in net.nodes.values())
    assert net.delivered > 0
    return net, uac_tu, uas_tu


@pytest.mark.parametrize("seed", range(12))
def test_lossy_network_still_completes_invite_200_ack(seed: int) -> None:
    """RFC 6026 §7.2: 2xx retransmissions pass through Accepted states until an ACK gets through."""
    _net, uac_tu, uas_tu = lossy_call(seed, 200)
    assert {r.status for r in uac_tu.responses if r.status >= 200} == {200}
    assert uas_tu.acks, "no ACK reached the UAS"
    assert [r.method for r in uas_tu.requests] == ["INVITE"]  # retransmissions were absorbed


@pytest.mark.parametrize("seed", range(12))
def test_lossy_network_delivers_one_failure_to_the_tu(seed: int) -> None:
    """RFC 3261 §17.1.1.2: retransmitted and duplicated finals are absorbed: the TU sees exactly
    one.
    """
    _net, uac_tu, uas_tu = lossy_call(seed, 486)
    assert [r.status for r in uac_tu.responses if r.status >= 200] == [486]
    assert [r.method for r in uas_tu.requests] == ["INVITE"]


@pytest.mark.parametrize("seed", range(12))
def test_lossy_network_completes_non_invite(seed: int) -> None:
    """RFC 3261 §17.1.2.2: Timer E retransmissions get a request through loss; one final reaches
    the TU.
    """
    _net, uac_tu, uas_tu = lossy_call(seed, 200, method="OPTIONS")
    assert [r.status for r in uac_tu.responses if r.status >= 200] == [200]
    assert [r.method for r in uas_tu.requests] == ["OPTIONS"]


def test_lossy_runs_are_reproducible() -> None:
    """RFC 3261 §17.1.1.2: the same seed gives the same schedule, message for message."""
    first, _, _ = lossy_call(3, 200)
    second, _, _ = lossy_call(3, 200)
    assert first.labels() == second.labels()


def test_stateless_messages_keep_their_order() -> None:
    """RFC 3261 §17.1.1.3: ACK for 2xx is no transaction: it is queued as it is, in order."""
    layer = TransactionLayer(timers=TimerConfig())
    ack = make_request("ACK", to_tag="t")
    ok: Response = make_response(make_request("INVITE"), 200, to_tag="t")
    layer.send_stateless(ack, UDP)
    layer.send_stateless(ok, TCP)
    assert layer.messages_to_send() == [Outgoing(ack, UDP), Outgoing(ok, TCP)]
    assert layer.messages_to_send() == [] and len(layer) == 0
