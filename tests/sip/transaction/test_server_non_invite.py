"""Non-INVITE server transaction: RFC 3261 §17.2.2, on a fake clock."""

from __future__ import annotations

import pytest
from netsim import FakeClock, Network, drain, make_request, make_response

from callscript.sip.errors import LocalProtocolError
from callscript.sip.events import Peer, RequestReceived, TransactionTerminated, TransportFailed
from callscript.sip.message import Request
from callscript.sip.timers import TimerName
from callscript.sip.transaction import TransactionLayer
from callscript.sip.transaction.server_non_invite import ServerNonInvite

UDP = Peer("UDP", "10.0.0.1", 5060)
TCP = Peer("TCP", "10.0.0.1", 5060)


def receive(
    layer: TransactionLayer, source: Peer = UDP, method: str = "OPTIONS"
) -> tuple[str, Request]:
    request = make_request(method, transport=source.transport)
    layer.handle_request(request, source, now=0.0)
    event = layer.next_event()
    assert isinstance(event, RequestReceived) and event.key is not None
    return event.key, request


def statuses(layer: TransactionLayer) -> list[int]:
    return [out.message.status for out in layer.messages_to_send()]  # type: ignore[union-attr]


def test_non_invite_server_resends_final_until_timer_j_on_udp(
    net: Network, clock: FakeClock
) -> None:
    """RFC 3261 §17.2.2: Completed answers retransmissions with the final until Timer J (64*T1)."""
    uas = net.add("uas", "10.0.0.2")
    key, request = receive(uas.layer)
    uas.layer.send_response(key, make_response(request, 200, to_tag="t"), now=0.0)
    assert net.run_until_idle(until=5.0) == [0.0]
    clock.now = 5.0
    uas.layer.handle_request(make_request("OPTIONS"), UDP, now=clock.now)
    assert net.run_until_idle() == [5.0]
    assert uas.timeline == [(32.0, TransactionTerminated(key))]


def test_non_invite_server_on_tcp_terminates_at_the_final() -> None:
    """RFC 3261 §17.2.2: Timer J is zero on a reliable transport."""
    layer = TransactionLayer()
    key, request = receive(layer, TCP)
    layer.send_response(key, make_response(request, 200, to_tag="t"), now=0.0)
    assert statuses(layer) == [200]
    assert drain(layer) == [TransactionTerminated(key)]
    assert len(layer) == 0 and layer.next_deadline() is None


def test_non_invite_server_trying_absorbs_and_proceeding_resends_provisional() -> None:
    """RFC 3261 §17.2.2: Trying absorbs retransmissions; Proceeding answers with the latest
    provisional.
    """
    layer = TransactionLayer()
    key, request = receive(layer, method="REGISTER")
    layer.handle_request(make_request("REGISTER"), UDP, now=0.1)
    assert statuses(layer) == []
    layer.send_response(key, make_response(request, 100), now=0.2)
    layer.send_response(key, make_response(request, 183, to_tag="t"), now=0.2)
    layer.handle_request(make_request("REGISTER"), UDP, now=0.3)
    assert statuses(layer) == [100, 183, 183]
    layer.send_response(key, make_response(request, 200, to_tag="t"), now=0.4)
    layer.handle_request(make_request("REGISTER"), UDP, now=0.5)
    assert statuses(layer) == [200, 200]
    assert drain(layer) == []


def test_non_invite_server_discards_a_second_final() -> None:
    """RFC 3261 §17.2.2: other finals from the TU in Completed are discarded."""
    layer = TransactionLayer()
    key, request = receive(layer)
    layer.send_response(key, make_response(request, 200, to_tag="t"), now=0.0)
    layer.send_response(key, make_response(request, 500, to_tag="t"), now=0.1)
    assert statuses(layer) == [200]
    layer.handle_request(make_request("OPTIONS"), UDP, now=0.2)
    assert statuses(layer) == [200]


def test_non_invite_server_rejects_a_provisional_after_the_final() -> None:
    """RFC 3261 §17.2.2: Completed has no provisional responses; the TU is told at once."""
    layer = TransactionLayer()
    key, request = receive(layer)
    layer.send_response(key, make_response(request, 200, to_tag="t"), now=0.0)
    with pytest.raises(LocalProtocolError, match="1xx from TU in Completed"):
        layer.send_response(key, make_response(request, 180), now=0.1)


def test_non_invite_server_transport_errors() -> None:
    """RFC 3261 §17.2.4: a failed send informs the TU and ends the transaction."""
    for status in (None, 100, 200):
        layer = TransactionLayer()
        key, request = receive(layer)
        if status is not None:
            layer.send_response(key, make_response(request, status, to_tag="t"), now=0.0)
        layer.handle_transport_error(key, now=0.1)
        assert drain(layer) == [TransportFailed(key), TransactionTerminated(key)], status


def test_dropped_response_to_ended_non_invite_transaction() -> None:
    """RFC 3261 §17.2.2: once the transaction ended, a late response from the TU goes nowhere."""
    layer = TransactionLayer()
    key, request = receive(layer, TCP)
    layer.send_response(key, make_response(request, 200, to_tag="t"), now=0.0)
    layer.messages_to_send()
    layer.send_response(key, make_response(request, 200, to_tag="t"), now=0.1)
    assert layer.messages_to_send() == []


def test_non_invite_server_has_no_other_timer() -> None:
    """RFC 3261 §17.2.2: Timer J is the only timer of a non-INVITE server transaction."""
    layer = TransactionLayer()
    key, _ = receive(layer)
    txn = layer._servers[key]
    assert isinstance(txn, ServerNonInvite)
    with pytest.raises(LocalProtocolError):
        txn.fire(TimerName.G, now=0.0)
    with pytest.raises(LocalProtocolError, match="Timer J in Trying"):
        txn.fire(TimerName.J, now=0.0)


def test_non_invite_server_final_response_flag() -> None:
    """RFC 3261 §17.2.2: Trying and Proceeding have no final response yet; Completed has one."""
    layer = TransactionLayer()
    key, request = receive(layer)
    assert not layer.has_final_response(key)
    layer.send_response(key, make_response(request, 100), now=0.0)
    assert not layer.has_final_response(key)
    layer.send_response(key, make_response(request, 202, to_tag="t"), now=0.0)
    assert layer.has_final_response(key)
