"""Random forks, answers, CANCELs and losses: the proxy core's promises hold whatever happens."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callscript.sip.message import Response
from callscript.sip.proxy.context import Target
from callscript.sip.proxy.core import ProxyCore
from callscript.sip.proxy.events import ContextClosed, ProxyCompleted, RoutingNeeded
from callscript.sip.timers import TimerConfig
from callscript.sip.uri import URI
from tests.sip.proxy.conftest import Answer, Sim, dead, target
from tests.sip.transaction.netsim import FakeClock

FINALS = (200, 486, 487, 503, 600, 603, 401, 0)  # 0: never answers

answers = st.builds(
    lambda ring, final, at: (ring, final, at),
    st.sampled_from((None, 180, 183)),
    st.sampled_from(FINALS),
    st.sampled_from((0.0, 0.5, 3.0, 12.0)),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    callees=st.lists(answers, min_size=1, max_size=4),
    split=st.integers(min_value=1, max_value=4),
    ring_timeout=st.sampled_from((None, 5.0, 10.0)),
    cancel_at=st.sampled_from((None, 0.0, 1.0, 4.0, 11.0)),
    dead_first=st.booleans(),
    loss=st.sampled_from((0.0, 0.2)),
    seed=st.integers(min_value=0, max_value=3),
)
def test_any_fork_ends_with_one_answer_and_leaves_nothing_behind(
    callees: list[tuple[int | None, int, float]],
    split: int,
    ring_timeout: float | None,
    cancel_at: float | None,
    dead_first: bool,
    loss: float,
    seed: int,
) -> None:
    """RFC 3261 §16.7 step 5: one non-2xx final at most, never after a 2xx; then nothing is left."""
    clock = FakeClock()
    sim = Sim(clock, timers=TimerConfig(timer_c=20.0), loss=loss, seed=seed)
    targets: list[Target] = []
    for n, (ring, final, at) in enumerate(callees):
        script: list[Answer | int] = [] if ring is None else [ring]
        if final:
            script.append(Answer(final, at=at))
        node = sim.callee(f"b{n}", f"192.0.2.{21 + n}", *script)
        if dead_first and n == 0:
            uri = URI.parse("sip:bob@192.0.2.99")
            targets.append(Target(uri, (dead("192.0.2.99"), node.peer())))
        else:
            targets.append(target(node))
    groups = [targets[:split], targets[split:]] if targets[split:] else [targets]

    def route(core: ProxyCore, event: RoutingNeeded, now: float) -> None:
        core.proxy(event.ctx, groups, now=now, ring_timeout=ring_timeout)

    sim.route(route)
    sim.call()
    if cancel_at is not None:
        sim.run(until=cancel_at)
        clock.now = max(clock.now, cancel_at)
        sim.caller.cancel(sim.uac, clock.now)
    sim.run()

    finals = [r for _, r in sim.caller.responses if r.method == "INVITE" and r.status >= 200]
    failures = [r for r in finals if r.status >= 300]
    assert len(failures) <= 1
    if failures:
        assert all(r.status >= 300 for r in finals[: finals.index(failures[0]) + 1])
    if loss == 0.0:
        assert finals, "the caller always gets a final response on a lossless network"
        assert all(isinstance(r, Response) for r in finals)
    assert len(sim.engine.of(ProxyCompleted)) <= 1 or any(r.status < 300 for r in finals)
    assert len(sim.engine.of(ContextClosed)) == len(sim.engine.of(RoutingNeeded)) == 1
    assert len(sim.core) == 0 and len(sim.core.layer) == 0
    assert sim.core.next_deadline() is None
    assert sim.core._forking.branches == {}
