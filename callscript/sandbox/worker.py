"""A sandbox worker process: runs handler steps one at a time, under OS limits.

Started by the pool as ``python -s -P -m callscript.sandbox.worker`` with an
empty environment (only a shared PYTHONHASHSEED, so every worker of a pool
iterates sets the same way and a replay on another worker takes the same path).
It speaks the JSON lines of protocol.py on its stdin/stdout; file descriptor 1
is pointed at /dev/null once the protocol has its own copy, so nothing else can
write into the stream.

Limits, from the init message and each step's rules:
    RLIMIT_AS        memory the process may map (a bomb gets MemoryError, and the
                     worker exits after reporting it so the next step starts clean);
    RLIMIT_CPU       a backstop for C loops signals cannot interrupt: the kernel kills
                     the process (SIGXCPU) a few seconds of CPU after the step's start;
    ITIMER_PROF      the per-step CPU budget: the signal handler halts the step
                     (CpuExceeded, which scripts cannot catch) and fires again every
                     50 ms until the step is over;
    recursion limit  the frames a step may add; RLIMIT_CORE and RLIMIT_FSIZE are 0.
The pool's wall deadline covers the rest (``10 ** 10 ** 9`` runs in C): it kills
the process and starts another.
"""

from __future__ import annotations

import collections
import contextlib
import importlib
import math
import os
import resource
import signal
import sys
import time
import types
from typing import Any, BinaryIO

import callscript
from callscript.sandbox.compiler import ScriptCompileError, compile_script
from callscript.sandbox.guards import CpuExceeded, StepState
from callscript.sandbox.policy import DomainPolicy, domain_policy_from_dict
from callscript.sandbox.protocol import decode, encode
from callscript.sandbox.runner import run_step

CPU_REPEAT = 0.05
RULES_CACHE = 8
CPU_BACKSTOP = 5
# Frames of the worker's own code under a script's first frame.
OWN_FRAMES = 40


