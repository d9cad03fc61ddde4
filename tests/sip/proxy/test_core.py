"""The stateful proxy core between a caller and callees on the in-memory network.

Every schedule is exact: the network is lossless (except where a test says
otherwise), deliveries take no time, and the fake clock jumps from deadline
to deadline.
"""

from __future__ import annotations

import pytest

from callscript.sip.errors import LocalProtocolError
from callscript.sip.events import Peer
from callscript.sip.headers import CSeq
from callscript.sip.ids import CountingIds
from callscript.sip.message import Request, Response
from callscript.sip.proxy.context import Target
from callscript.sip.proxy.core import ProxyCore
from callscript.sip.proxy.events import (
    ContextClosed,
    ForwardNeeded,
    ProxyCompleted,
    RequestCancelled,
    RoutingNeeded,
)
from callscript.sip.proxy.route import next_hop
from callscript.sip.timers import TimerConfig
from callscript.sip.uri import URI
from callscript.sip.via import Via
from tests.sip.proxy.conftest import (
    CALLER_HOST,
    PROXY_HOST,
    Answer,
    Route,
    Sim,
    dead,
    peer_of,
    proxy_config,
    request,
    target,
)
from tests.sip.transaction.netsim import FakeClock

B1, B2, B3 = "192.0.2.21", "192.0.2.22", "192.0.2.23"
NOWHERE = "192.0.2.99"


def kinds(sim: Sim) -> list[tuple[float, str]]:
    """``(time, event class name)`` of every core event."""
    return [(t, type(e).__name__) for t, e in sim.engine.events]


def completed(sim: Sim) -> list[tuple[int, bool]]:
    """``(status, forwarded)`` of every ProxyCompleted."""
    return [(e.status, e.forwarded) for e in sim.engine.of(ProxyCompleted)]  # type: ignore[attr-defined]


def assert_all_gone(sim: Sim) -> None:
    """Nothing of any call is left in the core or its transaction layer."""
    assert len(sim.core) == 0
    assert len(sim.core.layer) == 0
    assert sim.core.next_deadline() is None


# -- §16.2, §16.7 step 5: what goes upstream at once -------------------------------------------


def test_invite_gets_100_trying_at_once_before_any_routing(sim: Sim) -> None:
    """RFC 3261 §16.2: the proxy answers an INVITE with 100 Trying before deciding anything."""
    sim.call()
    sim.run()
    assert sim.labels("proxy") == [(0.0, "100 INVITE")]
    trying = sim.messages_to(CALLER_HOST)[0]
    assert isinstance(trying, Response) and trying.to_addr.tag is None
    assert kinds(sim) == [(0.0, "RoutingNeeded")]
    # The 100 stopped the caller's retransmissions: one INVITE on the wire.
    assert sim.labels("caller") == [(0.0, "INVITE")]


def test_non_invite_gets_no_100_trying(sim: Sim) -> None:
    """RFC 3261 §16.2: only INVITE gets the proxy's own 100 Trying."""
    b1 = sim.callee("b1", B1)
    sim.fork([target(b1)])
    sim.caller.send(sim.uac, request("MESSAGE", branch="z9hG4bK-m1"), now=0.0)
    sim.run()
    assert sim.sent_to(CALLER_HOST) == [(0.0, "200 MESSAGE")]
    assert sim.sent_to(B1) == [(0.0, "MESSAGE")]
    assert_all_gone(sim)


def test_provisional_then_2xx_are_forwarded_and_the_2xx_ack_goes_statelessly(sim: Sim) -> None:
    """RFC 3261 §16.7 step 5: a provisional and a 2xx go upstream the moment they arrive."""
    b1 = sim.callee("b1", B1, 180, Answer(200, at=2))
    sim.fork([target(b1)])
    sim.call()
    sim.run()
    assert sim.labels("proxy") == [
        (0.0, "100 INVITE"),
        (0.0, "INVITE"),
        (0.0, "180 INVITE"),
        (2.0, "200 INVITE"),
        (2.0, "ACK"),
    ]
    assert sim.caller.statuses() == [100, 180, 200]
    assert sim.callees["b1"].methods() == ["INVITE", "ACK"]
    assert kinds(sim) == [
        (0.0, "RoutingNeeded"),
        (2.0, "ProxyCompleted"),
        (2.0, "ForwardNeeded"),
        (34.0, "ContextClosed"),  # Timer L: 64*T1 after the 2xx
    ]
    assert completed(sim) == [(200, True)]
    assert_all_gone(sim)


def test_responses_lose_the_proxy_via_and_keep_the_callers(sim: Sim) -> None:
    """RFC 3261 §16.7 step 3: the proxy removes its own Via from every response it forwards."""
    b1 = sim.callee("b1", B1, 180, 200)
    sim.fork([target(b1)])
    sim.call()
    sim.run()
    for message in sim.messages_to(CALLER_HOST):
        assert isinstance(message, Response)
        assert [v.host for v in message.via] == [CALLER_HOST]


def test_response_echoing_only_our_via_still_reaches_the_caller(sim: Sim) -> None:
    """RFC 3261 §16.7 step 3: a response left with no Via gets the request's Vias, not dropped."""
    b1 = sim.callee("b1", B1, Answer(180, only_top_via=True), Answer(486, only_top_via=True))
    sim.fork([target(b1)])
    sim.call()
    sim.run()
    assert sim.caller.statuses() == [100, 180, 486]
    for message in sim.messages_to(CALLER_HOST):
        assert isinstance(message, Response)
        assert [v.branch for v in message.via] == ["z9hG4bKuac-b1"]
    assert_all_gone(sim)


