"""Registers (answering the registrar's challenge with --password) and unregisters."""

from __future__ import annotations

from callscript.scenario import ScenarioCall


async def uac(call: ScenarioCall) -> None:
    await call.register(expires=120)
    await call.expect(200)
    await call.register(expires=0)
    await call.expect(200)