class Worker:
    """The worker's state: its compiled-script cache and the step being run."""

    def __init__(
        self, out: BinaryIO, cache_size: int, modules: dict[str, types.ModuleType]
    ) -> None:
        self.out = out
        self.cache: collections.OrderedDict[tuple[str, str], types.CodeType] = (
            collections.OrderedDict()
        )
        self.cache_size = cache_size
        self.modules = modules
        self.state: StepState | None = None
        self.hidden = _host_paths()
        self.base_recursion = sys.getrecursionlimit()
        self.known_rules: list[tuple[dict[str, Any], DomainPolicy]] = []
        signal.signal(signal.SIGPROF, self.on_cpu_timer)

    def on_cpu_timer(self, signum: int, frame: object) -> None:
        """SIGPROF: the step used its CPU budget."""
        state = self.state
        if state is not None and state.running:
            state.halt(CpuExceeded("the script used its CPU time for one step"))

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """Run one step request; returns the reply."""
        script = request["script"]
        key = (script["name"], script["digest"])
        rules = self.rules(request["rules"])
        code: types.CodeType | dict[str, Any] | None = self.cache.get(key)
        if code is None and script.get("source") is None:
            return {"id": request["id"], "status": "need_source"}
        started = time.process_time()
        state = StepState(script["name"])
        self.arm(state, rules)
        try:
            if code is None:
                code = self.compile(script["source"], script["name"], rules, key)
            if not isinstance(code, types.CodeType):
                reply = code
            else:
                reply = run_step(
                    code,
                    request["event"],
                    request["outcomes"],
                    rules,
                    state=state,
                    served_domains=request.get("served_domains", ()),
                    modules=self.modules,
                    hidden_paths=self.hidden,
                )
        except CpuExceeded:
            reply = {
                "status": "failed",
                "actions": [],
                "failure": {
                    "kind": "timeout",
                    "line": None,
                    "message": "the script used its CPU time for one step",
                },
            }
        except MemoryError:
            reply = {
                "status": "failed",
                "actions": [],
                "failure": {
                    "kind": "memory",
                    "line": None,
                    "message": "the script ran out of memory",
                },
            }
        finally:
            self.disarm()
        reply["id"] = request["id"]
        reply["cpu"] = round(time.process_time() - started, 6)
        return reply

    def rules(self, data: dict[str, Any]) -> DomainPolicy:
        """The step's rules, parsed once per distinct value (a pool sends a few, often)."""
        for known, rules in self.known_rules:
            if known == data:
                return rules
        rules = domain_policy_from_dict(data)
        self.known_rules = [(data, rules), *self.known_rules[: RULES_CACHE - 1]]
        return rules

    def compile(
        self, source: str, name: str, rules: DomainPolicy, key: tuple[str, str]
    ) -> types.CodeType | dict[str, Any]:
        """Compile and cache, or a failed reply."""
        try:
            compiled = compile_script(source, name, rules)
        except ScriptCompileError as exc:
            failure = {"kind": "error", "line": exc.line, "message": exc.problems[0].message[:300]}
            return {"status": "failed", "actions": [], "failure": failure}
        self.cache[key] = compiled.code
        while len(self.cache) > self.cache_size:
            self.cache.popitem(last=False)
        return compiled.code

    def arm(self, state: StepState, rules: DomainPolicy) -> None:
        """Start the step's limits: CPU timer, CPU backstop, recursion."""
        used = resource.getrusage(resource.RUSAGE_SELF)
        spent = used.ru_utime + used.ru_stime
        backstop = math.ceil(spent + rules.limits.cpu_per_step) + CPU_BACKSTOP
        _, hard = resource.getrlimit(resource.RLIMIT_CPU)
        resource.setrlimit(resource.RLIMIT_CPU, (backstop, hard))
        sys.setrecursionlimit(_depth() + OWN_FRAMES + rules.limits.max_recursion)
        self.state = state
        signal.setitimer(signal.ITIMER_PROF, rules.limits.cpu_per_step, CPU_REPEAT)

    def disarm(self) -> None:
        """End the step's limits (the state first, so a late signal does nothing)."""
        self.state = None
        signal.setitimer(signal.ITIMER_PROF, 0)
        sys.setrecursionlimit(self.base_recursion)

    def serve(self, stdin: BinaryIO) -> None:
        """Answer step requests until the pool closes stdin."""
        while True:
            line = stdin.readline()
            if not line:
                return
            request = decode(line)
            reply = self.handle(request)
            self.out.write(encode(reply))
            self.out.flush()
            failure = reply.get("failure")
            if isinstance(failure, dict) and failure.get("kind") == "memory":
                # A fresh process for the next step: nothing of the bomb stays around.
                return


def _depth() -> int:
    depth = 0
    frame = sys._getframe()
    while frame is not None:
        depth += 1
        frame = frame.f_back  # type: ignore[assignment]
    return depth


def _host_paths() -> list[str]:
    package = os.path.dirname(os.path.dirname(os.path.abspath(callscript.__file__)))
    paths = {
        sys.prefix,
        sys.base_prefix,
        sys.exec_prefix,
        package,
        os.getcwd(),
        os.path.expanduser("~"),
    }
    return sorted((p for p in paths if p and p != "/"), key=len, reverse=True)


def apply_limits(memory_mb: int) -> None:
    """The process-wide limits: address space, no core files, no file writes."""
    limit = memory_mb << 20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    _no_new_privileges()


def _no_new_privileges() -> None:
    # Linux: no setuid gain through exec, and die with the SIP process.
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def main() -> None:
    """The worker's entry point."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The protocol gets private copies of stdin/stdout; fd 0 and 1 go to /dev/null.
    stdin = os.fdopen(os.dup(0), "rb")
    out = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.close(devnull)
    init = decode(stdin.readline())
    modules = {name: importlib.import_module(name) for name in init.get("modules", ())}
    apply_limits(int(init["memory_mb"]))
    worker = Worker(out, int(init["cache"]), modules)
    out.write(encode({"ready": True}))
    out.flush()
    with contextlib.suppress(BrokenPipeError):
        worker.serve(stdin)


if __name__ == "__main__":
    main()
