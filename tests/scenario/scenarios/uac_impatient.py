"""Calls and waits at most half a second for the answer."""

from __future__ import annotations

from callscript.scenario import ScenarioCall


async def uac(call: ScenarioCall) -> None:
    await call.invite()
    await call.expect(100, 180, optional=True)
    await call.expect(200, timeout=0.5)
