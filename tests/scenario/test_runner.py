"""The load runner: concurrency limit, total calls, duration, and calls whose scenario breaks."""

from __future__ import annotations

import asyncio

import pytest

from callscript.scenario import Endpoint, LoadSettings, Runner, Scenario, ScenarioCall
from callscript.sip.useragent import UserAgentCore
from callscript.stack import Stack

pytestmark = pytest.mark.timeout(60)


def runner(stack: Stack, scenario: Scenario, settings: LoadSettings) -> Runner:
    endpoint = Endpoint(stack, UserAgentCore("sip:alice@example.com", ids=stack.ids), timeout=1.0)
    return Runner(endpoint, scenario, settings)


def test_concurrency_limit_holds_and_every_call_runs() -> None:
    """No more than ``concurrency`` calls run at once, and all ``calls`` run."""
    running: list[int] = []
    peak: list[int] = []

    async def uac(call: ScenarioCall) -> None:
        running.append(call.number)
        peak.append(len(running))
        await call.pause(0.05)
        running.remove(call.number)

    async def main() -> Runner:
        async with await Stack.start() as stack:
            run = runner(stack, Scenario.uac(uac), LoadSettings(calls=7, concurrency=2))
            await run.run()
            return run

    done = asyncio.run(main())
    assert max(peak) == 2
    assert sorted(r.number for r in done.records) == list(range(1, 8))
    assert all(r.ok and r.response_time is None for r in done.records)


def test_no_call_starts_after_the_duration() -> None:
    """With a duration and no call count, calls start at the rate until the duration is over."""

    async def uac(call: ScenarioCall) -> None:
        await call.pause(0.01)

    async def main() -> tuple[Runner, float]:
        async with await Stack.start() as stack:
            run = runner(stack, Scenario.uac(uac), LoadSettings(calls=None, rate=50, duration=0.3))
            start = stack.loop.time()
            await run.run()
            return run, start

    done, start = asyncio.run(main())
    assert done.records
    assert all(r.started - start < 0.3 for r in done.records)
    numbers = sorted(r.number for r in done.records)
    assert numbers == list(range(1, len(numbers) + 1))


def test_a_broken_scenario_fails_its_call_not_the_run() -> None:
    """An exception in the scenario's own code is recorded against the call and its step."""

    async def uac(call: ScenarioCall) -> None:
        await call.pause(0)
        raise KeyError("oops")

    async def main() -> Runner:
        async with await Stack.start() as stack:
            run = runner(stack, Scenario.uac(uac), LoadSettings(calls=2))
            stats = await run.run()
            assert (stats.calls, stats.failed) == (2, 2)
            return run

    done = asyncio.run(main())
    assert done.records[0].error == "step 1 raised KeyError: 'oops'"


def test_uac_without_target_fails_at_its_first_step() -> None:
    """A UAC that sends with no target URI fails the step saying so."""

    async def uac(call: ScenarioCall) -> None:
        await call.invite()

    async def main() -> Runner:
        async with await Stack.start() as stack:
            run = runner(stack, Scenario.uac(uac), LoadSettings(calls=1))
            await run.run()
            return run

    assert asyncio.run(main()).records[0].error == "step 1 cannot send INVITE: no target URI"


def test_uas_with_a_duration_and_no_caller_ends_with_no_calls() -> None:
    """A UAS run that nobody calls ends after its duration with empty statistics."""

    async def uas(call: ScenarioCall) -> None:
        await call.expect("INVITE")

    async def main() -> int:
        async with await Stack.start() as stack:
            run = runner(stack, Scenario.uas(uas), LoadSettings(calls=None, duration=0.2))
            stats = await run.run()
            assert not run.endpoint.accepting
            return stats.calls

    assert asyncio.run(main()) == 0
