"""Takes a MESSAGE and an OPTIONS of one Call-ID and answers both 200."""

from __future__ import annotations

from callscript.scenario import ScenarioCall


async def uas(call: ScenarioCall) -> None:
    message = await call.expect("MESSAGE")
    assert message is not None and message.body == b"hello"
    call.respond(200)
    await call.expect("OPTIONS")
    call.respond(200, headers=[("Allow", ["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "MESSAGE"])])
