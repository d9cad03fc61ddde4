"""Fixtures: real worker pools running in a background event loop, and event data.

``pools`` is session-wide: a pool with the compiler's checks ("checked") and one
whose workers skip the static checks ("runtime"), so an attack test can prove
the run-time guards stop it on their own. Both use :data:`TEST_POLICY`: the
shipped defaults with a shorter wall time, so deadline tests end sooner.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import threading
from collections.abc import Coroutine, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

from callscript.sandbox.actions import StepResult
from callscript.sandbox.policy import Limits, Policy, QuarantineRules, WorkerRules
from callscript.sandbox.pool import SandboxPool, Script

T = TypeVar("T")
HERE = Path(__file__).resolve().parent
SERVED = ("example.com",)
TEST_POLICY = Policy(
    workers=WorkerRules(count=2, memory_mb=256),
    base=dataclasses.replace(
        Policy().base,
        limits=Limits(cpu_per_step=0.2, wall_per_event=1.0),
        # The tests run many bombs under one script name: no quarantine here.
        quarantine=QuarantineRules(violations=100000),
    ),
)
UNCHECKED = (sys.executable, "-s", "-P", str(HERE / "unchecked_worker.py"))


def make_event(**changes: Any) -> dict[str, Any]:
    """Event data for an INVITE from bob@example.org to alice@example.com."""
    event: dict[str, Any] = {
        "direction": "incoming",
        "method": "INVITE",
        "uri": "sip:alice@example.com",
        "user": "sip:alice@example.com",
        "contacts": ["sip:alice@192.0.2.4:5060"],
        "time": "2024-05-06T09:30:00+02:00",
        "headers": [
            ["Via", "SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKabc"],
            ["From", '"Bob" <sip:bob@example.org>;tag=1928301774'],
            ["To", "<sip:alice@example.com>"],
            ["Call-ID", "a84b4c76e66710@pc33.example.org"],
            ["CSeq", "314159 INVITE"],
            ["Authorization", 'Digest username="alice", response="secret-response"'],
            ["Subject", "lunch?"],
        ],
        "body": "",
    }
    event.update(changes)
    return event


class Pools:
    """Pools in an event loop on a background thread; ``run`` waits for a coroutine."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.checked = SandboxPool(TEST_POLICY, served_domains=SERVED)
        self.runtime = SandboxPool(TEST_POLICY, served_domains=SERVED, command=UNCHECKED)
        self.run(self.checked.start())
        self.run(self.runtime.start())

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def step(
        self,
        source: str,
        *,
        pool: SandboxPool | None = None,
        event: Mapping[str, Any] | None = None,
        outcomes: Sequence[Mapping[str, Any]] = (),
        name: str = "example.com/alice.py",
    ) -> StepResult:
        """One step of ``source`` (on the checked pool unless told)."""
        script = Script(name, name.partition("/")[0], source)
        chosen = pool or self.checked
        return self.run(chosen.run_step(script, event or make_event(), outcomes))

    def close(self) -> None:
        self.run(self.checked.close())
        self.run(self.runtime.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="session")
def pools() -> Iterator[Pools]:
    """The session's worker pools."""
    opened = Pools()
    yield opened
    opened.close()


@pytest.fixture(params=["checked", "runtime"])
def any_pool(request: pytest.FixtureRequest, pools: Pools) -> SandboxPool:
    """Each pool in turn: with the static checks, and with run-time guards only."""
    pool: SandboxPool = getattr(pools, request.param)
    return pool
