"""The SIP process's side of the sandbox: a pool of worker processes (asyncio).

Steps wait in one queue; each of ``workers.count`` slots takes the next step,
sends it to its worker process and waits for the reply under a hard wall
deadline (the time the event has left of ``limits.wall_per_event``; waiting in
the queue does not count). A worker that overruns it is killed and replaced
and the step fails with kind ``timeout``; a worker that dies is replaced and
the step is tried once more on the fresh one (kind ``crash`` if it dies again).
A worker whose reply breaks the protocol is killed. Other users' steps never
wait on a bad script: they sit in the shared queue, not behind a worker.

Each worker caches compiled scripts by (name, content digest); the pool mirrors
that cache to know when to send the source. Timeouts, memory failures and
crashes count as violations: ``quarantine.violations`` of them within
``quarantine.window`` seconds put a script in quarantine for
``quarantine.duration`` seconds, during which its steps fail at once with kind
``quarantined`` (the call gets the fallback).

:class:`CallRun` keeps the replay state of one call: the outcomes so far, the
wall time spent, and the actions already seen (each step returns only new ones,
so log lines are not repeated).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import secrets
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import callscript
from callscript.sandbox.actions import StepFailed, StepResult, fallback_action
from callscript.sandbox.compiler import source_digest
from callscript.sandbox.policy import DomainPolicy, Policy
from callscript.sandbox.protocol import (
    MAX_LINE,
    ProtocolViolation,
    check_event,
    decode,
    encode,
    parse_reply,
)
from callscript.sandbox.quarantine import Quarantine
from callscript.sandbox.replay import CallRun

START_TIMEOUT = 30.0
CLOSE_TIMEOUT = 2.0
VIOLATION_KINDS = ("timeout", "memory", "crash")
# After the interpreter: no user site-packages, no current directory on sys.path.
WORKER_COMMAND = ("-s", "-P", "-m", "callscript.sandbox.worker")


@dataclass(frozen=True, slots=True)
class Script:
    """One version of a user's script: ``name`` as shown in errors, its ``domain``
    (which per-domain rules apply), its ``source``."""

    name: str
    domain: str
    source: str
    digest: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "digest", source_digest(self.source))


@dataclass(slots=True)
class PoolStats:
    """Counters since the pool started."""

    steps: int = 0
    restarts: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    quarantined: int = 0


class _Process:
    """One worker process and the pool's mirror of its script cache."""

    def __init__(self, proc: asyncio.subprocess.Process, cache_size: int) -> None:
        self.proc = proc
        self.known: collections.OrderedDict[tuple[str, str], None] = collections.OrderedDict()
        self.cache_size = cache_size

    async def exchange(self, message: Mapping[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(encode(message))
        await self.proc.stdin.drain()
        try:
            line = await self.proc.stdout.readline()
        except ValueError:
            raise ProtocolViolation("reply longer than the protocol allows") from None
        if not line:
            raise ConnectionResetError("the worker exited")
        return decode(line)

    def remember(self, key: tuple[str, str]) -> None:
        self.known[key] = None
        self.known.move_to_end(key)
        while len(self.known) > self.cache_size:
            self.known.popitem(last=False)

    async def stop(self, *, kill: bool) -> int | None:
        """Stop the process (closing stdin, or SIGKILL); its exit status."""
        proc = self.proc
        if proc.returncode is None:
            if kill:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            elif proc.stdin is not None:
                proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), CLOSE_TIMEOUT)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        return proc.returncode


@dataclass(slots=True, eq=False)
class _Job:
    script: Script
    rules: DomainPolicy
    event: Mapping[str, Any]
    outcomes: Sequence[Mapping[str, Any]]
    budget: float
    done: asyncio.Future[StepResult]


