"""A callee that is busy: 486 to the INVITE (its ACK is the transaction's business)."""

from __future__ import annotations

from callscript.scenario import ScenarioCall


async def uas(call: ScenarioCall) -> None:
    await call.expect("INVITE")
    call.respond(486)
