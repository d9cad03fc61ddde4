"""Sends a MESSAGE, then an OPTIONS; both must be answered 200."""

from __future__ import annotations

from callscript.scenario import ScenarioCall


async def uac(call: ScenarioCall) -> None:
    await call.message("hello")
    await call.expect(200)
    await call.request("OPTIONS")
    await call.expect(200)
