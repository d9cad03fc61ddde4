"""A callee that sends the caller elsewhere with 302."""

from __future__ import annotations

from callscript.scenario import ScenarioCall


async def uas(call: ScenarioCall) -> None:
    await call.expect("INVITE")
    call.redirect("sip:bob@192.0.2.80")