def test_2xx_ack_is_forwarded_statelessly_to_the_contact(sim: Sim) -> None:
    """RFC 3261 §16.11: the ACK for a 2xx matches no transaction and is forwarded statelessly."""
    b1 = sim.callee("b1", B1, 200)
    sim.fork([target(b1)])
    sim.call()
    sim.run()
    forwards = sim.engine.of(ForwardNeeded)
    assert len(forwards) == 1
    ack = forwards[0].message  # type: ignore[attr-defined]
    assert isinstance(ack, Request) and ack.method == "ACK"
    assert str(forwards[0].next_hop) == f"sip:bob@{B1}:5060"  # type: ignore[attr-defined]
    # Our Route is gone (RFC 3261 §16.4), our Via is on top, Max-Forwards went down by one.
    assert "Route" not in ack
    top = ack.top_via
    assert (top.host, top.port) == (PROXY_HOST, 5060)
    assert "rport" in top.params and top.params["rport"] is None
    assert top.branch is not None and top.branch.startswith("z9hG4bKsl.")
    assert ack.max_forwards == 69
    [(_, received)] = sim.callees["b1"].acks
    assert received.call_id == "call-1"


# -- forking: §16.7 steps 5, 6, 7, 10 -------------------------------------------------------


def test_2xx_cancels_the_branches_still_ringing(sim: Sim) -> None:
    """RFC 3261 §16.7 step 10: after a 2xx went upstream every other pending branch is CANCELled."""
    b1 = sim.callee("b1", B1, 180)
    b2 = sim.callee("b2", B2, 180, Answer(200, at=1))
    sim.fork([target(b1), target(b2)])
    sim.call()
    sim.run()
    assert sim.sent_to(B1) == [(0.0, "INVITE"), (1.0, "CANCEL"), (1.0, "ACK")]
    assert sim.sent_to(B2) == [(0.0, "INVITE"), (1.0, "ACK")]
    # One final response reaches the caller: the 487 of the cancelled branch stays here.
    assert sim.caller.statuses() == [100, 180, 180, 200]
    assert completed(sim) == [(200, True)]
    assert_all_gone(sim)


def test_every_2xx_is_forwarded_even_after_the_first(sim: Sim) -> None:
    """RFC 3261 §16.7 step 5: each 2xx to an INVITE is forwarded, not only the first."""
    b1 = sim.callee("b1", B1, 180, Answer(200, at=1))
    b2 = sim.callee("b2", B2, 180, Answer(200, at=1))
    sim.fork([target(b1), target(b2)])
    sim.call()
    sim.run()
    assert sim.caller.statuses() == [100, 180, 180, 200, 200]
    assert {r.to_addr.tag for _, r in sim.caller.responses if r.status == 200} == {
        "b1-tag",
        "b2-tag",
    }
    # The caller ACKs both; each ACK finds its way to the callee that answered.
    assert [len(c.acks) for c in sim.callees.values()] == [1, 1]
    # The second callee answered before our CANCEL arrived.
    assert sim.sent_to(B2) == [(0.0, "INVITE"), (1.0, "CANCEL"), (1.0, "ACK")]
    assert completed(sim) == [(200, True)]
    assert_all_gone(sim)


def test_6xx_cancels_the_other_branches_and_is_forwarded(sim: Sim) -> None:
    """RFC 3261 §16.7 step 5: a 6xx cancels every pending branch and is the answer."""
    b1 = sim.callee("b1", B1, 180)
    b2 = sim.callee("b2", B2, 180, Answer(603, at=1))
    sim.fork([target(b1), target(b2)])
    sim.call()
    sim.run()
    assert sim.sent_to(B1) == [(0.0, "INVITE"), (1.0, "CANCEL"), (1.0, "ACK")]
    assert sim.sent_to(CALLER_HOST) == [
        (0.0, "100 INVITE"),
        (0.0, "180 INVITE"),
        (0.0, "180 INVITE"),
        (1.0, "603 INVITE"),
    ]
    assert completed(sim) == [(603, True)]
    assert_all_gone(sim)


def test_6xx_stops_the_next_groups(sim: Sim) -> None:
    """RFC 3261 §16.7 step 5: after a 6xx no further target is tried."""
    b1 = sim.callee("b1", B1, 486)
    b2 = sim.callee("b2", B2, Answer(600, at=1))
    b3 = sim.callee("b3", B3, 200)
    sim.fork([target(b1), target(b2)], [target(b3)])
    sim.call()
    sim.run()
    assert sim.sent_to(B3) == []
    assert sim.caller.statuses() == [100, 600]
    assert_all_gone(sim)


def test_best_response_prefers_the_lowest_class(sim: Sim) -> None:
    """RFC 3261 §16.7 step 6: with no 6xx, the lowest class wins (a 4xx over a 5xx)."""
    b1 = sim.callee("b1", B1, 500)
    b2 = sim.callee("b2", B2, Answer(486, at=1))
    sim.fork([target(b1), target(b2)])
    sim.call()
    sim.run()
    assert sim.caller.statuses() == [100, 486]
    [final] = [r for _, r in sim.caller.responses if r.status == 486]
    assert final.to_addr.tag == "b2-tag"  # the callee's own response, not one of ours


def test_lone_503_becomes_a_500_of_our_own(sim: Sim) -> None:
    """RFC 3261 §16.7 step 6: a 503 is never forwarded; the proxy sends 500 instead."""
    b1 = sim.callee("b1", B1, Answer(503, headers=(("Retry-After", 60),)))
    sim.fork([target(b1)])
    sim.call()
    sim.run()
    assert sim.caller.statuses() == [100, 500]
    [(_, final)] = [(t, r) for t, r in sim.caller.responses if r.status == 500]
    assert final.reason == "Server Internal Error"
    assert "Retry-After" not in final
    assert completed(sim) == [(500, True)]


