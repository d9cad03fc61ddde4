"""Parse and check one SIP message, and print it as JSON.

Reads FILE (``-`` for standard input) as raw bytes, parses it as a datagram,
runs the full check a server runs before it answers (every header parsed and
validated), and prints the request or response with its headers and body.

Exit codes: 0 parsed and valid; 1 not a valid message (``FILE: line N: reason
(status)`` on standard error, with the SIP status a server would answer);
2 the file cannot be read.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from callscript.sip.describe import describe
from callscript.sip.errors import ParseError
from callscript.sip.message import parse_message

STDIN = "-"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``FILE`` argument."""
    parser.add_argument("file", metavar="FILE", help="the message, as raw bytes; '-' reads stdin")


def run(args: argparse.Namespace) -> int:
    """Parse ``args.file`` and print it; returns the exit code (0, 1 or 2)."""
    path: str = args.file
    name = "<stdin>" if path == STDIN else path
    try:
        data = sys.stdin.buffer.read() if path == STDIN else Path(path).read_bytes()
    except OSError as exc:
        print(f"{name}: cannot read: {exc.strerror or exc}", file=sys.stderr)
        return 2
    try:
        msg = parse_message(data)
        msg.validate()
        view = describe(msg)
    except ParseError as exc:
        print(f"{name}: {error_line(exc)}", file=sys.stderr)
        return 1
    print(json.dumps(view, indent=2, ensure_ascii=False))
    return 0


def error_line(exc: ParseError) -> str:
    """``line N: reason (status)``, or ``reason (status)`` when the line is not known."""
    where = f"line {exc.line}: " if exc.line else ""
    return f"{where}{exc.reason} ({exc.status})"
