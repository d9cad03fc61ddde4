"""The pool's own rules: script cache, shared hash seed, replay checks, shutdown, quarantine clock."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from callscript.sandbox.actions import Finished, Log, Pending, StepFailed
from callscript.sandbox.policy import DomainPolicy, QuarantineRules, WorkerRules
from callscript.sandbox.pool import SandboxPool, Script
from callscript.sandbox.quarantine import Quarantine

from .conftest import SERVED, TEST_POLICY, Pools, make_event


def test_a_worker_that_lost_a_script_gets_its_source_again(pools: Pools) -> None:
    """When the pool's mirror of a worker's cache is wrong, the worker asks for the
    source and the step still runs."""
    source = "log('fresh')\n"
    script = Script("example.com/lost.py", "example.com", source)
    for process in pools.checked._processes:
        process.remember((script.name, script.digest))
    result = pools.step(source, name="example.com/lost.py")
    assert isinstance(result, Finished)
    assert [a.text for a in result.actions if isinstance(a, Log)] == ["fresh"]


def test_a_new_version_of_a_script_is_compiled_afresh(pools: Pools) -> None:
    """Scripts are cached by content: a changed source runs as changed."""
    for text in ("one", "two", "one"):
        result = pools.step(f"log({text!r})\n", name="example.com/versions.py")
        assert [a.text for a in result.actions if isinstance(a, Log)] == [text]


def test_every_worker_iterates_sets_the_same_way(pools: Pools) -> None:
    """Workers of a pool share a hash seed, so a replay on another worker takes the same path."""
    source = "log(list({'sip:a@example.com', 'sip:b@example.com', 'sip:c@example.com', 'x', 'y', 'z'}))\n"

    async def many() -> set[str]:
        script = Script("example.com/sets.py", "example.com", source)
        results = await asyncio.gather(
            *(pools.checked.run_step(script, make_event()) for _ in range(20))
        )
        return {a.text for r in results for a in r.actions if isinstance(a, Log)}

    assert len(pools.run(many())) == 1


def test_a_replay_that_takes_another_path_is_an_error(pools: Pools) -> None:
    """CallRun checks that each replay repeats the actions already carried out."""
    source = (
        "@basic.on('incoming')\ndef h(event):\n"
        "    log('a')\n    event.action.proxy(location='sip:b@example.com')\n"
    )
    run = pools.checked.call(Script("example.com/path.py", "example.com", source), make_event())
    first = pools.run(run.start())
    assert isinstance(first, Pending)
    run.seen = (Log("something else", 0, 3), *run.seen[1:])
    second = pools.run(run.resume("busy"))
    assert isinstance(second, StepFailed)
    assert second.message == "the script did not take the same path when replayed"


def test_compile_errors_in_the_worker_name_the_line(pools: Pools) -> None:
    """A script that does not compile fails its step with the compiler's message and line."""
    result = pools.step("x = 1\nimport os\n")
    assert isinstance(result, StepFailed)
    assert (result.kind, result.line) == ("error", 2)
    assert result.message == "import of 'os' is not allowed by the sandbox policy"


def test_closing_the_pool_fails_waiting_steps(pools: Pools) -> None:
    """Steps still queued or running when the pool closes fail as crashes; no worker is left."""
    policy = dataclasses.replace(TEST_POLICY, workers=WorkerRules(count=1))
    pool = SandboxPool(policy, served_domains=SERVED)

    async def scenario() -> list[object]:
        await pool.start()
        pids = pool.pids
        slow = Script("example.com/slow.py", "example.com", "while True:\n    pass\n")
        steps = [asyncio.ensure_future(pool.run_step(slow, make_event())) for _ in range(3)]
        await asyncio.sleep(0.05)
        await pool.close()
        results = await asyncio.gather(*steps)
        with pytest.raises(RuntimeError):
            await pool.run_step(slow, make_event())
        return [pids, pool.pids, *results]

    pids, after, *results = pools.run(scenario())
    assert len(pids) == 1 and after == []  # type: ignore[arg-type]
    assert all(isinstance(r, StepFailed) and r.kind in ("crash", "timeout") for r in results)


def test_quarantine_counts_violations_in_a_sliding_window() -> None:
    """Violations older than the window do not count; quarantine ends after its duration."""
    rules = dataclasses.replace(
        DomainPolicy(), quarantine=QuarantineRules(violations=3, window=10, duration=60)
    )
    q = Quarantine()
    s, fixed = ("s.py", "v1"), ("s.py", "v2")
    assert not q.record(s, rules, now=0)
    assert not q.record(s, rules, now=5)
    assert not q.record(s, rules, now=12)  # the first fell out of the window
    assert q.record(s, rules, now=13)
    assert q.active(s, now=14) and q.active(s, now=72.9)
    assert not q.active(s, now=73) and not q.active(fixed, now=14)
    assert q.record(s, dataclasses.replace(rules, quarantine=QuarantineRules(violations=1)), now=80)
    q.release("s.py")
    assert not q.active(s, now=81)
    no_quarantine = dataclasses.replace(
        rules, quarantine=QuarantineRules(violations=1, window=10, duration=0)
    )
    assert not q.record(("t.py", "v1"), no_quarantine, now=0)
    assert not q.active(("t.py", "v1"), now=0)
