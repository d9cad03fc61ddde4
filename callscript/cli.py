"""The ``callscript`` command: argument parsing only; each subcommand lives in callscript.commands."""

from __future__ import annotations

import argparse
import importlib
import sys

# Subcommand name -> module in callscript.commands with add_arguments(parser) and run(args) -> int.
COMMANDS = {
    "serve": "serve",
    "parse": "parse",
    "users": "users",
    "check": "check",
    "simulate": "simulate",
    "policy": "policy",
    "audit": "audit",
    "run": "run",
    "rfc-report": "rfc_report",
    "scenario": "scenario",
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="callscript", description="A SIP proxy whose users program their calls."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f"callscript.commands.{module_name}")
        doc = (module.__doc__ or "").strip().splitlines()[0] if module.__doc__ else None
        command = sub.add_parser(name, help=doc, description=module.__doc__)
        module.add_arguments(command)
        command.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    code: int = args._run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