def test_challenges_of_every_branch_are_merged_into_the_forwarded_401(sim: Sim) -> None:
    """RFC 3261 §16.7 step 7: the 401/407 forwarded carries the challenges of all branches."""
    www = 'Digest realm="b1.example.com", nonce="n1"'
    proxy_auth = 'Digest realm="b2.example.com", nonce="n2"'
    b1 = sim.callee("b1", B1, Answer(401, headers=(("WWW-Authenticate", www),)))
    b2 = sim.callee("b2", B2, Answer(407, at=1, headers=(("Proxy-Authenticate", proxy_auth),)))
    b3 = sim.callee("b3", B3, Answer(486, at=2))
    sim.fork([target(b1), target(b2), target(b3)])
    sim.call()
    sim.run()
    assert sim.caller.statuses() == [100, 401]
    [final] = [r for _, r in sim.caller.responses if r.status == 401]
    assert [str(v) for v in final.get_all("WWW-Authenticate")] == [www]
    assert [str(v) for v in final.get_all("Proxy-Authenticate")] == [proxy_auth]


def test_no_final_response_at_all_means_408(sim: Sim) -> None:
    """RFC 3261 §16.7 step 6: a branch that never answered counts as 408 (Timer B here)."""
    sim.fork([Target(URI.parse(f"sip:bob@{NOWHERE}"), (dead(NOWHERE),))])
    sim.call()
    sim.run()
    assert sim.sent_to(NOWHERE) == [(t, "INVITE") for t in (0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5)]
    assert sim.sent_to(CALLER_HOST) == [(0.0, "100 INVITE"), (32.0, "408 INVITE")]
    assert_all_gone(sim)


# -- sequential groups and ring timeouts ---------------------------------------------------------


def test_next_group_starts_only_when_every_branch_of_the_previous_failed(sim: Sim) -> None:
    """RFC 3261 §16.7 step 6: a new group is tried only after all branches of the last failed."""
    b1 = sim.callee("b1", B1, Answer(486, at=1))
    b2 = sim.callee("b2", B2, 180, Answer(480, at=3))
    b3 = sim.callee("b3", B3, 180, Answer(200, at=1))
    sim.fork([target(b1), target(b2)], [target(b3)])
    sim.call()
    sim.run()
    assert sim.sent_to(B3) == [(3.0, "INVITE"), (4.0, "ACK")]
    assert sim.caller.statuses() == [100, 180, 180, 200]
    assert completed(sim) == [(200, True)]
    assert_all_gone(sim)


def test_ring_timeout_cancels_each_group_and_ends_with_408(sim: Sim) -> None:
    """RFC 3261 §16.7 step 6: ring timeouts end each group; with nothing better the answer is 408."""
    b1 = sim.callee("b1", B1, 180)
    b2 = sim.callee("b2", B2, 180)
    sim.fork([target(b1)], [target(b2)], ring_timeout=5)
    sim.call()
    sim.run()
    assert sim.sent_to(B1) == [(0.0, "INVITE"), (5.0, "CANCEL"), (5.0, "ACK")]
    assert sim.sent_to(B2) == [(5.0, "INVITE"), (10.0, "CANCEL"), (10.0, "ACK")]
    assert sim.sent_to(CALLER_HOST) == [
        (0.0, "100 INVITE"),
        (0.0, "180 INVITE"),
        (5.0, "180 INVITE"),
        (10.0, "408 INVITE"),
    ]
    assert completed(sim) == [(408, True)]
    assert kinds(sim)[-1] == (15.0, "ContextClosed")  # Timer I after the caller's ACK
    assert_all_gone(sim)


# -- Timer C -------------------------------------------------------------------------------------


def test_timer_c_cancels_a_ringing_branch_and_restarts_on_provisionals(clock: FakeClock) -> None:
    """RFC 3261 §16.8: when Timer C fires on a ringing branch the proxy CANCELs it (408 upstream)."""
    sim = Sim(clock, timers=TimerConfig(timer_c=10))
    b1 = sim.callee("b1", B1, 180, Answer(183, at=6))
    sim.fork([target(b1)])
    sim.call()
    sim.run()
    # The 183 at 6 s restarted Timer C (RFC 3261 §16.7 step 2), so it fired at 16 s, not 10 s.
    assert sim.sent_to(B1) == [(0.0, "INVITE"), (16.0, "CANCEL"), (16.0, "ACK")]
    assert sim.sent_to(CALLER_HOST) == [
        (0.0, "100 INVITE"),
        (0.0, "180 INVITE"),
        (6.0, "183 INVITE"),
        (16.0, "408 INVITE"),
    ]
    assert_all_gone(sim)


def test_timer_c_restarts_on_every_provisional(clock: FakeClock) -> None:
    """RFC 3261 §16.7 step 2: each provisional above 100 resets Timer C of its branch."""
    sim = Sim(clock, timers=TimerConfig(timer_c=10))
    b1 = sim.callee("b1", B1, 180, Answer(180, at=9), Answer(180, at=18), Answer(200, at=27))
    sim.fork([target(b1)])
    sim.call()
    sim.run()
    assert sim.caller.statuses() == [100, 180, 180, 180, 200]
    assert sim.sent_to(B1) == [(0.0, "INVITE"), (27.0, "ACK")]


