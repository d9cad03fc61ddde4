"""Calls, hears ringing, gives up: CANCEL, and the INVITE ends with 487."""

from __future__ import annotations

from callscript.scenario import ScenarioCall


async def uac(call: ScenarioCall) -> None:
    await call.invite()
    await call.expect(100, optional=True)
    await call.expect(180)
    await call.cancel()
    await call.expect(487)
    await call.ack()
