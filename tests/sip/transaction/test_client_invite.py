"""INVITE client transaction: RFC 3261 §17.1.1 and RFC 6026 §7.2, on a fake clock."""

from __future__ import annotations

import pytest
from netsim import FakeClock, Network, drain, make_request, make_response

from callscript.sip.errors import LocalProtocolError
from callscript.sip.events import (
    Peer,
    ResponseReceived,
    TransactionTerminated,
    TransactionTimedOut,
    TransportFailed,
)
from callscript.sip.message import Request
from callscript.sip.timers import TimerConfig
from callscript.sip.transaction import TransactionLayer, build_ack
from callscript.sip.transaction.client_invite import ClientInvite, Input, State

UAS_UDP = Peer("UDP", "10.0.0.2", 5060)
UAS_TCP = Peer("TCP", "10.0.0.2", 5060)


def start(layer: TransactionLayer, peer: Peer = UAS_UDP, **kwargs: object) -> tuple[str, Request]:
    invite = make_request("INVITE", transport=peer.transport, **kwargs)  # type: ignore[arg-type]
    key = layer.send_request(invite, peer, now=0.0)
    return key, invite


def test_invite_client_retransmits_until_timer_b_on_udp(net: Network, clock: FakeClock) -> None:
    """RFC 3261 §17.1.1.2: Timer A doubles from T1 until Timer B fires at 64*T1."""
    uac = net.add("uac", "10.0.0.1")
    key, _ = start(uac.layer)
    assert net.run_until_idle() == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert uac.timeline == [(32.0, TransactionTimedOut(key)), (32.0, TransactionTerminated(key))]
    assert [s.label for s in net.sent] == ["INVITE"] * 7  # Timer B sends no ACK
    assert len(uac.layer) == 0


def test_invite_client_timer_a_follows_t1() -> None:
    """RFC 3261 §17.1.1.2: Timer A starts at T1 and doubles with no cap, whatever T1 and T2 are."""
    clock = FakeClock()
    net = Network(clock, timers=TimerConfig(t1=1.0, t2=2.0))
    uac = net.add("uac", "10.0.0.1")
    start(uac.layer)
    assert net.run_until_idle() == [0.0, 1.0, 3.0, 7.0, 15.0, 31.0, 63.0]
    assert clock.now == 64.0


def test_invite_client_on_tcp_sends_once_and_times_out_at_64_t1(
    net: Network, clock: FakeClock
) -> None:
    """RFC 3261 §17.1.1.2: Timer A runs only on unreliable transports; Timer B still fires at
    64*T1.
    """
    uac = net.add("uac", "10.0.0.1")
    key, _ = start(uac.layer, UAS_TCP)
    assert net.run_until_idle() == [0.0]
    assert uac.timeline == [(32.0, TransactionTimedOut(key)), (32.0, TransactionTerminated(key))]


def test_invite_client_provisional_stops_retransmissions_and_timer_b() -> None:
    """RFC 3261 §17.1.1.2: a provisional moves to Proceeding: no more Timer A, no Timer B."""
    layer = TransactionLayer()
    key, invite = start(layer)
    layer.handle_timers(now=0.5)
    assert len(layer.messages_to_send()) == 2
    ringing = make_response(invite, 180, to_tag="t")
    layer.handle_response(ringing, UAS_UDP, now=1.0)
    assert drain(layer) == [ResponseReceived(key, ringing, UAS_UDP)]
    assert layer.next_deadline() is None
    layer.handle_timers(now=100.0)
    assert layer.messages_to_send() == []
    assert key in layer


def test_invite_client_passes_every_provisional_up() -> None:
    """RFC 3261 §17.1.1.2: provisionals in Proceeding go to the TU."""
    layer = TransactionLayer()
    _key, invite = start(layer)
    for status in (100, 180, 183):
        layer.handle_response(make_response(invite, status, to_tag="t"), UAS_UDP, now=1.0)
    assert [e.response.status for e in drain(layer) if isinstance(e, ResponseReceived)] == [
        100,
        180,
        183,
    ]


def test_invite_client_acks_a_failure_and_waits_timer_d_on_udp(
    net: Network, clock: FakeClock
) -> None:
    """RFC 3261 §17.1.1.2: a 300-699 goes up once, is ACKed, and Timer D (32 s) ends the
    transaction.
    """
    uac = net.add("uac", "10.0.0.1")
    key, invite = start(uac.layer)
    net.run_until_idle(until=2.0)
    clock.now = 2.0
    busy = make_response(invite, 486, to_tag="t")
    uac.layer.handle_response(busy, UAS_UDP, now=clock.now)
    assert net.run_until_idle() == [2.0]
    assert net.labels("uac")[-1] == (2.0, "ACK")
    assert uac.timeline == [
        (2.0, ResponseReceived(key, busy, UAS_UDP)),
        (34.0, TransactionTerminated(key)),
    ]


