"""Helpers for scenario tests: scenario files, and a UAC run against a UAS run in one process."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from callscript.scenario import Endpoint, LoadSettings, Runner, Stats, load_scenario
from callscript.sip.timers import TimerConfig
from callscript.sip.uri import URI
from callscript.sip.useragent import UserAgentCore
from callscript.stack import Stack

SCENARIOS = Path(__file__).parent / "scenarios"
FAST = TimerConfig(t1=0.05, t2=0.4)


def scenario_path(name: str) -> Path:
    """The path of tests/scenario/scenarios/NAME.py."""
    return SCENARIOS / f"{name}.py"


async def run_pair(
    uac: str, uas: str, *, calls: int = 1, rate: float | None = None, timeout: float = 5.0
) -> tuple[Stats, Stats, Runner, Runner]:
    """Run UAC scenario ``uac`` against UAS scenario ``uas``, each on its own stack."""
    async with await Stack.start(timers=FAST) as server, await Stack.start(timers=FAST) as client:
        host, port = server.listeners[0].sent_by
        answering = Runner(
            Endpoint(server, UserAgentCore("sip:bob@example.com", ids=server.ids), timeout=timeout),
            load_scenario(scenario_path(uas)),
            LoadSettings(calls=calls, duration=timeout * 4),
        )
        calling = Runner(
            Endpoint(
                client, UserAgentCore("sip:alice@example.com", ids=client.ids), timeout=timeout
            ),
            load_scenario(scenario_path(uac)),
            LoadSettings(calls=calls, rate=rate),
            target=URI.parse(f"sip:bob@{host}:{port}"),
        )
        uas_task = asyncio.ensure_future(answering.run())
        uac_stats = await calling.run()
        calling.endpoint.close()
        uas_stats = await uas_task
        answering.endpoint.close()
        return uac_stats, uas_stats, calling, answering


@pytest.fixture
def scenarios() -> Path:
    return SCENARIOS
