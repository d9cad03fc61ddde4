"""Run a script against a made-up request in the real sandbox, and trace what it does.

Used by ``callscript simulate`` and meant for a later HTTP API: :func:`simulate`
takes a :class:`Simulation` (the source, the request's fields, the outcomes its
proxy attempts get) and a running :class:`SandboxPool`, and returns a
:class:`Trace`. The script runs exactly as for a real call: compiled with the
same checks, in a worker process with the same limits, replayed step by step.

Each proxy() gets the next of ``outcomes``; when they run out it gets
``default_outcome`` ('success' unless told otherwise: the phone answers).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from callscript.sandbox.actions import (
    RESULTS,
    Finished,
    Log,
    Pending,
    Proxy,
    StepFailed,
    StepResult,
    action_dict,
)
from callscript.sandbox.compiler import Problem, check_script
from callscript.sandbox.policy import Policy
from callscript.sandbox.pool import SandboxPool, Script
from callscript.sip.errors import ParseError
from callscript.sip.uri import parse_uri

EXIT_RAN = 0
EXIT_COMPILE_ERROR = 1
EXIT_STOPPED = 3


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one proxy attempt gets: a result, and Contact targets for 'redirection'."""

    result: str
    targets: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.result not in RESULTS:
            raise ValueError(
                f"unknown outcome {self.result!r}; expected one of {', '.join(RESULTS)}"
            )

    @classmethod
    def parse(cls, text: str) -> Outcome:
        """``busy``, or ``redirection=sip:a@b.com,sip:c@d.com``."""
        result, _, targets = text.partition("=")
        return cls(result.strip(), tuple(t.strip() for t in targets.split(",") if t.strip()))