def test_timer_c_starts_with_each_invite_branch(clock: FakeClock) -> None:
    """RFC 3261 §16.6 step 11: every forwarded INVITE gets Timer C; with no provisional it means 408."""
    sim = Sim(clock, timers=TimerConfig(timer_c=10))
    sim.fork([Target(URI.parse(f"sip:bob@{NOWHERE}"), (dead(NOWHERE),))])
    sim.call()
    sim.run()
    # No provisional: no CANCEL; the branch counts as 408 and the INVITE runs out its Timer B.
    assert sim.sent_to(NOWHERE) == [(t, "INVITE") for t in (0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5)]
    assert sim.sent_to(CALLER_HOST) == [(0.0, "100 INVITE"), (10.0, "408 INVITE")]
    assert_all_gone(sim)


def test_a_callee_that_never_answers_the_cancel_is_given_up(clock: FakeClock) -> None:
    """RFC 3261 §9.1: with no final response 64*T1 after the CANCEL the branch's transaction ends."""
    sim = Sim(clock)
    b1 = sim.callee("b1", B1, 180)
    sim.callees["b1"].ignore_cancel = True
    sim.fork([target(b1)], ring_timeout=5)
    sim.call()
    sim.run()
    assert sim.sent_to(B1) == [(0.0, "INVITE"), (5.0, "CANCEL")]
    assert sim.sent_to(CALLER_HOST) == [
        (0.0, "100 INVITE"),
        (0.0, "180 INVITE"),
        (5.0, "408 INVITE"),
    ]
    assert kinds(sim)[-1] == (10.0, "ContextClosed")
    # The INVITE client transaction, stuck in Proceeding, ended at 5 + 64*T1.
    assert_all_gone(sim)


# -- CANCEL from the caller (§16.10) ------------------------------------------------------------


def test_caller_cancel_gets_200_cancels_every_branch_and_487_goes_upstream(
    sim: Sim, clock: FakeClock
) -> None:
    """RFC 3261 §16.10: 200 to the CANCEL at once, every branch cancelled, the 487 reaches the caller."""
    b1 = sim.callee("b1", B1, 180)
    b2 = sim.callee("b2", B2, 180)
    sim.fork([target(b1), target(b2)], [target(sim.callee("b3", B3, 200))])
    sim.call()
    sim.run(until=3.0)
    clock.now = 3.0
    sim.caller.cancel(sim.uac, clock.now)
    sim.run()
    assert sim.sent_to(B1) == [(0.0, "INVITE"), (3.0, "CANCEL"), (3.0, "ACK")]
    assert sim.sent_to(B2) == [(0.0, "INVITE"), (3.0, "CANCEL"), (3.0, "ACK")]
    assert sim.sent_to(B3) == []  # no further group after a CANCEL
    assert sim.sent_to(CALLER_HOST)[-2:] == [(3.0, "200 CANCEL"), (3.0, "487 INVITE")]
    assert sim.caller.statuses() == [100, 180, 180, 487]
    ctx = sim.engine.of(RoutingNeeded)[0].ctx  # type: ignore[attr-defined]
    assert sim.engine.of(RequestCancelled) == [RequestCancelled(ctx)]
    assert completed(sim) == [(487, True)]
    assert_all_gone(sim)


def test_cancel_without_a_response_context_gets_481(sim: Sim) -> None:
    """RFC 3261 §16.10: a CANCEL that matches no response context is answered 481 here."""
    cancel = request("CANCEL", branch="z9hG4bK-unknown", call_id="no-such-call")
    sim.caller.send(sim.uac, cancel, now=0.0)
    sim.run()
    assert sim.sent_to(CALLER_HOST) == [(0.0, "481 CANCEL")]
    assert sim.engine.events == []
    assert_all_gone(sim)


def test_cancel_before_any_branch_started_ends_the_invite_with_487(
    sim: Sim, clock: FakeClock
) -> None:
    """RFC 3261 §16.10: nothing went downstream yet, so the proxy answers 487 itself at once."""
    sim.call()
    sim.run()
    clock.now = 1.0
    sim.caller.cancel(sim.uac, clock.now)
    sim.run(until=1.0)
    assert sim.sent_to(CALLER_HOST) == [
        (0.0, "100 INVITE"),
        (1.0, "200 CANCEL"),
        (1.0, "487 INVITE"),
    ]
    ctx = sim.engine.of(RoutingNeeded)[0].ctx  # type: ignore[attr-defined]
    assert sim.engine.of(RequestCancelled) == [RequestCancelled(ctx)]
    # The engine decides too late: proxy() does nothing now.
    b1 = sim.callee("b1", B1, 200)
    sim.core.proxy(ctx, [[target(b1)]], now=clock.now)
    sim.run()
    assert sim.sent_to(B1) == []
    assert kinds(sim)[-1] == (6.0, "ContextClosed")
    assert_all_gone(sim)


def test_retransmitted_cancel_gets_the_same_200_and_cancels_nothing_more(
    sim: Sim, clock: FakeClock
) -> None:
    """RFC 3261 §16.10: the CANCEL's own transaction absorbs its retransmissions."""
    b1 = sim.callee("b1", B1, 180)
    sim.fork([target(b1)])
    sim.call()
    sim.run(until=1.0)
    clock.now = 1.0
    sim.caller.cancel(sim.uac, clock.now)
    sim.run(until=2.0)
    clock.now = 2.0
    [cancel] = [s.out.message for s in sim.net.sent if s.label == "CANCEL" and s.sender == "caller"]
    sim.uac.layer.send_stateless(cancel, Peer("UDP", PROXY_HOST, 5060))
    sim.run()
    assert sim.sent_to(B1) == [(0.0, "INVITE"), (1.0, "CANCEL"), (1.0, "ACK")]
    assert [x for x in sim.sent_to(CALLER_HOST) if x[1] == "200 CANCEL"] == [
        (1.0, "200 CANCEL"),
        (2.0, "200 CANCEL"),
    ]
    assert sim.caller.statuses() == [100, 180, 487]


