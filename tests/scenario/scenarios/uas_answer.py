"""A callee: rings, answers with SDP, takes the ACK and the caller's BYE."""

from __future__ import annotations

from callscript.scenario import ScenarioCall

SDP = b"v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6002 RTP/AVP 0\r\n"


async def uas(call: ScenarioCall) -> None:
    await call.expect("INVITE")
    call.respond(180)
    call.respond(200, body=SDP)
    await call.expect("ACK")
    await call.expect("BYE")
    call.respond(200)
