"""A callee that rings and never answers: the caller's CANCEL gets 200, the INVITE 487."""

from __future__ import annotations

from callscript.scenario import ScenarioCall


async def uas(call: ScenarioCall) -> None:
    await call.expect("INVITE")
    call.respond(180)
    await call.expect("CANCEL")
