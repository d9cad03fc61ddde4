"""Resource bombs, deadlines, dead and misbehaving workers, quarantine: real processes."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import sys
from collections.abc import Iterator

import pytest

from callscript.sandbox.actions import Finished, StepFailed, StepResult
from callscript.sandbox.policy import Policy, QuarantineRules, WorkerRules
from callscript.sandbox.pool import SandboxPool, Script

from .conftest import SERVED, TEST_POLICY, Pools, make_event

BENIGN = (
    "@basic.on('incoming')\ndef h(event):\n    event.action.reject(code=486, reason='Busy Here')\n"
)


def failed(result: StepResult, *kinds: str) -> StepFailed:
    assert isinstance(result, StepFailed), result
    assert result.kind in kinds, result
    return result


def healthy(pools: Pools, pool: SandboxPool | None = None) -> None:
    """A benign step right after still works."""
    result = pools.step(BENIGN, pool=pool)
    assert isinstance(result, Finished), result
    assert result.disposition.kind == "reject"


@pytest.fixture
def solo(pools: Pools) -> Iterator[SandboxPool]:
    """A pool of one worker, in the session's loop."""
    policy = dataclasses.replace(TEST_POLICY, workers=WorkerRules(count=1, memory_mb=256))
    pool = SandboxPool(policy, served_domains=SERVED)
    pools.run(pool.start())
    yield pool
    pools.run(pool.close())


@pytest.mark.parametrize(
    "source",
    [
        "while True:\n    pass",
        "x = 10 ** 10 ** 9",
        "def f():\n    return [f for f in range(10)] and f()\nwhile True:\n    pass",
        "@basic.on('incoming')\ndef h(event):\n    while True:\n"
        "        try:\n            pass\n        finally:\n            continue",
        "n = 0\nwhile True:\n    try:\n        n = n + 1\n    except Exception:\n        pass",
    ],
)
def test_cpu_bombs_time_out(pools: Pools, any_pool: SandboxPool, source: str) -> None:
    """Loops, big-number arithmetic and loops that try to outlast the stop end as timeouts."""
    failed(pools.step(source, pool=any_pool), "timeout")
    healthy(pools, any_pool)


def test_c_loop_past_the_deadline_gets_its_worker_killed(pools: Pools, solo: SandboxPool) -> None:
    """A C loop signals cannot interrupt runs into the wall deadline: the worker is
    killed, replaced, and the next step runs on the fresh one."""
    before = solo.stats.restarts
    old = solo.pids
    result = failed(pools.step("x = sum(range(10 ** 12))", pool=solo), "timeout")
    assert "wall time" in result.message or "CPU" in result.message
    assert solo.stats.restarts == before + 1
    healthy(pools, solo)
    assert solo.pids != old


@pytest.mark.parametrize(
    "source",
    [
        "x = 'a' * 10 ** 10",
        "x = [0] * 10 ** 10",
        "x = [i for i in range(10 ** 9)]",
        "x = {i: i for i in range(10 ** 9)}",
        "gens = [(i for i in range(3)) for _ in range(10 ** 8)]",
        "x = [str(i) * 1000 for i in range(10 ** 7)]",
        "s = 'ab'\nwhile True:\n    s = s + s",
    ],
)
def test_memory_bombs_are_contained(pools: Pools, source: str) -> None:
    """Allocations past RLIMIT_AS fail (or run out of time first); the pool goes on."""
    failed(pools.step(source), "memory", "timeout")
    healthy(pools)


def test_memory_failure_replaces_the_worker(pools: Pools, solo: SandboxPool) -> None:
    """After a MemoryError the worker exits and a fresh one takes the next step."""
    old = solo.pids
    failed(pools.step("x = 'a' * 10 ** 10", pool=solo), "memory")
    healthy(pools, solo)
    assert solo.pids != old


def test_deep_recursion_is_an_error(pools: Pools) -> None:
    """Recursion past the policy's depth raises RecursionError in the script."""
    result = failed(pools.step("def f(n):\n    return f(n + 1)\nf(0)\n"), "error")
    assert "RecursionError" in result.message
    assert result.line == 2


def test_recursion_that_catches_recursion_error_still_stops(pools: Pools) -> None:
    """Catching RecursionError to recurse again exhausts the CPU budget or the deadline."""
    source = "def f():\n    try:\n        f()\n    except RecursionError:\n        f()\nf()\n"
    failed(pools.step(source), "timeout")
    healthy(pools)


