"""Sandbox step benchmark: what running a user's handler costs, piece by piece.

Run from the repository root::

    .venv/bin/python bench/sandbox_step.py            # about 20 seconds
    .venv/bin/python bench/sandbox_step.py --quick

Times (median of repeats, microseconds per operation):

compile           compile_script of the README example (checks + RestrictedPython + bytecode);
                  the pool's workers cache it, so this is paid once per script version
runner            one step in this process (fresh globals and API objects, module body,
                  handler up to its proxy() wait): the sandbox's own work
limits            arming and disarming a step's limits in a worker (CPU timer,
                  RLIMIT_CPU backstop, recursion limit): the signal-based design has no
                  per-line tracing cost at all
json              encoding a step request and decoding its reply, as the pool does
round trip        pool.run_step one after another: queue, pipe, worker, JSON, host checks
throughput        steps per second with 64 in flight on the pool's workers
call              a whole call of the README example: start, busy, voicemail (two steps)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import signal
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from callscript.sandbox.compiler import compile_script
from callscript.sandbox.guards import StepState
from callscript.sandbox.policy import Policy
from callscript.sandbox.pool import SandboxPool, Script
from callscript.sandbox.protocol import decode, encode, parse_reply
from callscript.sandbox.runner import run_step

SOURCE = """
def screen(event):
    if event['From'].uri.host.endswith('example.org'):
        event.location = URI('sip:alice@desk.example.com')
        if event.action.proxy(timeout=15) in ('busy', 'noanswer', 'failure'):
            event.action.voicemail()
    else:
        event.action.reject(code=603, reason='Decline')

basic.addEventListener('incoming', screen)
"""
EVENT = {
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
    ],
    "body": "",
}
SERVED = ("example.com",)


def per_op(fn: Callable[[], object], number: int, repeat: int) -> float:
    """Median microseconds per call."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - start) / number)
    return statistics.median(times) * 1e6


def local(quick: bool) -> dict[str, float]:
    rules = Policy().base
    n, r = (200, 3) if quick else (2000, 5)
    compiled = compile_script(SOURCE, "example.com/alice.py", rules)
    out = {
        "compile": per_op(lambda: compile_script(SOURCE, "example.com/alice.py", rules), n // 10, r)
    }

    def step() -> object:
        state = StepState(compiled.name)
        return run_step(compiled.code, EVENT, [], rules, state=state, served_domains=SERVED)

    out["runner"] = per_op(step, n, r)

    def limits() -> None:
        used = resource.getrusage(resource.RUSAGE_SELF)
        _, hard = resource.getrlimit(resource.RLIMIT_CPU)
        resource.setrlimit(resource.RLIMIT_CPU, (int(used.ru_utime + used.ru_stime) + 60, hard))
        sys.setrecursionlimit(1200)
        signal.setitimer(signal.ITIMER_PROF, 0.25, 0.05)
        signal.setitimer(signal.ITIMER_PROF, 0)
        sys.setrecursionlimit(1000)

    out["limits"] = per_op(limits, n, r)
    reply = step()
    request = {"op": "step", "id": 1, "script": {"name": compiled.name, "digest": compiled.digest, "source": None},
               "event": EVENT, "outcomes": [], "rules": rules.to_dict(), "served_domains": list(SERVED)}  # fmt: skip
    line = encode({**reply, "id": 1})  # type: ignore[dict-item]

    def codec() -> object:
        encode(request)
        return parse_reply(decode(line), rules, EVENT, SERVED)

    out["json"] = per_op(codec, n, r)
    return out


async def remote(quick: bool) -> dict[str, float]:
    n = 300 if quick else 3000
    script = Script("example.com/alice.py", "example.com", SOURCE)
    async with SandboxPool(Policy(), served_domains=SERVED) as pool:
        await pool.run_step(script, EVENT)
        rounds = []
        for _ in range(n):
            start = time.perf_counter()
            await pool.run_step(script, EVENT)
            rounds.append(time.perf_counter() - start)
        start = time.perf_counter()
        batches = n // 64 or 1
        for _ in range(batches):
            await asyncio.gather(*(pool.run_step(script, EVENT) for _ in range(64)))
        throughput = batches * 64 / (time.perf_counter() - start)
        calls = []
        for _ in range(n // 10):
            start = time.perf_counter()
            run = pool.call(script, EVENT)
            await run.start()
            await run.resume("busy")
            calls.append(time.perf_counter() - start)
        return {
            "round trip": statistics.median(rounds) * 1e6,
            "throughput": throughput,
            "call": statistics.median(calls) * 1e6,
            "workers": pool.policy.workers.count,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats: rough numbers")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()
    results = local(args.quick)
    results.update(asyncio.run(remote(args.quick)))
    print(f"sandbox step, Python {sys.version.split()[0]}")
    for name in ("compile", "runner", "limits", "json", "round trip", "call"):
        print(f"  {name:<11} {results[name]:9.1f} us")
    print(
        f"  throughput  {results['throughput']:9.0f} steps/s with {results['workers']:.0f} workers"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
