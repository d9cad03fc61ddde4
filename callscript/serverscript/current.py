"""Which :class:`Program` ``callscript.api``'s functions act on: the deliberate exception.

A server script calls ``open()``, ``configure()``, ``basic.addEventListener()``
and ``run()`` without passing any object around, so those functions must find
the program of the run they belong to. That one reference is kept in a
:class:`contextvars.ContextVar`, not in a module-level mutable object:

- ``callscript run SCRIPT.py`` executes the script in a fresh context holding a
  new Program (:func:`run_script`), so each run has its own and nothing leaks
  between runs, even in one process (tests run several);
- ``python SCRIPT.py`` has no program yet: the first ``callscript.api`` call makes
  one and sets it in the main thread's context, where it stays for the process.
"""

from __future__ import annotations

import contextvars
import runpy
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from callscript.errors import ConfigError
from callscript.serverscript.program import Program

_PROGRAM: contextvars.ContextVar[Program] = contextvars.ContextVar("callscript_program")


def current_program() -> Program:
    """The program of this context, made (and kept in the context) on first use."""
    try:
        return _PROGRAM.get()
    except LookupError:
        program = Program(sys.argv[0] if sys.argv and sys.argv[0] else "<script>")
        _PROGRAM.set(program)
        return program


def run_script(path: Path, argv: Sequence[str] = (), *, verbose: bool = False) -> int:
    """Execute the server script at ``path`` with a program of its own; returns the exit code.

    The script runs as ``__main__`` with ``sys.argv`` = ``[path, *argv]`` and its
    directory first on ``sys.path`` (as ``python SCRIPT.py`` would). A script that
    registers its handler but never calls ``run()`` is run afterwards.
    """
    program = Program(str(path), verbose=verbose)
    return contextvars.Context().run(_execute, program, path, list(argv))


def _execute(program: Program, path: Path, argv: list[str]) -> int:
    _PROGRAM.set(program)
    saved_argv, saved_path = sys.argv, list(sys.path)
    sys.argv = [str(path), *argv]
    sys.path.insert(0, str(path.resolve().parent))
    try:
        runpy.run_path(str(path), run_name="__main__")
        if not program.started:
            program.run()
    except SystemExit as exc:
        return _exit_code(exc.code)
    except ConfigError as exc:
        print(f"callscript run: {path}: {exc}", file=sys.stderr)
        return 2
    except Exception:  # the admin's script failed before serving: show where, exit 1
        traceback.print_exc()
        return 1
    finally:
        sys.argv = saved_argv
        sys.path[:] = saved_path
    return 0


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1