def test_a_bad_script_does_not_disturb_other_users(pools: Pools) -> None:
    """While one worker is stuck in a C loop, everyone else's steps complete normally."""

    async def burst() -> tuple[StepResult, list[StepResult]]:
        bad = Script("example.com/mallory.py", "example.com", "x = sum(range(10 ** 12))")
        good = Script("example.com/alice.py", "example.com", BENIGN)
        stuck = asyncio.ensure_future(pools.checked.run_step(bad, make_event()))
        await asyncio.sleep(0)
        others = await asyncio.gather(
            *(pools.checked.run_step(good, make_event()) for _ in range(30))
        )
        return await stuck, list(others)

    stuck, others = pools.run(burst())
    failed(stuck, "timeout")
    assert all(isinstance(r, Finished) and r.disposition.kind == "reject" for r in others)


def test_steps_queued_behind_a_killed_worker_run_on_its_replacement(
    pools: Pools, solo: SandboxPool
) -> None:
    """With one worker, steps queued behind a bad one run on the fresh worker."""

    async def queue() -> list[StepResult]:
        bad = Script("example.com/mallory.py", "example.com", "x = sum(range(10 ** 12))")
        good = Script("example.com/alice.py", "example.com", BENIGN)
        steps = [solo.run_step(bad, make_event())] + [
            solo.run_step(good, make_event()) for _ in range(5)
        ]
        return list(await asyncio.gather(*steps))

    bad, *good = pools.run(queue())
    failed(bad, "timeout")
    assert all(isinstance(r, Finished) for r in good)


def test_a_worker_killed_from_outside_is_replaced_and_the_step_retried(
    pools: Pools, solo: SandboxPool
) -> None:
    """A worker that dies between steps (OOM killer, operator) costs no step: it is
    replaced and the step runs again on the new one."""
    (pid,) = solo.pids
    os.kill(pid, signal.SIGKILL)
    healthy(pools, solo)
    assert solo.pids != [pid]
    assert solo.stats.restarts >= 1


def test_a_script_that_kills_its_worker_is_a_crash(pools: Pools) -> None:
    """A step that brings its worker down every time is reported as a crash (after one retry)."""
    policy = dataclasses.replace(TEST_POLICY, workers=WorkerRules(count=1))
    # A command that runs the worker, then dies with SIGSEGV on the first step.
    crash = (
        "import os, signal, sys\n"
        "from callscript.sandbox import worker\n"
        "def boom(self, request):\n"
        "    os.kill(os.getpid(), signal.SIGSEGV)\n"
        "worker.Worker.handle = boom\n"
        "worker.main()\n"
    )
    pool = SandboxPool(policy, served_domains=SERVED, command=(sys.executable, "-c", crash))
    try:
        result = failed(pools.step(BENIGN, pool=pool), "crash")
        assert result.message.startswith("the sandbox worker died")
        # The signal's name when the event loop learned the exit status; asyncio's child
        # watcher sometimes cannot, and then reports 255 ("Unknown child process").
        assert "SIGSEGV" in result.message or "exit status 255" in result.message
        assert pool.stats.restarts == 2
    finally:
        pools.run(pool.close())


def _json(obj: object) -> str:
    """A Python expression for the bytes of ``obj`` as JSON."""
    return repr(json.dumps(obj).encode())


