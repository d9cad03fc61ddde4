"""INVITE server transaction: RFC 3261 §17.2.1 and RFC 6026 §7.1, on a fake clock."""

from __future__ import annotations

import pytest
from netsim import FakeClock, Network, drain, make_request, make_response

from callscript.sip.errors import LocalProtocolError
from callscript.sip.events import (
    AckTimedOut,
    Peer,
    RequestReceived,
    TransactionTerminated,
    TransportFailed,
)
from callscript.sip.message import Request, Response
from callscript.sip.transaction import TransactionLayer

UAC_UDP = Peer("UDP", "10.0.0.1", 5060)
UAC_TCP = Peer("TCP", "10.0.0.1", 5060)


def receive(
    layer: TransactionLayer, source: Peer = UAC_UDP, now: float = 0.0
) -> tuple[str, Request]:
    invite = make_request("INVITE", transport=source.transport)
    layer.handle_request(invite, source, now=now)
    event = layer.next_event()
    assert isinstance(event, RequestReceived) and event.key is not None
    assert event.request is invite and event.source == source
    return event.key, invite


def ack_for(invite: Request, response: Response) -> Request:
    """The ACK a UAC sends for a non-2xx: same branch as the INVITE (RFC 3261 §17.1.1.3)."""
    ack = make_request("ACK", transport=invite.top_via.transport, to_tag=response.to_addr.tag)
    return ack


def sent(layer: TransactionLayer) -> list[str]:
    return [
        out.message.method if isinstance(out.message, Request) else str(out.message.status)
        for out in layer.messages_to_send()
    ]