# -- RFC 3263 §4.3 failover ------------------------------------------------------------------


def test_503_moves_the_branch_to_the_next_peer(sim: Sim) -> None:
    """RFC 3263 §4.3: a 503 from one resolved peer sends the request to the next one."""
    b1 = sim.callee("b1", B1, 503)
    b2 = sim.callee("b2", B2, 180, Answer(200, at=1))
    sim.fork([target(b1, b2)])
    sim.call()
    sim.run()
    assert sim.sent_to(B1) == [(0.0, "INVITE"), (0.0, "ACK")]
    assert sim.sent_to(B2) == [(0.0, "INVITE"), (1.0, "ACK")]
    first, second = (m for m in sim.net.sent if m.sender == "proxy" and m.label == "INVITE")
    assert first.out.message.top_via.branch != second.out.message.top_via.branch
    assert sim.caller.statuses() == [100, 180, 200]
    assert_all_gone(sim)


def test_timer_b_moves_the_branch_to_the_next_peer(sim: Sim) -> None:
    """RFC 3263 §4.3: an INVITE that times out (Timer B) is retried on the next peer."""
    b2 = sim.callee("b2", B2, 180, Answer(200, at=1))
    sim.fork([Target(URI.parse(f"sip:bob@{NOWHERE}"), (dead(NOWHERE), b2.peer()))])
    sim.call()
    sim.run()
    assert sim.sent_to(NOWHERE)[-1] == (31.5, "INVITE")
    assert sim.sent_to(B2) == [(32.0, "INVITE"), (33.0, "ACK")]
    assert sim.caller.statuses() == [100, 180, 200]
    assert_all_gone(sim)


def test_timer_f_moves_a_non_invite_branch_to_the_next_peer(sim: Sim) -> None:
    """RFC 3263 §4.3: a non-INVITE that times out (Timer F) is retried on the next peer."""
    b2 = sim.callee("b2", B2)
    sim.fork([Target(None, (dead(NOWHERE), b2.peer()))])
    sim.caller.send(sim.uac, request("MESSAGE", branch="z9hG4bK-m1"), now=0.0)
    sim.run()
    assert sim.sent_to(NOWHERE) == [
        (t, "MESSAGE") for t in (0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5)
    ]
    assert sim.sent_to(B2) == [(32.0, "MESSAGE")]
    assert sim.caller.statuses("MESSAGE") == [200]
    assert_all_gone(sim)


def test_transport_error_moves_the_branch_to_the_next_peer(sim: Sim, clock: FakeClock) -> None:
    """RFC 3263 §4.3: a transport error towards one peer sends the request to the next one."""
    b2 = sim.callee("b2", B2, 180, Answer(200, at=1))
    broken = Peer("TCP", NOWHERE, 5060)
    sim.fork([Target(URI.parse(f"sip:bob@{NOWHERE};transport=tcp"), (broken, b2.peer()))])
    sim.call()
    sim.run(until=0.0)
    clock.now = 0.25
    sim.core.handle_transport_error(Peer("UDP", NOWHERE, 5060), now=clock.now)  # not that one
    sim.core.handle_transport_error(broken, now=clock.now)
    sim.run()
    assert sim.sent_to(NOWHERE) == [(0.0, "INVITE")]  # TCP: no retransmissions
    assert sim.sent_to(B2) == [(0.25, "INVITE"), (1.25, "ACK")]
    assert sim.caller.statuses() == [100, 180, 200]
    assert_all_gone(sim)


def test_the_last_peer_failing_ends_the_branch_with_its_status(sim: Sim) -> None:
    """RFC 3263 §4.3: with no peer left the branch fails and the best response goes upstream."""
    b1 = sim.callee("b1", B1, 503)
    b2 = sim.callee("b2", B2, 503)
    sim.fork([target(b1, b2)])
    sim.call()
    sim.run()
    assert sim.caller.statuses() == [100, 500]


# -- the engine decides (final=False, respond) --------------------------------------------------


def test_final_false_hands_the_best_response_to_the_engine(sim: Sim, clock: FakeClock) -> None:
    """RFC 3261 §16.7 step 6: with final=False the best response waits for the engine."""
    b1 = sim.callee("b1", B1, 180, Answer(486, at=1))
    sim.fork([target(b1)], final=False)
    sim.call()
    sim.run()
    assert sim.caller.statuses() == [100, 180]
    [done] = sim.engine.of(ProxyCompleted)
    assert isinstance(done, ProxyCompleted)
    assert (done.status, done.forwarded, done.response.status) == (486, False, 486)
    assert done.request.method == "INVITE"
    clock.now = 2.0
    sim.core.forward_best(done.ctx, done.response, now=clock.now)
    sim.run()
    assert sim.sent_to(CALLER_HOST)[-1] == (2.0, "486 INVITE")
    assert_all_gone(sim)


def test_final_false_lets_the_engine_proxy_elsewhere(sim: Sim, clock: FakeClock) -> None:
    """RFC 3261 §16.5: after a failed attempt the engine may add targets and proxy again."""
    b1 = sim.callee("b1", B1, 486)
    b2 = sim.callee("b2", B2, 180, 200)
    sim.fork([target(b1)], final=False)
    sim.call()
    sim.run()
    [done] = sim.engine.of(ProxyCompleted)
    sim.core.proxy(done.ctx, [[target(b2)]], now=clock.now)  # type: ignore[attr-defined]
    sim.run()
    assert sim.caller.statuses() == [100, 180, 200]
    assert completed(sim) == [(486, False), (200, True)]
    assert_all_gone(sim)