class SandboxPool:
    """Worker processes that run handler steps; use ``async with`` or start()/close().

    Args:
        policy: the sandbox policy (workers, memory and per-domain rules).
        served_domains: domains this proxy serves (allowed targets by default).
        command: the worker's command line (default :data:`WORKER_COMMAND` with this
            interpreter); an administrator may prefix it with an OS jail (bwrap, nsjail...).
    """

    def __init__(
        self,
        policy: Policy,
        *,
        served_domains: Sequence[str] = (),
        command: Sequence[str] | None = None,
    ) -> None:
        self.policy = policy
        self.served_domains = tuple(d.lower() for d in served_domains)
        self.command = tuple(command) if command is not None else (sys.executable, *WORKER_COMMAND)
        self.stats = PoolStats()
        self.quarantine = Quarantine()
        # Told (script name, digest) when a script version goes into quarantine (for the audit log).
        self.on_quarantine: Callable[[str, str], None] | None = None
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._slots: list[asyncio.Task[None]] = []
        self._seed = str(secrets.randbelow(1 << 32))
        self._processes: set[_Process] = set()
        self._running: set[_Job] = set()
        self._closed = False

    async def __aenter__(self) -> SandboxPool:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Start the workers (they are also started on first use)."""
        if self._slots or self._closed:
            return
        processes = await asyncio.gather(*(self._spawn() for _ in range(self.policy.workers.count)))
        self._slots = [asyncio.create_task(self._slot(p)) for p in processes]

    async def close(self) -> None:
        """Stop the workers; pending steps fail with kind ``crash``."""
        self._closed = True
        jobs = list(self._running)
        for task in self._slots:
            task.cancel()
        for task in self._slots:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._slots = []
        for process in list(self._processes):
            await process.stop(kill=False)
        self._processes.clear()
        while not self._queue.empty():
            jobs.append(self._queue.get_nowait())
        for job in jobs:
            if not job.done.done():
                job.done.set_result(self._failed(job, "crash", "the sandbox was shut down"))

    @property
    def pids(self) -> list[int]:
        """Process ids of the running workers (for monitoring)."""
        return sorted(p.proc.pid for p in self._processes if p.proc.returncode is None)

    def call(self, script: Script, event: Mapping[str, Any]) -> CallRun:
        """The replay state for one call of ``script`` with ``event``."""
        return CallRun(self, script, event)

    async def run_step(
        self,
        script: Script,
        event: Mapping[str, Any],
        outcomes: Sequence[Mapping[str, Any]] = (),
        *,
        spent: float = 0.0,
    ) -> StepResult:
        """Run one handler step (all of ``outcomes`` replayed); never raises for the script's
        faults: they come back as :class:`StepFailed`.

        Args:
            spent: wall time this event's earlier steps used (seconds).

        Raises:
            ValueError: ``event`` is not event data of the documented shape.
            RuntimeError: the pool is closed.
        """
        if self._closed:
            raise RuntimeError("the sandbox pool is closed")
        check_event(event)
        await self.start()
        rules = self.policy.for_domain(script.domain)
        loop = asyncio.get_running_loop()
        job = _Job(
            script,
            rules,
            event,
            outcomes,
            rules.limits.wall_per_event - spent,
            loop.create_future(),
        )
        if self.quarantine.active((script.name, script.digest), now=loop.time()):
            return self._failed(
                job, "quarantined", "the script is in quarantine after repeated failures"
            )
        if job.budget <= 0:
            return self._failed(job, "timeout", "the script used its wall time for this call")
        self._queue.put_nowait(job)
        return await job.done

    def _failed(self, job: _Job, kind: str, message: str, line: int | None = None) -> StepFailed:
        return StepFailed(kind, line, message, fallback_action(job.rules))

    async def _spawn(self) -> _Process:
        root = os.path.dirname(os.path.dirname(os.path.abspath(callscript.__file__)))
        env = {
            "PYTHONHASHSEED": self._seed,
            "PYTHONPATH": root,
            "PYTHONDONTWRITEBYTECODE": "1",
            "LC_ALL": "C.UTF-8",
        }
        proc = await asyncio.create_subprocess_exec(
            *self.command,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL, env=env, limit=MAX_LINE, start_new_session=True,
        )  # fmt: skip
        process = _Process(proc, self.policy.workers.cache_scripts)
        self._processes.add(process)
        workers = self.policy.workers
        init = {
            "op": "init",
            "memory_mb": workers.memory_mb,
            "cache": workers.cache_scripts,
            "modules": self._modules(),
        }
        try:
            ready = await asyncio.wait_for(process.exchange(init), START_TIMEOUT)
            if ready != {"ready": True}:
                raise ProtocolViolation("bad ready message")
        except (OSError, TimeoutError, ProtocolViolation, ConnectionError):
            await self._discard(process, kill=True)
            raise
        return process

    def _modules(self) -> list[str]:
        names = set(self.policy.base.script.modules)
        for rules in self.policy.domains.values():
            names.update(rules.script.modules)
        return sorted(names)

    async def _discard(self, process: _Process, *, kill: bool) -> int | None:
        self._processes.discard(process)
        return await process.stop(kill=kill)

    async def _slot(self, process: _Process | None) -> None:
        while True:
            job = await self._queue.get()
            if job.done.done():
                continue
            self._running.add(job)
            try:
                process = await self._serve(process, job)
            finally:
                self._running.discard(job)

    async def _serve(self, process: _Process | None, job: _Job) -> _Process | None:
        """Run ``job`` (once more on a fresh worker if its worker died); the worker to keep."""
        attempts = 0
        while True:
            if process is None:
                try:
                    process = await self._spawn()
                except (OSError, TimeoutError, ProtocolViolation, ConnectionError):
                    self._finish(
                        job, self._failed(job, "crash", "a sandbox worker could not start")
                    )
                    return None
            result, process = await self._run(process, job)
            attempts += 1
            crashed = isinstance(result, StepFailed) and result.kind == "crash"
            if not crashed or attempts > 1:
                self._finish(job, result)
                return process

    async def _run(self, process: _Process, job: _Job) -> tuple[StepResult, _Process | None]:
        """One step on ``process``; the process to keep (None when it was stopped)."""
        script = job.script
        key = (script.name, script.digest)
        request = {
            "op": "step",
            "script": {
                "name": script.name,
                "digest": script.digest,
                "source": None if key in process.known else script.source,
            },
            "event": job.event,
            "outcomes": list(job.outcomes),
            "rules": job.rules.to_dict(),
            "served_domains": list(self.served_domains),
            "id": self.stats.steps,
        }
        self.stats.steps += 1
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            reply = await asyncio.wait_for(
                self._exchange(process, request, script.source), job.budget
            )
            elapsed = loop.time() - started
            if reply.get("id") != request["id"]:
                raise ProtocolViolation("reply to another step")
            process.remember(key)
            result = parse_reply(reply, job.rules, job.event, self.served_domains, elapsed=elapsed)
        except TimeoutError:
            await self._replace(process, kill=True)
            message = f"the script ran past its wall time ({job.rules.limits.wall_per_event:g} s per call)"
            return self._failed(job, "timeout", message), None
        except (ConnectionError, BrokenPipeError):
            status = await self._replace(process, kill=True)
            if status == -signal.SIGXCPU:
                return self._failed(
                    job, "timeout", "the script used its CPU time for one step"
                ), None
            return self._failed(
                job, "crash", f"the sandbox worker died ({_describe_status(status)})"
            ), None
        except ProtocolViolation as exc:
            await self._replace(process, kill=True)
            return self._failed(job, "crash", f"the sandbox worker broke protocol: {exc}"), None
        if isinstance(result, StepFailed) and result.kind == "memory":
            # The worker exits after a memory failure; the next step gets a fresh one.
            await self._replace(process, kill=False)
            return result, None
        return result, process

    @staticmethod
    async def _exchange(process: _Process, request: dict[str, Any], source: str) -> dict[str, Any]:
        reply = await process.exchange(request)
        if reply.get("status") == "need_source" and request["script"]["source"] is None:
            # The mirror of the worker's cache was wrong: send the step again with the source.
            request["script"]["source"] = source
            reply = await process.exchange(request)
        return reply

    async def _replace(self, process: _Process, *, kill: bool) -> int | None:
        self.stats.restarts += 1
        return await self._discard(process, kill=kill)

    def _finish(self, job: _Job, result: StepResult) -> None:
        if isinstance(result, StepFailed):
            failures = self.stats.failures
            failures[result.kind] = failures.get(result.kind, 0) + 1
            if result.kind in VIOLATION_KINDS:
                now = asyncio.get_running_loop().time()
                version = (job.script.name, job.script.digest)
                if self.quarantine.record(version, job.rules, now=now):
                    self.stats.quarantined += 1
                    if self.on_quarantine is not None:
                        self.on_quarantine(job.script.name, job.script.digest)
        if not job.done.done():
            job.done.set_result(result)


def _describe_status(status: int | None) -> str:
    if status is not None and status < 0:
        try:
            return signal.Signals(-status).name
        except ValueError:
            return f"signal {-status}"
    return f"exit status {status}"
