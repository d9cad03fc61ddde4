"""Run a server script: the server's own routing, written in Python by its administrator.

The script (see callscript.api) opens its listeners, registers route(event) and
calls run(); it is trusted code, run in this process without a sandbox. Ctrl-C
(or SIGTERM) stops it with exit status 0. `python SCRIPT.py` works the same way.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from callscript.serverscript.current import run_script


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``callscript run``."""
    parser.add_argument("--verbose", "-v", action="store_true", help="log debug details")
    parser.add_argument("script", metavar="SCRIPT.py", help="the server script")
    parser.add_argument(
        "args", nargs=argparse.REMAINDER, help="arguments the script sees in sys.argv[1:]"
    )


def run(args: argparse.Namespace) -> int:
    """Execute the script and serve until stopped; returns the exit code."""
    path = Path(args.script)
    if not path.is_file():
        print(f"callscript run: no such script: {path}", file=sys.stderr)
        return 2
    return run_script(path, args.args, verbose=args.verbose)


def main(argv: list[str] | None = None) -> int:
    """``python -m callscript.commands.run SCRIPT.py``: the command without the ``callscript`` CLI."""
    parser = argparse.ArgumentParser(prog="callscript run", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
