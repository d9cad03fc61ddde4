"""A caller: INVITE, optional 100/180/183, 200, ACK, a pause, BYE."""

from __future__ import annotations

from callscript.scenario import ScenarioCall

SDP = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n"


async def uac(call: ScenarioCall) -> None:
    await call.invite(body=SDP)
    await call.expect(100, optional=True)
    await call.expect(180, 183, optional=True)
    await call.expect(200)
    await call.ack()
    await call.pause(0.1)
    await call.bye()
    await call.expect(200)
