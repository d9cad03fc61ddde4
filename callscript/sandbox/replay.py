"""The replay state of one call, kept in the SIP process while the call rings.

A handler step is a pure function of (script version, event data, outcomes so
far), so all a call needs between steps is its list of outcomes. :class:`CallRun`
keeps it, adds up the wall time the steps used (``limits.wall_per_event``, proxy
waits excluded), and hands back only the actions not seen before: a replay
repeats the earlier ones, and a replay that does not is an error.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from callscript.sandbox.actions import (
    Action,
    Finished,
    Pending,
    StepFailed,
    StepResult,
    fallback_action,
)
from callscript.sandbox.protocol import check_outcome

if TYPE_CHECKING:
    from callscript.sandbox.pool import SandboxPool, Script


class CallRun:
    """The replay state of one call: outcomes so far, wall time spent, actions seen.

    ``start()`` runs the handler; after a :class:`Pending`, carry out its proxy
    request and call ``resume(result, targets)``. Each returned result carries
    only the actions not returned before.
    """

    def __init__(self, pool: SandboxPool, script: Script, event: Mapping[str, Any]) -> None:
        self.pool = pool
        self.script = script
        self.event = event
        self.outcomes: list[dict[str, Any]] = []
        self.spent = 0.0
        self.seen: tuple[Action, ...] = ()

    async def start(self) -> StepResult:
        """The first step."""
        return await self._step()

    async def resume(self, result: str, targets: Sequence[str] = ()) -> StepResult:
        """The next step, once the pending proxy() has ``result`` (and, for
        'redirection', the Contact ``targets`` of the 3xx)."""
        self.outcomes.append(check_outcome(result, targets))
        return await self._step()

    async def _step(self) -> StepResult:
        result = await self.pool.run_step(self.script, self.event, self.outcomes, spent=self.spent)
        self.spent += result.elapsed
        seen = len(self.seen)
        if isinstance(result, Pending | Finished) and result.actions[:seen] != self.seen:
            message = "the script did not take the same path when replayed"
            rules = self.pool.policy.for_domain(self.script.domain)
            return StepFailed("error", None, message, fallback_action(rules), (), result.elapsed)
        new = result.actions[seen:]
        if len(result.actions) > seen:
            self.seen = result.actions
        return dataclasses.replace(result, actions=new)
