"""Run one handler step: the script's module, then its handler, replaying recorded outcomes.

A step is a pure function of (script version, event data, outcomes so far): the
module body runs in fresh globals, registers its handlers, and the handler for
the event's direction runs with a fresh ``event``. Each ``proxy()`` consumes the
next recorded outcome; at the first one not yet known the step stops (Suspend,
which scripts cannot catch) and returns ``pending`` with the proxy request. The
SIP process keeps only the outcomes; when the next is known it sends the whole
history again and the handler re-runs from the start. Nothing in a step can see
the clock or randomness, so every replay takes the same path.

The result is a plain dict (JSON as it crosses to the SIP process):

    {"status": "pending",  "actions": [...], "proxy": {proxy action}}
    {"status": "finished", "actions": [...], "disposition": {...}}
    {"status": "failed",   "actions": [...], "failure": {"kind", "line", "message"}}

``disposition`` is the final action (reject, redirect, accept, voicemail, default),
``{"kind": "proxied"}`` when a proxy() returned 'success', ``{"kind": "proxy", targets,
timeout, sequential}`` when the handler returned after assigning ``event.location``
(since its last proxy()), ``{"kind": "relay"}`` when it returned after proxy attempts
that all failed (the caller gets the best response of the last one), and
``{"kind": "default"}`` otherwise. Failure kinds: ``error`` (an exception or a
sandbox violation), ``timeout`` (CPU budget), ``memory``.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from callscript.sandbox.api import PUBLIC_API, Basic, Event, EventWriter, Log
from callscript.sandbox.call import ApiError, Call
from callscript.sandbox.guards import CpuExceeded, Guards, SandboxStop, StepState, Suspend, scrub
from callscript.sandbox.policy import DomainPolicy
from callscript.sandbox.targets import clean_log_text
from callscript.sandbox.values import PUBLIC_VALUES, URI

MAX_MESSAGE = 300
PUBLIC = types.MappingProxyType({**PUBLIC_API, **PUBLIC_VALUES})
WRITABLE: Mapping[type, Callable[[Any], object]] = types.MappingProxyType({Event: EventWriter})


def run_step(
    code: types.CodeType,
    event: dict[str, Any],
    outcomes: Sequence[dict[str, Any]],
    rules: DomainPolicy,
    *,
    state: StepState,
    served_domains: Sequence[str] = (),
    modules: Mapping[str, types.ModuleType] = types.MappingProxyType({}),
    hidden_paths: Sequence[str] = (),
) -> dict[str, Any]:
    """Run the script's module and its handler once; see the module docstring.

    Args:
        code: the script compiled by compiler.compile_script (its filename is ``state.script_name``).
        event: the event data (protocol.py documents the shape).
        outcomes: ``{"result": ..., "targets": [...]}`` per proxy() answered so far.
        rules: the script's domain policy.
        state: the step's state; the worker's CPU timer halts it.
        served_domains: the domains this proxy serves (allowed targets by default).
        modules: the modules the policy lets the script import, already imported.
        hidden_paths: host paths removed from any message.
    """
    call = Call(event, outcomes, rules, state, served_domains)
    names: dict[str, object] = {"basic": Basic(call), "URI": URI, "log": Log(call)}
    api = {name: names[name] for name in rules.api.names}
    guards = Guards(state, PUBLIC, WRITABLE, modules)
    namespace = guards.globals(rules.script.builtins, api)
    failure: dict[str, Any] | None = None
    try:
        state.running = True
        exec(code, namespace)
        listener = call.listeners.get(call.direction)
        if listener is not None and state.stopped is None:
            listener[0](Event(call))
    except SandboxStop:
        pass
    except BaseException as exc:
        failure = _failure(exc, state.script_name, hidden_paths)
    finally:
        state.running = False
    stop = state.stopped
    if stop is not None:
        if isinstance(stop, Suspend) and call.pending is not None:
            return {"status": "pending", "actions": call.actions, "proxy": call.pending}
        kind = "timeout" if isinstance(stop, CpuExceeded) else "error"
        failure = {"kind": kind, "line": stop.line, "message": scrub(stop.message, hidden_paths)}
    if failure is not None:
        return {"status": "failed", "actions": call.actions, "failure": failure}
    return {"status": "finished", "actions": call.actions, "disposition": call.disposition()}


def _failure(exc: BaseException, script_name: str, hidden: Sequence[str]) -> dict[str, Any]:
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == script_name:
            line = tb.tb_lineno
        tb = tb.tb_next
    if isinstance(exc, MemoryError):
        return {"kind": "memory", "line": line, "message": "the script ran out of memory"}
    try:
        text = str(exc)
    except Exception:
        text = ""
    if type(exc) is not ApiError:
        name = type(exc).__name__
        text = f"{name}: {text}" if text else name
    return {
        "kind": "error",
        "line": line,
        "message": clean_log_text(scrub(text, hidden), MAX_MESSAGE),
    }