def test_engine_final_response_cancels_the_branches_and_stops_the_groups(
    sim: Sim, clock: FakeClock
) -> None:
    """RFC 3261 §16.7 step 10: a final response sent upstream cancels what is still pending."""
    b1 = sim.callee("b1", B1, 180)
    b2 = sim.callee("b2", B2, 200)
    sim.fork([target(b1)], [target(b2)])
    sim.call()
    sim.run(until=2.0)
    ctx = sim.engine.of(RoutingNeeded)[0].ctx  # type: ignore[attr-defined]
    clock.now = 2.0
    sim.core.reply(ctx, 480, "Gone Home", now=clock.now)
    sim.core.reply(ctx, 486, now=clock.now)  # too late: dropped
    sim.run()
    assert sim.sent_to(B1) == [(0.0, "INVITE"), (2.0, "CANCEL"), (2.0, "ACK")]
    assert sim.sent_to(B2) == []
    assert sim.caller.statuses() == [100, 180, 480]
    assert completed(sim) == []
    assert_all_gone(sim)


# -- §16.11 stray responses, and memory -----------------------------------------------------------


def test_stray_response_with_our_via_goes_to_the_next_via() -> None:
    """RFC 3261 §16.11: a response matching no transaction goes on to the Via below ours."""
    core = ProxyCore(proxy_config(), CountingIds())
    response = Response(200, "OK")
    response["Via"] = [
        Via("UDP", PROXY_HOST, 5060, {"branch": "z9hG4bKcs.gone.0.0"}),
        Via(
            "UDP",
            "caller.example.com",
            None,
            {"branch": "z9hG4bK-c", "received": "192.0.2.10", "rport": "5072"},
        ),
    ]
    response["From"] = "<sip:alice@example.com>;tag=a"
    response["To"] = "<sip:bob@example.com>;tag=b"
    response["Call-ID"] = "late"
    response["CSeq"] = CSeq(1, "INVITE")
    core.handle_response(response, Peer("UDP", B1, 5060), now=0.0)
    event = core.next_event()
    assert isinstance(event, ForwardNeeded)
    assert str(event.next_hop) == "sip:192.0.2.10:5072;transport=udp"
    assert [v.host for v in event.message.via] == ["caller.example.com"]
    core.send_stateless(event.message, Peer("UDP", "192.0.2.10", 5072))
    [out] = core.messages_to_send()
    assert out.peer == Peer("UDP", "192.0.2.10", 5072)
    # A stray response whose top Via is not ours is dropped.
    other = response.copy()
    other.insert("Via", Via("UDP", "elsewhere.example.net", 5060, {"branch": "z9hG4bK-x"}))
    core.handle_response(other, Peer("UDP", B1, 5060), now=0.0)
    assert core.next_event() is None


def test_late_2xx_retransmission_is_forwarded_statelessly(sim: Sim, clock: FakeClock) -> None:
    """RFC 3261 §16.11: a 2xx that arrives after its transaction ended still reaches the caller."""
    b1 = sim.callee("b1", B1, 200)
    sim.fork([target(b1)])
    sim.call()
    sim.run()
    [ok] = [m for m in sim.net.sent if m.sender == "b1" and m.label == "200 INVITE"]
    clock.now = 100.0
    b1.layer.send_stateless(ok.out.message, Peer("UDP", PROXY_HOST, 5060))
    sim.run()
    assert sim.sent_to(CALLER_HOST)[-1] == (100.0, "200 INVITE")
    assert sim.caller.acks and len(sim.caller.acks) == 2  # the caller ACKs the retransmission too
    assert_all_gone(sim)


def test_contexts_close_and_memory_stays_bounded_after_many_calls(clock: FakeClock) -> None:
    """RFC 3261 §16.7 step 10: after many calls of every outcome nothing is left behind.

    Answered, busy, forked, sequential with a ring timeout, failover after a
    dead peer, and calls the caller cancels, on a network that loses 10% of
    the datagrams.
    """
    sim = Sim(clock, loss=0.1, seed=7)
    answered = sim.callee("ok", B1, 180, Answer(200, at=1))
    busy = sim.callee("busy", B2, 180, Answer(486, at=1))
    ringing = sim.callee("ringing", B3, 180)
    outcomes: list[tuple[list[list[Target]], float | None]] = [
        ([[target(answered)]], None),
        ([[target(busy)]], None),
        ([[target(ringing), target(answered)]], None),
        ([[target(busy)], [target(ringing)]], 8.0),
        ([[Target(URI.parse(f"sip:bob@{NOWHERE}"), (dead(NOWHERE), answered.peer()))]], None),
        ([[target(ringing)]], None),  # the caller cancels these
    ]

    def route(core: ProxyCore, event: RoutingNeeded, now: float) -> None:
        n = int(event.request.call_id.split("-")[1])
        groups, ring_timeout = outcomes[n % len(outcomes)]
        core.proxy(event.ctx, groups, now=now, ring_timeout=ring_timeout)

    sim.route(route)
    calls = 60
    for n in range(calls):
        clock.now = float(n)
        sim.call(call_id=f"call-{n}")
        if n >= 3 and (n - 3) % len(outcomes) == 5:
            sim.caller.cancel(sim.uac, clock.now, call_id=f"call-{n - 3}")
        sim.run(until=clock.now)
    sim.run()
    assert len(sim.engine.of(RoutingNeeded)) == calls
    assert len(sim.engine.of(ContextClosed)) == calls
    finals = {
        r.call_id: r.status
        for _, r in sim.caller.responses
        if r.status >= 200 and r.method == "INVITE"
    }
    expected = {0: 200, 1: 486, 2: 200, 3: 486, 4: 200, 5: 487}
    want = {f"call-{n}": expected[n % len(outcomes)] for n in range(calls)}
    want["call-59"] = 408  # its CANCEL would have come after the last call: Timer C ends it
    assert finals == want
    assert_all_gone(sim)
    forking = sim.core._forking
    assert forking.branches == {} and len(forking) == 0


