"""Calls and expects to be redirected."""

from __future__ import annotations

from callscript.scenario import ScenarioCall


async def uac(call: ScenarioCall) -> None:
    await call.invite()
    await call.expect(100, optional=True)
    response = await call.expect(302)
    assert response is not None and [str(c.uri) for c in response.contacts] == [
        "sip:bob@192.0.2.80"
    ]
    await call.ack()