def test_invite_client_timer_d_is_at_least_32_seconds() -> None:
    """RFC 3261 §17.1.1.2: Timer D is at least 32 s on an unreliable transport, even with a small
    T1.
    """
    layer = TransactionLayer(timers=TimerConfig(t1=0.1, t2=4.0))
    _, invite = start(layer)
    layer.handle_response(make_response(invite, 404, to_tag="t"), UAS_UDP, now=1.0)
    assert layer.next_deadline() == 33.0


def test_invite_client_resends_ack_for_each_retransmitted_final() -> None:
    """RFC 3261 §17.1.1.2: a retransmitted final in Completed gets the ACK again and does not go
    up.
    """
    layer = TransactionLayer()
    _key, invite = start(layer)
    layer.messages_to_send()
    busy = make_response(invite, 486, to_tag="t")
    layer.handle_response(busy, UAS_UDP, now=1.0)
    first_ack = layer.messages_to_send()
    drain(layer)
    for at in (1.5, 2.5):
        layer.handle_response(make_response(invite, 486, to_tag="t"), UAS_UDP, now=at)
        assert layer.messages_to_send() == first_ack
    layer.handle_response(make_response(invite, 180, to_tag="t"), UAS_UDP, now=3.0)
    layer.handle_response(make_response(invite, 200, to_tag="t"), UAS_UDP, now=3.0)
    assert layer.messages_to_send() == []
    assert drain(layer) == []


def test_invite_client_on_tcp_terminates_at_the_final_response() -> None:
    """RFC 3261 §17.1.1.2: Timer D is zero on a reliable transport: the ACK goes out and the
    transaction ends.
    """
    layer = TransactionLayer()
    key, invite = start(layer, UAS_TCP)
    layer.messages_to_send()
    busy = make_response(invite, 486, to_tag="t")
    layer.handle_response(busy, UAS_TCP, now=1.0)
    assert [out.message.method for out in layer.messages_to_send()] == ["ACK"]  # type: ignore[union-attr]
    assert drain(layer) == [ResponseReceived(key, busy, UAS_TCP), TransactionTerminated(key)]
    assert len(layer) == 0
    assert layer.next_deadline() is None


def test_ack_for_a_failure_copies_the_invite_and_the_response_to() -> None:
    """RFC 3261 §17.1.1.3: ACK has the INVITE's Request-URI, Call-ID, From, CSeq number, top Via,
    Routes and the response's To.
    """
    invite = make_request("INVITE", routes=("<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"))
    invite.insert("Via", invite.top_via)  # a second Via must not be copied
    response = make_response(invite, 603, to_tag="callee")
    ack = build_ack(invite, response)
    assert ack.method == "ACK"
    assert ack.uri == invite.uri
    assert ack.call_id == invite.call_id
    assert ack.from_addr == invite.from_addr
    assert ack.to_addr == response.to_addr and ack.to_addr.tag == "callee"
    assert (ack.cseq.number, ack.cseq.method) == (invite.cseq.number, "ACK")
    assert ack.via == [invite.top_via]
    assert ack["Route"] == invite["Route"]
    assert ack.max_forwards == 70


def test_ack_without_routes_has_no_route_header() -> None:
    """RFC 3261 §17.1.1.3: the ACK copies Route headers only when the INVITE had them."""
    invite = make_request("INVITE")
    assert "Route" not in build_ack(invite, make_response(invite, 404, to_tag="t"))


def test_invite_client_accepted_passes_every_2xx_until_timer_m(
    net: Network, clock: FakeClock
) -> None:
    """RFC 6026 §7.2: a 2xx moves to Accepted; every 2xx goes up (no ACK from the transaction)
    until Timer M.
    """
    uac = net.add("uac", "10.0.0.1")
    key, invite = start(uac.layer)
    net.run_until_idle(until=1.0)
    clock.now = 1.0
    ok = make_response(invite, 200, to_tag="a")
    again = make_response(invite, 200, to_tag="a")
    fork = make_response(invite, 200, to_tag="b")
    for response in (ok, again, fork):
        uac.layer.handle_response(response, UAS_UDP, now=clock.now)
    assert net.run_until_idle() == []
    assert [label for _, label in net.labels()] == ["INVITE", "INVITE"]
    assert uac.timeline == [
        (1.0, ResponseReceived(key, ok, UAS_UDP)),
        (1.0, ResponseReceived(key, again, UAS_UDP)),
        (1.0, ResponseReceived(key, fork, UAS_UDP)),
        (33.0, TransactionTerminated(key)),
    ]


