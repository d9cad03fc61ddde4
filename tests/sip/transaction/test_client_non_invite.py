"""Non-INVITE client transaction: RFC 3261 §17.1.2, on a fake clock."""

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
from callscript.sip.transaction import TransactionLayer
from callscript.sip.transaction.client_non_invite import ClientNonInvite, Input

UDP = Peer("UDP", "10.0.0.2", 5060)
TCP = Peer("TCP", "10.0.0.2", 5060)


def start(
    layer: TransactionLayer, peer: Peer = UDP, method: str = "OPTIONS"
) -> tuple[str, Request]:
    request = make_request(method, transport=peer.transport)
    return layer.send_request(request, peer, now=0.0), request


def test_non_invite_client_retransmits_until_timer_f_on_udp(net: Network, clock: FakeClock) -> None:
    """RFC 3261 §17.1.2.2: Timer E doubles from T1 up to T2, and Timer F gives up at 64*T1."""
    uac = net.add("uac", "10.0.0.1")
    key, _ = start(uac.layer)
    assert net.run_until_idle() == [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert uac.timeline == [(32.0, TransactionTimedOut(key)), (32.0, TransactionTerminated(key))]


def test_non_invite_client_uses_t2_after_a_provisional(net: Network, clock: FakeClock) -> None:
    """RFC 3261 §17.1.2.2: once in Proceeding, each Timer E resends and is reset to T2."""
    uac = net.add("uac", "10.0.0.1")
    key, request = start(uac.layer, method="REGISTER")
    net.run_until_idle(until=0.7)
    clock.now = 0.7
    trying = make_response(request, 100)
    uac.layer.handle_response(trying, UDP, now=clock.now)
    assert net.run_until_idle() == [1.5, 5.5, 9.5, 13.5, 17.5, 21.5, 25.5, 29.5]
    assert uac.timeline == [
        (0.7, ResponseReceived(key, trying, UDP)),
        (32.0, TransactionTimedOut(key)),
        (32.0, TransactionTerminated(key)),
    ]


def test_non_invite_client_caps_timer_e_at_t2() -> None:
    """RFC 3261 §17.1.2.2: with T2 = 2*T1 the interval stops doubling at T2."""
    clock = FakeClock()
    net = Network(clock, timers=TimerConfig(t1=0.5, t2=1.0))
    uac = net.add("uac", "10.0.0.1")
    start(uac.layer)
    times = net.run_until_idle()
    assert times[:5] == [0.0, 0.5, 1.5, 2.5, 3.5]
    assert times[-1] == 31.5 and len(times) == 33


def test_non_invite_client_on_tcp_sends_once_and_times_out(net: Network, clock: FakeClock) -> None:
    """RFC 3261 §17.1.2.2: no Timer E on a reliable transport; Timer F still fires at 64*T1."""
    uac = net.add("uac", "10.0.0.1")
    key, _ = start(uac.layer, TCP)
    assert net.run_until_idle() == [0.0]
    assert uac.timeline == [(32.0, TransactionTimedOut(key)), (32.0, TransactionTerminated(key))]


def test_non_invite_client_completed_waits_timer_k_on_udp(net: Network, clock: FakeClock) -> None:
    """RFC 3261 §17.1.2.2: the final response goes up once; Timer K (T4) absorbs retransmissions."""
    uac = net.add("uac", "10.0.0.1")
    key, request = start(uac.layer)
    net.run_until_idle(until=1.0)
    clock.now = 1.0
    ok = make_response(request, 200, to_tag="t")
    uac.layer.handle_response(ok, UDP, now=clock.now)
    uac.layer.handle_response(make_response(request, 200, to_tag="t"), UDP, now=clock.now)
    uac.layer.handle_response(make_response(request, 180, to_tag="t"), UDP, now=clock.now)
    assert net.run_until_idle() == []
    assert uac.timeline == [
        (1.0, ResponseReceived(key, ok, UDP)),
        (6.0, TransactionTerminated(key)),
    ]


def test_non_invite_client_on_tcp_terminates_at_the_final_response() -> None:
    """RFC 3261 §17.1.2.2: Timer K is zero on a reliable transport."""
    layer = TransactionLayer()
    key, request = start(layer, TCP)
    final = make_response(request, 404, to_tag="t")
    layer.handle_response(final, TCP, now=1.0)
    assert drain(layer) == [ResponseReceived(key, final, TCP), TransactionTerminated(key)]
    assert len(layer) == 0 and layer.next_deadline() is None


def test_non_invite_client_final_after_provisional_goes_up_once() -> None:
    """RFC 3261 §17.1.2.2: Proceeding passes provisionals and then the one final response."""
    layer = TransactionLayer()
    _key, request = start(layer)
    statuses = [100, 183, 200, 200, 486]
    for status in statuses:
        layer.handle_response(make_response(request, status, to_tag="t"), UDP, now=1.0)
    got = [e.response.status for e in drain(layer) if isinstance(e, ResponseReceived)]
    assert got == [100, 183, 200]


def test_non_invite_client_transport_error_reports_and_terminates() -> None:
    """RFC 3261 §17.1.4: a transport error in Trying or Proceeding informs the TU and terminates."""
    for provisional in (False, True):
        layer = TransactionLayer()
        key, request = start(layer)
        if provisional:
            layer.handle_response(make_response(request, 100), UDP, now=0.1)
            drain(layer)
        layer.handle_transport_error(key, now=0.2)
        assert drain(layer) == [TransportFailed(key), TransactionTerminated(key)]
        assert len(layer) == 0


def test_non_invite_client_ignores_transport_error_in_completed() -> None:
    """RFC 3261 §17.1.4: Completed sends nothing, so a late transport error changes nothing."""
    layer = TransactionLayer()
    key, request = start(layer)
    layer.handle_response(make_response(request, 200, to_tag="t"), UDP, now=0.1)
    drain(layer)
    layer.handle_transport_error(key, now=0.2)
    assert drain(layer) == []
    assert key in layer


def test_non_invite_client_table_rejects_an_impossible_input() -> None:
    """RFC 3261 §17.1.2.2: Timer K only exists in Completed."""
    layer = TransactionLayer()
    key, _ = start(layer)
    txn = layer._clients[key]
    assert isinstance(txn, ClientNonInvite)
    with pytest.raises(LocalProtocolError, match="Timer K in Trying"):
        txn.handle(Input.TIMER_K, 0.0, None)