_PROXY = {"kind": "proxy", "timeout": 10, "sequential": False}
BAD_REPLIES = [
    "b'not json'",
    "b'[' * 100000 + b']' * 100000",
    "b'x' * (5 << 20)",
    _json(
        {
            "id": 0,
            "status": "finished",
            "actions": [
                {"kind": "reject", "code": 486, "reason": "Busy\r\nX: y", "seq": 0, "line": 1}
            ],
            "disposition": {"kind": "reject", "code": 486, "reason": "Busy\r\nX: y"},
        }
    ),
    _json(
        {
            "id": 0,
            "status": "finished",
            "actions": [],
            "disposition": {**_PROXY, "targets": ["sip:x@127.0.0.1"]},
        }
    ),
    _json(
        {
            "id": 0,
            "status": "finished",
            "actions": [],
            "disposition": {**_PROXY, "targets": ["sip:x@evil.org"]},
        }
    ),
    _json(
        {
            "id": 0,
            "status": "finished",
            "actions": [],
            "disposition": {"kind": "reject", "code": True, "reason": None},
        }
    ),
    _json(
        {
            "id": 0,
            "status": "finished",
            "actions": [],
            "disposition": {"kind": "exec", "code": "import os"},
        }
    ),
    _json({"id": 99, "status": "finished", "actions": [], "disposition": {"kind": "default"}}),
    _json(
        {
            "id": 0,
            "status": "finished",
            "actions": [{"kind": "log", "text": "a\nb", "seq": 0, "line": 1}],
            "disposition": {"kind": "default"},
        }
    ),
    _json({"id": 0, "status": "pending", "actions": [], "proxy": None}),
    _json(
        {
            "id": 0,
            "status": "failed",
            "actions": [],
            "failure": {"kind": "crash", "line": None, "message": "x"},
        }
    ),
    _json(
        {
            "id": 0,
            "status": "finished",
            "actions": [
                {"kind": "default", "seq": 0, "line": 1},
                {"kind": "voicemail", "seq": 1, "line": 2},
            ],
            "disposition": {"kind": "default"},
        }
    ),
]


@pytest.mark.parametrize("reply", BAD_REPLIES)
def test_a_worker_that_breaks_protocol_is_killed(pools: Pools, reply: str) -> None:
    """Whatever a compromised worker sends, the SIP process only accepts checked JSON:
    bad replies get the worker killed and the step fails as a crash."""
    fake = (
        "import sys\n"
        "sys.stdin.buffer.readline()\n"
        "sys.stdout.buffer.write(b'{\"ready\": true}\\n'); sys.stdout.flush()\n"
        "sys.stdin.buffer.readline()\n"
        f"sys.stdout.buffer.write({reply} + b'\\n'); sys.stdout.flush()\n"
        "sys.stdin.buffer.readline()\n"
    )
    policy = dataclasses.replace(TEST_POLICY, workers=WorkerRules(count=1))
    pool = SandboxPool(policy, served_domains=SERVED, command=(sys.executable, "-c", fake))
    try:
        result = failed(pools.step(BENIGN, pool=pool), "crash")
        assert "protocol" in result.message or "died" in result.message
        assert result.fallback.kind == "default"
        assert pool.stats.restarts >= 1
    finally:
        pools.run(pool.close())


def test_repeated_violations_put_a_script_in_quarantine(pools: Pools) -> None:
    """Timeouts within the window quarantine the script: its next steps fail at once
    with kind 'quarantined' and the policy's fallback; other scripts, and a new version
    of the same script, still run."""
    rules = dataclasses.replace(
        TEST_POLICY.base,
        quarantine=QuarantineRules(violations=2, window=3600, duration=3600),
        failure=dataclasses.replace(TEST_POLICY.base.failure, fallback="reject:500"),
    )
    policy = Policy(workers=WorkerRules(count=1), base=rules)
    pool = SandboxPool(policy, served_domains=SERVED)
    try:
        bomb = "while True:\n    pass"
        failed(pools.step(bomb, pool=pool, name="example.com/mallory.py"), "timeout")
        failed(pools.step(bomb, pool=pool, name="example.com/mallory.py"), "timeout")
        steps = pool.stats.steps
        quarantined = failed(
            pools.step(bomb, pool=pool, name="example.com/mallory.py"), "quarantined"
        )
        assert quarantined.fallback.kind == "reject" and quarantined.fallback.code == 500  # type: ignore[union-attr]
        assert pool.stats.steps == steps
        assert pool.stats.quarantined == 1
        healthy(pools, pool)
        assert isinstance(pools.step(BENIGN, pool=pool, name="example.com/mallory.py"), Finished)
        pool.quarantine.release("example.com/mallory.py")
        failed(pools.step(bomb, pool=pool, name="example.com/mallory.py"), "timeout")
    finally:
        pools.run(pool.close())


def test_wall_time_is_counted_per_call(pools: Pools) -> None:
    """A call whose steps used up wall_per_event gets no further step."""
    result = pools.run(
        pools.checked.run_step(
            Script("example.com/a.py", "example.com", BENIGN), make_event(), spent=5.0
        )
    )
    failed(result, "timeout")