def test_invite_client_accepted_lasts_64_t1_on_tcp_too() -> None:
    """RFC 6026 §7.2: Timer M is 64*T1 on every transport."""
    layer = TransactionLayer()
    _, invite = start(layer, UAS_TCP)
    layer.handle_response(make_response(invite, 200, to_tag="a"), UAS_TCP, now=1.0)
    assert layer.next_deadline() == 33.0


def test_invite_client_accepted_absorbs_provisionals_and_failures() -> None:
    """RFC 6026 §7.2: only 2xx responses go up in Accepted."""
    layer = TransactionLayer()
    _key, invite = start(layer)
    layer.handle_response(make_response(invite, 200, to_tag="a"), UAS_UDP, now=1.0)
    drain(layer)
    layer.messages_to_send()
    layer.handle_response(make_response(invite, 180, to_tag="b"), UAS_UDP, now=1.1)
    layer.handle_response(make_response(invite, 486, to_tag="b"), UAS_UDP, now=1.2)
    assert drain(layer) == []
    assert layer.messages_to_send() == []


def test_2xx_after_timer_m_is_a_stray_response() -> None:
    """RFC 3261 §18.1.2: once Timer M ended the transaction, a 2xx goes to the TU with no key."""
    layer = TransactionLayer()
    _, invite = start(layer)
    layer.handle_response(make_response(invite, 200, to_tag="a"), UAS_UDP, now=1.0)
    layer.handle_timers(now=33.0)
    drain(layer)
    late = make_response(invite, 200, to_tag="a")
    layer.handle_response(late, UAS_UDP, now=34.0)
    assert drain(layer) == [ResponseReceived(None, late, UAS_UDP)]


def test_invite_client_transport_error_in_calling_reports_and_terminates() -> None:
    """RFC 3261 §17.1.4: a transport error tells the TU (TransportFailed) and terminates."""
    layer = TransactionLayer()
    key, _ = start(layer)
    layer.handle_transport_error(key, now=0.0)
    assert drain(layer) == [TransportFailed(key), TransactionTerminated(key)]
    assert len(layer) == 0
    assert layer.next_deadline() is None


def test_invite_client_transport_error_in_proceeding_reports_and_terminates() -> None:
    """RFC 3261 §17.1.4: a transport failure before the final response reaches the TU."""
    layer = TransactionLayer()
    key, invite = start(layer, UAS_TCP)
    layer.handle_response(make_response(invite, 180, to_tag="a"), UAS_TCP, now=1.0)
    drain(layer)
    layer.handle_transport_error(key, now=2.0)
    assert drain(layer) == [TransportFailed(key), TransactionTerminated(key)]


def test_invite_client_transport_error_after_failure_is_not_reported() -> None:
    """RFC 3261 §17.1.4: (deviation) after the final response, a failed ACK is not reported."""
    layer = TransactionLayer()
    key, invite = start(layer)
    layer.handle_response(make_response(invite, 486, to_tag="a"), UAS_UDP, now=1.0)
    drain(layer)
    layer.handle_transport_error(key, now=1.0)
    assert drain(layer) == [TransactionTerminated(key)]
    assert len(layer) == 0


def test_invite_client_ignores_transport_error_in_accepted() -> None:
    """RFC 6026 §7.2: Accepted sends nothing, so a transport error leaves Timer M to end it."""
    layer = TransactionLayer()
    key, invite = start(layer)
    layer.handle_response(make_response(invite, 200, to_tag="a"), UAS_UDP, now=1.0)
    drain(layer)
    layer.handle_transport_error(key, now=2.0)
    assert drain(layer) == []
    assert key in layer


def test_unknown_transport_error_key_is_ignored() -> None:
    """RFC 3261 §17.1.4: a failure reported for a transaction that already ended changes nothing."""
    layer = TransactionLayer()
    layer.handle_transport_error("C z9hG4bK-gone INVITE", now=0.0)
    assert drain(layer) == []


def test_invite_client_table_rejects_an_impossible_input() -> None:
    """RFC 3261 §17.1.1.2: Timer D has no meaning in Calling; the machine says so."""
    layer = TransactionLayer()
    key, _ = start(layer)
    txn = layer._clients[key]
    assert isinstance(txn, ClientInvite) and txn.state is State.CALLING
    with pytest.raises(LocalProtocolError, match="Timer D in Calling"):
        txn.handle(Input.TIMER_D, 0.0, None)
