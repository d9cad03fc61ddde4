"""Reading a scenario file: a Python file that defines ``async def uac(call)`` or ``async def uas(call)``.

The file is ordinary Python run by the person testing (it is not a user
script: no sandbox). It is executed in a fresh namespace of its own, never
added to ``sys.modules``, so two scenarios loaded in one process share
nothing. Exactly one of ``uac`` and ``uas`` must be defined, as a coroutine
function taking the :class:`~callscript.scenario.call.ScenarioCall`.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from callscript.errors import ConfigError
from callscript.scenario.call import ScenarioCall

ROLES = ("uac", "uas")

ScenarioFunction = Callable[[ScenarioCall], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Scenario:
    """A scenario: its ``role`` (``uac`` starts calls, ``uas`` answers them) and its function."""

    name: str
    role: str
    run: ScenarioFunction
    doc: str = ""

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ConfigError(f"scenario role must be uac or uas, not {self.role!r}")

    @classmethod
    def uac(cls, run: ScenarioFunction) -> Scenario:
        """A UAC scenario from a coroutine function."""
        return cls(run.__name__, "uac", run, inspect.getdoc(run) or "")

    @classmethod
    def uas(cls, run: ScenarioFunction) -> Scenario:
        """A UAS scenario from a coroutine function."""
        return cls(run.__name__, "uas", run, inspect.getdoc(run) or "")


def load_scenario(path: str | Path) -> Scenario:
    """Run the file at ``path`` and return the scenario it defines.

    Raises:
        ConfigError: the file cannot be read or compiled, raises while loading,
            or does not define exactly one of ``uac`` / ``uas`` as ``async def``.
    """
    path = Path(path)
    try:
        source = path.read_text(encoding="utf-8")
        code = compile(source, str(path), "exec")
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror}") from None
    except SyntaxError as exc:
        raise ConfigError(f"{path}:{exc.lineno}:{exc.offset}: {exc.msg}") from None
    namespace: dict[str, Any] = {"__name__": f"scenario_{path.stem}", "__file__": str(path)}
    try:
        # A scenario is the tester's own code, as a sipp XML file is: it runs unsandboxed.
        exec(code, namespace)
    except Exception as exc:
        raise ConfigError(f"{path}: loading failed: {type(exc).__name__}: {exc}") from None
    found = [role for role in ROLES if role in namespace]
    if len(found) != 1:
        raise ConfigError(
            f"{path}: define exactly one of 'async def uac(call)' or 'async def uas(call)'"
        )
    role = found[0]
    run = namespace[role]
    if not inspect.iscoroutinefunction(run):
        raise ConfigError(f"{path}: {role} must be an 'async def' function taking the call")
    doc = inspect.getdoc(run) or str(namespace.get("__doc__") or "")
    return Scenario(path.stem, role, run, doc)
