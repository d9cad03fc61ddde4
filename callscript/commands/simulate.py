"""Run a user script in the real sandbox against a made-up request, and show what it does.

The script runs exactly as for a real call (same compiler, same worker process
and limits, same replay): the request goes from ``--from`` to ``--to``
(``--method``, default INVITE; ``--time``, ISO 8601, default now). For an
'incoming' script (the default) the owner is ``--to``; with ``--direction
outgoing``, ``--from``. Each proxy() the script makes gets the next
``--outcome`` (success, busy, noanswer, failure, redirection; for redirection,
``redirection=sip:a@b.com,...`` gives the 3xx Contacts); once they run out,
every further proxy() gets ``--default-outcome``, which is 'success' (the phone
answers) unless told otherwise.

Prints each action (log lines, proxy attempts with their outcome, the final
answer) and the call's disposition; ``--json`` prints one JSON object per line.

Exit codes: 0 the script ran; 1 it does not compile (FILE:LINE:COL: message);
2 usage, a file cannot be read or the policy is wrong; 3 the sandbox stopped
it (error, timeout, memory...): the fallback the call gets is printed.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

from callscript.errors import ConfigError
from callscript.sandbox.actions import RESULTS
from callscript.sandbox.policy import find_policy
from callscript.sandbox.simulate import Outcome, Simulation, run_simulation

EXIT_USAGE = 2


def _outcome(text: str) -> Outcome:
    try:
        return Outcome.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _time(text: str) -> datetime.datetime:
    try:
        return datetime.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None


def _header(text: str) -> tuple[str, str]:
    name, colon, value = text.partition(":")
    if not colon or not name.strip() or any(c in text for c in "\r\n"):
        raise argparse.ArgumentTypeError(f"expected 'Name: value', got {text!r}")
    return name.strip(), value.strip()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the request's fields, the outcomes and the output options."""
    parser.add_argument("file", metavar="FILE", help="the user script (.py)")
    parser.add_argument(
        "--from", dest="caller", metavar="URI", required=True, help="the caller (From)"
    )
    parser.add_argument(
        "--to", dest="callee", metavar="URI", required=True, help="the callee (To, request-URI)"
    )
    parser.add_argument("--method", default="INVITE", help="the request method (default INVITE)")
    parser.add_argument("--direction", choices=("incoming", "outgoing"), default="incoming")
    parser.add_argument("--time", type=_time, help="arrival time, ISO 8601 (default: now)")
    parser.add_argument(
        "--outcome", type=_outcome, action="append", default=[], metavar="RESULT",
        help=f"the next proxy() result: {', '.join(RESULTS)} (repeatable)",
    )  # fmt: skip
    parser.add_argument("--default-outcome", choices=RESULTS, default="success")
    parser.add_argument(
        "--contact",
        action="append",
        default=[],
        metavar="URI",
        help="a registered contact of the owner",
    )
    parser.add_argument(
        "--header", type=_header, action="append", default=[], metavar="'NAME: VALUE'"
    )
    parser.add_argument("--served-domain", action="append", default=[], metavar="DOMAIN")
    parser.add_argument("--policy", metavar="PATH", help="the sandbox policy (TOML)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")


def run(args: argparse.Namespace) -> int:
    """Simulate; returns the exit code."""
    try:
        policy, _ = find_policy(args.policy)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    try:
        source = Path(args.file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"{args.file}: cannot read: {getattr(exc, 'strerror', None) or exc}", file=sys.stderr)
        return EXIT_USAGE
    sim = Simulation(
        source=source,
        name=args.file,
        caller=args.caller,
        callee=args.callee,
        method=args.method.upper(),
        direction=args.direction,
        outcomes=tuple(args.outcome),
        default_outcome=args.default_outcome,
        contacts=tuple(args.contact),
        headers=tuple(args.header),
        **({"time": args.time} if args.time else {}),
    )
    if not sim.domain:
        print(f"not a SIP URI: {sim.owner!r}", file=sys.stderr)
        return EXIT_USAGE
    trace = run_simulation(sim, policy, served_domains=args.served_domain)
    for line in trace.json_lines() if args.json else trace.text_lines():
        print(line)
    return trace.exit_code