# -- more flows ------------------------------------------------------------------------------------


def in_dialog_or(groups: list[list[Target]]) -> Route:
    """Route new requests to ``groups`` and in-dialog ones to their next hop, as the engine does."""

    def route(core: ProxyCore, event: RoutingNeeded, now: float) -> None:
        if event.in_dialog:
            hop = next_hop(event.request)
            core.proxy(event.ctx, [[Target(None, (peer_of(hop),))]], now=now)
        else:
            core.proxy(event.ctx, groups, now=now)

    return route


def test_bye_follows_the_double_record_route_back_through_the_proxy(
    sim: Sim, clock: FakeClock
) -> None:
    """RFC 3261 §16.4: an in-dialog request loses both of our Route values and goes to the contact."""
    b1 = sim.callee("b1", B1, 180, 200)
    sim.route(in_dialog_or([[target(b1, transport="TCP")]]))
    sim.call()
    sim.run(until=1.0)
    [invite] = [m for m in sim.messages_to(B1) if isinstance(m, Request) and m.method == "INVITE"]
    assert [str(a) for a in invite.get_all("Record-Route")] == [
        f"<sip:{PROXY_HOST}:5060;transport=tcp;lr>",
        f"<sip:{PROXY_HOST}:5060;lr>",
    ]
    [ack] = sim.caller.acks
    assert len(ack.get_all("Route")) == 2
    clock.now = 5.0
    bye = ack.copy()
    bye.method = "BYE"
    bye["CSeq"] = CSeq(2, "BYE")
    bye.set_top("Via", Via("UDP", CALLER_HOST, 5060, {"branch": "z9hG4bK-bye"}))
    sim.caller.send(sim.uac, bye, now=clock.now)
    sim.run()
    [(_, received)] = [(t, r) for t, r in sim.callees["b1"].requests if r.method == "BYE"]
    assert "Route" not in received and "Record-Route" not in received
    assert str(received.uri) == f"sip:bob@{B1}:5060;transport=tcp"
    assert sim.caller.statuses("BYE") == [200]
    assert_all_gone(sim)


def test_caller_cancel_before_the_callee_rang_waits_for_its_provisional(
    sim: Sim, clock: FakeClock
) -> None:
    """RFC 3261 §9.1: the proxy's CANCEL waits until the branch has had a provisional response."""
    b1 = sim.callee("b1", B1, Answer(180, at=2))
    sim.fork([target(b1)])
    sim.call()
    sim.run(until=1.0)
    clock.now = 1.0
    sim.caller.cancel(sim.uac, clock.now)
    sim.run()
    assert sim.sent_to(B1) == [
        (0.0, "INVITE"),
        (0.5, "INVITE"),
        (1.5, "INVITE"),
        (2.0, "CANCEL"),
        (2.0, "ACK"),
    ]
    assert sim.sent_to(CALLER_HOST) == [
        (0.0, "100 INVITE"),
        (1.0, "200 CANCEL"),
        (2.0, "180 INVITE"),
        (2.0, "487 INVITE"),
    ]
    assert_all_gone(sim)


def test_forked_non_invite_forwards_one_final_response(sim: Sim) -> None:
    """RFC 3261 §16.7 step 5: only 2xx to INVITE go upstream after the first final response."""
    b1 = sim.callee("b1", B1)
    b2 = sim.callee("b2", B2)
    sim.fork([target(b1), target(b2)])
    sim.caller.send(sim.uac, request("MESSAGE", branch="z9hG4bK-m1"), now=0.0)
    sim.run()
    assert sim.sent_to(B1) == [(0.0, "MESSAGE")] and sim.sent_to(B2) == [(0.0, "MESSAGE")]
    assert sim.sent_to(CALLER_HOST) == [(0.0, "200 MESSAGE")]  # no CANCEL for a non-INVITE
    assert completed(sim) == [(200, True)]
    assert_all_gone(sim)


def test_caller_cancel_while_the_engine_decides_after_final_false(
    sim: Sim, clock: FakeClock
) -> None:
    """RFC 3261 §16.10: with nothing pending downstream a CANCEL ends the request with 487."""
    b1 = sim.callee("b1", B1, 486)
    sim.fork([target(b1)], final=False)
    sim.call()
    sim.run(until=1.0)
    clock.now = 1.0
    sim.caller.cancel(sim.uac, clock.now)
    sim.run(until=1.0)
    assert sim.sent_to(CALLER_HOST) == [
        (0.0, "100 INVITE"),
        (1.0, "200 CANCEL"),
        (1.0, "487 INVITE"),
    ]
    [done] = sim.engine.of(ProxyCompleted)
    sim.core.forward_best(done.ctx, done.response, now=clock.now)  # type: ignore[attr-defined]
    sim.run()
    assert sim.caller.statuses() == [100, 487]
    assert_all_gone(sim)


