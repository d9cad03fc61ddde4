"""A real sandbox worker with the compiler's static checks switched off.

The attack tests run every attack on this worker too, to prove that the run-time
guards stop it on their own (RestrictedPython's transformer still runs: it is
what installs the guards).
"""

from __future__ import annotations

from callscript.sandbox import compiler


def _no_checks(self: object, tree: object) -> list[compiler.Problem]:
    return []


compiler._Checker.run = _no_checks  # type: ignore[method-assign]

from callscript.sandbox.worker import main  # noqa: E402

main()