def test_invite_server_retransmits_failure_until_timer_h_on_udp(
    net: Network, clock: FakeClock
) -> None:
    """RFC 3261 §17.2.1: Timer G resends the final from T1 doubling up to T2; Timer H gives up at
    64*T1.
    """
    uas = net.add("uas", "10.0.0.2")
    key, invite = receive(uas.layer)
    uas.layer.send_response(key, make_response(invite, 486, to_tag="t"), now=0.0)
    assert net.run_until_idle() == [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert uas.timeline == [(32.0, AckTimedOut(key)), (32.0, TransactionTerminated(key))]
    assert all(s.out.peer == UAC_UDP for s in net.sent)


def test_invite_server_on_tcp_sends_final_once_and_still_waits_timer_h(
    net: Network, clock: FakeClock
) -> None:
    """RFC 3261 §17.2.1: no Timer G on a reliable transport, but Timer H still waits 64*T1 for the
    ACK.
    """
    uas = net.add("uas", "10.0.0.2")
    key, invite = receive(uas.layer, UAC_TCP)
    uas.layer.send_response(key, make_response(invite, 486, to_tag="t"), now=0.0)
    assert net.run_until_idle() == [0.0]
    assert uas.timeline == [(32.0, AckTimedOut(key)), (32.0, TransactionTerminated(key))]


def test_invite_server_absorbs_ack_and_waits_timer_i_on_udp(net: Network, clock: FakeClock) -> None:
    """RFC 3261 §17.2.1: the ACK stops G and H (Confirmed) and is absorbed; Timer I (T4) ends it."""
    uas = net.add("uas", "10.0.0.2")
    key, invite = receive(uas.layer)
    busy = make_response(invite, 486, to_tag="t")
    uas.layer.send_response(key, busy, now=0.0)
    net.run_until_idle(until=1.0)
    clock.now = 1.0
    for _ in range(2):
        uas.layer.handle_request(ack_for(invite, busy), UAC_UDP, now=clock.now)
    uas.layer.handle_request(make_request("INVITE"), UAC_UDP, now=clock.now)
    assert net.run_until_idle() == []
    assert net.labels() == [(0.0, "486 INVITE"), (0.5, "486 INVITE")]
    assert uas.timeline == [(6.0, TransactionTerminated(key))]


def test_invite_server_on_tcp_terminates_at_the_ack() -> None:
    """RFC 3261 §17.2.1: Timer I is zero on a reliable transport."""
    layer = TransactionLayer()
    key, invite = receive(layer, UAC_TCP)
    busy = make_response(invite, 603, to_tag="t")
    layer.send_response(key, busy, now=0.0)
    layer.handle_request(ack_for(invite, busy), UAC_TCP, now=0.2)
    assert drain(layer) == [TransactionTerminated(key)]
    assert len(layer) == 0 and layer.next_deadline() is None


def test_invite_server_resends_latest_provisional_then_final() -> None:
    """RFC 3261 §17.2.1: a retransmitted INVITE gets the latest provisional, or the final in
    Completed.
    """
    layer = TransactionLayer()
    key, invite = receive(layer)
    layer.handle_request(make_request("INVITE"), UAC_UDP, now=0.1)
    assert sent(layer) == []
    layer.send_response(key, make_response(invite, 100), now=0.2)
    layer.send_response(key, make_response(invite, 180, to_tag="t"), now=0.3)
    assert sent(layer) == ["100", "180"]
    layer.handle_request(make_request("INVITE"), UAC_UDP, now=0.4)
    assert sent(layer) == ["180"]
    layer.send_response(key, make_response(invite, 480, to_tag="t"), now=0.5)
    layer.handle_request(make_request("INVITE"), UAC_UDP, now=0.6)
    assert sent(layer) == ["480", "480"]
    assert drain(layer) == []


def test_invite_server_accepted_absorbs_invites_and_sends_every_2xx() -> None:
    """RFC 6026 §7.1: after a 2xx, retransmitted INVITEs are absorbed and the TU's 2xx go out."""
    layer = TransactionLayer()
    key, invite = receive(layer)
    ok = make_response(invite, 200, to_tag="t")
    layer.send_response(key, ok, now=0.0)
    layer.handle_request(make_request("INVITE"), UAC_UDP, now=0.1)
    layer.send_response(key, ok, now=0.5)
    assert sent(layer) == ["200", "200"]
    assert drain(layer) == []
    assert layer.has_final_response(key)
    assert layer.next_deadline() == 32.0  # Timer L: 64*T1 from the first 2xx


def test_invite_server_accepted_passes_acks_up_until_timer_l(
    net: Network, clock: FakeClock
) -> None:
    """RFC 6026 §7.1: an ACK matching the transaction in Accepted goes to the TU (key None) until
    Timer L.
    """
    uas = net.add("uas", "10.0.0.2")
    key, invite = receive(uas.layer, UAC_TCP)
    uas.layer.send_response(key, make_response(invite, 200, to_tag="t"), now=0.0)
    assert net.run_until_idle(until=1.0) == [0.0]
    clock.now = 1.0
    ack = make_request("ACK", transport="TCP", to_tag="t")
    uas.layer.handle_request(ack, UAC_TCP, now=clock.now)
    assert net.run_until_idle() == []
    assert uas.timeline == [
        (1.0, RequestReceived(None, ack, UAC_TCP)),
        (32.0, TransactionTerminated(key)),
    ]


def test_ack_for_2xx_with_a_new_branch_goes_to_the_tu() -> None:
    """RFC 3261 §17.2.3: an ACK that matches no INVITE server transaction goes up with key None."""
    layer = TransactionLayer()
    key, invite = receive(layer)
    layer.send_response(key, make_response(invite, 200, to_tag="t"), now=0.0)
    ack = make_request("ACK", branch="z9hG4bK-new", to_tag="t")
    layer.handle_request(ack, UAC_UDP, now=0.1)
    assert drain(layer) == [RequestReceived(None, ack, UAC_UDP)]
    assert len(layer) == 1


def test_invite_server_ack_before_any_final_is_absorbed() -> None:
    """RFC 3261 §17.2.1: Proceeding has no use for an ACK; nothing goes up."""
    layer = TransactionLayer()
    receive(layer)
    layer.handle_request(make_request("ACK"), UAC_UDP, now=0.1)
    assert drain(layer) == []


def test_proxy_forwards_2xx_after_a_failure_was_sent() -> None:
    """RFC 3261 §16.7 step 5: a 2xx to INVITE still goes out after the transaction sent a non-2xx
    final.
    """
    layer = TransactionLayer()
    key, invite = receive(layer)
    busy = make_response(invite, 408, to_tag="t")
    layer.send_response(key, busy, now=0.0)
    layer.send_response(key, make_response(invite, 200, to_tag="late"), now=0.1)
    layer.handle_request(ack_for(invite, busy), UAC_UDP, now=0.2)
    layer.send_response(key, make_response(invite, 200, to_tag="late"), now=0.3)
    assert sent(layer) == ["408", "200", "200"]


def test_2xx_after_the_server_transaction_ended_goes_out_statelessly() -> None:
    """RFC 3261 §16.7 step 10: with no server transaction left, a 2xx is sent statelessly."""
    layer = TransactionLayer()
    key, invite = receive(layer, UAC_TCP)
    busy = make_response(invite, 486, to_tag="t")
    layer.send_response(key, busy, now=0.0)
    layer.handle_request(ack_for(invite, busy), UAC_TCP, now=0.1)
    layer.messages_to_send()
    late = make_response(invite, 200, to_tag="late")
    layer.send_response(key, late, now=0.2)  # TransactionTerminated not taken yet
    assert [(o.message, o.peer) for o in layer.messages_to_send()] == [(late, UAC_TCP)]
    assert layer.has_final_response(key)
    drain(layer)
    layer.send_response(key, late, now=0.3)  # forgotten: the top Via says where
    assert [(o.message, o.peer) for o in layer.messages_to_send()] == [
        (late, Peer("TCP", "10.0.0.1", 5060))
    ]
    layer.send_response(key, make_response(invite, 487, to_tag="t"), now=0.4)
    assert layer.messages_to_send() == []
    with pytest.raises(KeyError):
        layer.has_final_response(key)


def test_invite_server_rejects_responses_its_state_forbids() -> None:
    """RFC 3261 §17.2.1: nothing but a 2xx may follow a final response; the TU is told at once."""
    layer = TransactionLayer()
    key, invite = receive(layer)
    layer.send_response(key, make_response(invite, 486, to_tag="t"), now=0.0)
    with pytest.raises(LocalProtocolError, match="1xx from TU in Completed"):
        layer.send_response(key, make_response(invite, 180, to_tag="t"), now=0.1)
    with pytest.raises(LocalProtocolError, match="300-699 from TU in Completed"):
        layer.send_response(key, make_response(invite, 500, to_tag="t"), now=0.1)
    layer2 = TransactionLayer()
    other, invite2 = receive(layer2)
    layer2.send_response(other, make_response(invite2, 200, to_tag="t"), now=0.0)
    with pytest.raises(LocalProtocolError, match="300-699 from TU in Accepted"):
        layer2.send_response(other, make_response(invite2, 486, to_tag="t"), now=0.1)


def test_invite_server_transport_errors() -> None:
    """RFC 3261 §17.2.4: a response that cannot be sent tells the TU and ends the transaction."""
    for status in (None, 180, 486, 200):
        layer = TransactionLayer()
        key, invite = receive(layer)
        if status is not None:
            layer.send_response(key, make_response(invite, status, to_tag="t"), now=0.0)
        layer.handle_transport_error(key, now=0.1)
        assert drain(layer) == [TransportFailed(key), TransactionTerminated(key)], status
        assert len(layer) == 0


def test_invite_server_ignores_transport_error_in_confirmed() -> None:
    """RFC 3261 §17.2.4: Confirmed sends nothing, so a late error changes nothing."""
    layer = TransactionLayer()
    key, invite = receive(layer)
    busy = make_response(invite, 486, to_tag="t")
    layer.send_response(key, busy, now=0.0)
    layer.handle_request(ack_for(invite, busy), UAC_UDP, now=0.1)
    layer.handle_transport_error(key, now=0.2)
    assert drain(layer) == []
    assert key in layer


def test_has_final_response_follows_the_server_transaction() -> None:
    """RFC 3261 §17.2.1: Proceeding has no final response; Completed and Accepted have one."""
    layer = TransactionLayer()
    key, invite = receive(layer)
    assert not layer.has_final_response(key)
    layer.send_response(key, make_response(invite, 180, to_tag="t"), now=0.0)
    assert not layer.has_final_response(key)
    layer.send_response(key, make_response(invite, 486, to_tag="t"), now=0.0)
    assert layer.has_final_response(key)
    assert layer.server_request(key) is invite
    with pytest.raises(KeyError):
        layer.server_request("S nothing")
    with pytest.raises(KeyError):
        layer.client_request(key)