def test_engine_answers_itself_and_the_context_closes(sim: Sim) -> None:
    """RFC 3261 §16.2: the engine may answer a request itself; the response gets a To tag."""

    def route(core: ProxyCore, event: RoutingNeeded, now: float) -> None:
        core.reply(event.ctx, 404, headers=[("Warning", '399 proxy "no such user"')], now=now)

    sim.route(route)
    sim.call()
    sim.run()
    [(_, final)] = [(t, r) for t, r in sim.caller.responses if r.status == 404]
    assert final.to_addr.tag == "ptag1" and final.reason == "Not Found"
    assert kinds(sim) == [(0.0, "RoutingNeeded"), (5.0, "ContextClosed")]
    assert_all_gone(sim)


def test_caller_cancel_to_a_callee_that_never_ends_the_invite_gets_408(
    sim: Sim, clock: FakeClock
) -> None:
    """RFC 3261 §9.1: 64*T1 after the CANCEL the branch is given up and counts as 408."""
    b1 = sim.callee("b1", B1, 180, Answer(183, at=5))
    sim.callees["b1"].ignore_cancel = True
    sim.fork([target(b1)])
    sim.call()
    sim.run(until=1.0)
    clock.now = 1.0
    sim.caller.cancel(sim.uac, clock.now)
    sim.run()
    assert sim.sent_to(B1) == [(0.0, "INVITE"), (1.0, "CANCEL")]
    assert sim.sent_to(CALLER_HOST) == [
        (0.0, "100 INVITE"),
        (0.0, "180 INVITE"),
        (1.0, "200 CANCEL"),
        (5.0, "183 INVITE"),  # the branch is still live: its provisionals go up
        (33.0, "408 INVITE"),
    ]
    assert completed(sim) == [(408, True)]
    assert_all_gone(sim)


def test_provisional_of_a_branch_given_up_is_not_forwarded(sim: Sim) -> None:
    """RFC 3261 §16.7 step 5: once a branch counts as failed, its late provisionals stay here."""
    b1 = sim.callee("b1", B1, 180, Answer(183, at=6))
    sim.callees["b1"].ignore_cancel = True
    b2 = sim.callee("b2", B2, 180)
    sim.fork([target(b1)], [target(b2)], ring_timeout=5)
    sim.call()
    sim.run(until=7.0)
    assert sim.sent_to(CALLER_HOST) == [
        (0.0, "100 INVITE"),
        (0.0, "180 INVITE"),
        (5.0, "180 INVITE"),
    ]


def test_callee_vanishing_after_it_rang_leaves_nothing_behind(sim: Sim, clock: FakeClock) -> None:
    """RFC 3261 §9.1: a CANCEL that times out and an INVITE never answered are both given up."""
    b1 = sim.callee("b1", B1, 180)
    sim.fork([target(b1)], ring_timeout=5)
    sim.call()
    sim.run(until=1.0)
    del sim.net.nodes[(B1, 5060)]  # the callee is gone: nothing it is sent arrives
    sim.run()
    cancels = [t for t, label in sim.sent_to(B1) if label == "CANCEL"]
    assert cancels == [5.0, 5.5, 6.5, 8.5, 12.5, 16.5, 20.5, 24.5, 28.5, 32.5, 36.5]
    assert sim.sent_to(CALLER_HOST)[-1] == (5.0, "408 INVITE")
    assert_all_gone(sim)


def test_cancel_after_the_final_response_changes_nothing(sim: Sim, clock: FakeClock) -> None:
    """RFC 3261 §16.10: a CANCEL after the final response gets 200 and has no effect."""
    b1 = sim.callee("b1", B1, 180, Answer(200, at=1))
    sim.fork([target(b1)])
    sim.call()
    sim.run(until=2.0)
    clock.now = 2.0
    cancel = request("CANCEL", branch=sim.caller.keys["call-1"].split()[1])
    sim.uac.layer.send_stateless(cancel, Peer("UDP", PROXY_HOST, 5060))
    sim.run()
    assert (2.0, "200 CANCEL") in sim.sent_to(CALLER_HOST)
    assert sim.sent_to(B1) == [(0.0, "INVITE"), (1.0, "ACK")]
    assert sim.engine.of(RequestCancelled) == []
    assert_all_gone(sim)


def test_caller_vanishing_before_its_ack_still_closes_the_context(sim: Sim) -> None:
    """RFC 3261 §17.2.1: Timer H gives up on the ACK for a non-2xx; the context closes."""
    b1 = sim.callee("b1", B1, Answer(486, at=1))
    sim.fork([target(b1)])
    sim.call()
    sim.run(until=0.5)
    del sim.net.nodes[(CALLER_HOST, 5060)]
    sim.run()
    finals = [t for t, label in sim.sent_to(CALLER_HOST) if label == "486 INVITE"]
    assert finals == [1.0, 1.5, 2.5, 4.5, 8.5, 12.5, 16.5, 20.5, 24.5, 28.5, 32.5]
    assert kinds(sim)[-1] == (33.0, "ContextClosed")
    assert_all_gone(sim)


def test_proxy_needs_targets_and_one_call_at_a_time(sim: Sim, clock: FakeClock) -> None:
    """RFC 3261 §16.5: the target set is not empty; a second proxy() waits for the first to end."""
    b1 = sim.callee("b1", B1, 180)
    sim.call()
    sim.run(until=0.0)
    ctx = sim.engine.of(RoutingNeeded)[0].ctx  # type: ignore[attr-defined]
    assert sim.core.context(ctx) is not None
    with pytest.raises(ValueError, match="at least one target"):
        sim.core.proxy(ctx, [[]], now=clock.now)
    sim.core.proxy(ctx, [[target(b1)]], now=clock.now)
    with pytest.raises(LocalProtocolError, match="already being proxied"):
        sim.core.proxy(ctx, [[target(b1)]], now=clock.now)
    with pytest.raises(KeyError):
        sim.core.proxy("no such context", [[target(b1)]], now=clock.now)
