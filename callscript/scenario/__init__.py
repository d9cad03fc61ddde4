"""Client scenarios: a UAC or UAS written as a short Python script, run once or under load.

A scenario file defines ``async def uac(call)`` (it starts calls) or
``async def uas(call)`` (it answers them); ``call`` is a
:class:`ScenarioCall`, whose methods are numbered steps::

    async def uac(call):
        await call.invite(body=SDP)
        await call.expect(100, optional=True)
        await call.expect(180, 183, optional=True)
        await call.expect(200)
        await call.ack()
        await call.pause(1)
        await call.bye()
        await call.expect(200)

A failing step raises :class:`ScenarioFailed` ("step 4 expected 180/183/200,
got 486 Busy Here"). ``callscript scenario FILE.py`` runs a file, once or with
``--rate``, ``--calls``, ``--concurrency`` and ``--duration``, showing a live
progress line and ending with :class:`Stats` (printed, and written as CSV
with ``--csv``). From Python: :func:`load_scenario`, :class:`Endpoint`,
:class:`Runner`.
"""

from __future__ import annotations

from callscript.scenario.call import ScenarioCall
from callscript.scenario.endpoint import Endpoint
from callscript.scenario.inbox import ScenarioFailed
from callscript.scenario.load import LoadSettings, Progress, Runner
from callscript.scenario.loader import Scenario, load_scenario
from callscript.scenario.stats import CallRecord, Stats, percentile

__all__ = [
    "CallRecord",
    "Endpoint",
    "LoadSettings",
    "Progress",
    "Runner",
    "Scenario",
    "ScenarioCall",
    "ScenarioFailed",
    "Stats",
    "load_scenario",
    "percentile",
]