@dataclass(frozen=True, slots=True)
class Simulation:
    """A made-up request for a script.

    ``caller``/``callee`` are the From and To URIs; the request-URI is the callee.
    The script's owner is the callee for 'incoming', the caller for 'outgoing'.
    """

    source: str
    name: str
    caller: str
    callee: str
    method: str = "INVITE"
    direction: str = "incoming"
    time: datetime.datetime = field(default_factory=lambda: datetime.datetime.now().astimezone())
    outcomes: tuple[Outcome, ...] = ()
    default_outcome: str = "success"
    contacts: tuple[str, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    body: str = ""

    @property
    def owner(self) -> str:
        """The owner's address of record."""
        return self.callee if self.direction == "incoming" else self.caller

    @property
    def domain(self) -> str:
        """The owner's domain (selects the per-domain rules)."""
        return _host(self.owner)


@dataclass(frozen=True, slots=True)
class Trace:
    """What the script did: ``entries`` (JSON-able dicts, in order) and how it ended.

    ``status`` is 'finished', 'compile_error' or 'stopped' (the sandbox stopped it;
    the last entry names the fallback the call gets).
    """

    status: str
    entries: tuple[dict[str, Any], ...]
    problems: tuple[Problem, ...] = ()

    @property
    def exit_code(self) -> int:
        """0 ran, 1 did not compile, 3 stopped by the sandbox."""
        return {"finished": EXIT_RAN, "compile_error": EXIT_COMPILE_ERROR}.get(
            self.status, EXIT_STOPPED
        )

    def json_lines(self) -> list[str]:
        """One JSON object per entry."""
        return [json.dumps(entry, ensure_ascii=False) for entry in self.entries]

    def text_lines(self) -> list[str]:
        """One readable line per entry."""
        return [_text(entry) for entry in self.entries]


def event_for(sim: Simulation) -> dict[str, Any]:
    """The event data the engine would send for the simulated request."""
    headers = [
        ["Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKsimulated"],
        ["From", f"<{sim.caller}>;tag=simulated"],
        ["To", f"<{sim.callee}>"],
        ["Call-ID", "simulated@callscript"],
        ["CSeq", f"1 {sim.method}"],
        ["Max-Forwards", "70"],
        *[[name, value] for name, value in sim.headers],
    ]
    return {
        "direction": sim.direction,
        "method": sim.method,
        "uri": sim.callee,
        "user": _aor(sim.owner),
        "contacts": list(sim.contacts),
        "time": sim.time.isoformat(),
        "headers": headers,
        "body": sim.body,
    }


async def simulate(pool: SandboxPool, sim: Simulation) -> Trace:
    """Compile ``sim.source`` with the pool's policy and run it in the pool's workers."""
    rules = pool.policy.for_domain(sim.domain)
    problems = check_script(sim.source, sim.name, rules)
    errors = tuple(p for p in problems if p.severity == "error")
    if errors:
        return Trace("compile_error", tuple({"problem": _problem(p)} for p in errors), errors)
    run = pool.call(Script(sim.name, sim.domain, sim.source), event_for(sim))
    entries: list[dict[str, Any]] = [{"problem": _problem(p)} for p in problems]
    outcomes = list(sim.outcomes)
    result: StepResult = await run.start()
    while True:
        for action in result.actions:
            if isinstance(result, Pending) and action is result.actions[-1]:
                continue
            entry = action_dict(action)
            if isinstance(action, Proxy):
                entry["outcome"] = "failure"  # no target to ring: it failed at once
            entries.append(entry)
        if not isinstance(result, Pending):
            break
        outcome = outcomes.pop(0) if outcomes else Outcome(sim.default_outcome)
        entries.append({**action_dict(result.proxy), "outcome": outcome.result})
        result = await run.resume(outcome.result, outcome.targets)
    if isinstance(result, Finished):
        entries.append({"disposition": action_dict(result.disposition)})
        return Trace("finished", tuple(entries), problems)
    assert isinstance(result, StepFailed)
    failure = {
        "kind": result.kind,
        "file": sim.name,
        "line": result.line,
        "message": result.message,
    }
    entries.append({"failure": failure, "fallback": action_dict(result.fallback)})
    return Trace("stopped", tuple(entries), problems)


def run_simulation(sim: Simulation, policy: Policy, *, served_domains: Sequence[str] = ()) -> Trace:
    """Start a one-worker pool, simulate, stop it (for the command line)."""
    one = dataclasses.replace(policy, workers=dataclasses.replace(policy.workers, count=1))
    domains = (*served_domains, sim.domain)

    async def go() -> Trace:
        async with SandboxPool(one, served_domains=domains) as pool:
            return await simulate(pool, sim)

    return asyncio.run(go())


def _problem(problem: Problem) -> dict[str, Any]:
    return {
        "file": problem.file,
        "line": problem.line,
        "col": problem.col,
        "severity": problem.severity,
        "message": problem.message,
    }


def _host(uri: str) -> str:
    try:
        return parse_uri(uri).host.lower()
    except ParseError:
        return ""


def _aor(uri: str) -> str:
    try:
        return parse_uri(uri).aor
    except ParseError:
        return uri


def _text(entry: dict[str, Any]) -> str:
    if "problem" in entry:
        p = entry["problem"]
        prefix = "warning: " if p["severity"] == "warning" else ""
        return f"{p['file']}:{p['line']}:{p['col']}: {prefix}{p['message']}"
    if "disposition" in entry:
        return f"=> {_describe(entry['disposition'])}"
    if "failure" in entry:
        f = entry["failure"]
        where = f"{f['file']}:{f['line']}: " if f["line"] else f"{f['file']}: "
        return f"{where}stopped ({f['kind']}): {f['message']}\n=> fallback: {_describe(entry['fallback'])}"
    line = f" (line {entry['line']})" if entry.get("line") else ""
    if entry["kind"] == Log.kind:
        return f"log{line}: {entry['text']}"
    text = f"{_describe(entry)}{line}"
    return f"{text} -> {entry['outcome']}" if "outcome" in entry else text


def _describe(action: dict[str, Any]) -> str:
    kind = action["kind"]
    if kind == "proxy":
        how = " sequential" if action.get("sequential") else ""
        return f"proxy {' '.join(action['targets']) or '(no target)'} timeout={action['timeout']:g}{how}"
    if kind == "redirect":
        return f"redirect {301 if action['permanent'] else 302} {' '.join(action['targets'])}"
    if kind == "reject":
        reason = f" {action['reason']}" if action.get("reason") else ""
        return f"reject {action['code']}{reason}"
    return str(kind)
