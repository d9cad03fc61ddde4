"""Run a client scenario (a UAC or UAS written in Python), once or under load.

FILE defines ``async def uac(call)`` (it places calls to --target) or
``async def uas(call)`` (it answers the calls arriving on --listen); see
``callscript.scenario`` for the steps a scenario can take. The run starts
--calls calls (default 1) at --rate calls per second, at most --concurrency at
once, for at most --duration seconds; a UAS answers until --calls calls have
arrived or --duration has passed.

A live progress line goes to stderr on a terminal (--quiet turns it off); the
final statistics (calls, successful, failed, response-time percentiles) are
printed, and written as CSV with --csv. The listening addresses are printed
first, one "listening on TRANSPORT HOST:PORT" line each, then "registered AOR
for N s" once --register succeeded.

Exit codes: 0 every call passed; 1 a call failed (or none arrived); 2 usage,
or the scenario file cannot be loaded.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from callscript.agent import UserAgent
from callscript.errors import CallscriptError, ConfigError
from callscript.scenario import Endpoint, LoadSettings, Progress, Runner, Scenario, load_scenario
from callscript.sip.errors import ParseError
from callscript.sip.timers import TimerConfig
from callscript.sip.uri import URI
from callscript.sip.useragent import Credentials, UserAgentCore
from callscript.stack import Stack

EXIT_FAILED = 1
EXIT_USAGE = 2


def _uri(text: str) -> URI:
    try:
        return URI.parse(text)
    except ParseError as exc:
        raise argparse.ArgumentTypeError(f"not a URI: {text!r} ({exc})") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The scenario file, the peers, the identity and the load."""
    parser.add_argument("file", metavar="FILE", help="the scenario (.py)")
    parser.add_argument("--target", type=_uri, help="the URI a UAC calls (sip:service@host:port)")
    parser.add_argument(
        "--listen",
        action="append",
        metavar="TRANSPORT:HOST:PORT",
        help="where to listen (repeatable; default udp:127.0.0.1:0, port 0 picks one)",
    )
    parser.add_argument("--advertise", help="the host our Via and Contact name")
    parser.add_argument(
        "--aor", type=_uri, help="our address-of-record (From; default sip:callscript@HOST)"
    )
    parser.add_argument("--username", help="digest username (default: the user of --aor)")
    parser.add_argument("--password", help="digest password: challenges are answered with it")
    parser.add_argument("--proxy", type=_uri, help="outbound proxy for requests outside a dialog")
    parser.add_argument(
        "--register",
        type=int,
        metavar="EXPIRES",
        help="register --aor at our address for EXPIRES seconds first (through --proxy); "
        "unregister at the end",
    )
    parser.add_argument("--calls", type=int, default=None, help="total calls (default 1)")
    parser.add_argument("--rate", type=float, help="calls started per second")
    parser.add_argument("--concurrency", type=int, help="most calls running at once")
    parser.add_argument("--duration", type=float, help="seconds after which no call starts")
    parser.add_argument(
        "--timeout", type=float, default=32.0, help="default seconds an expect step waits (32)"
    )
    parser.add_argument("--t1", type=float, default=0.5, help="RFC 3261 T1 in seconds (0.5)")
    parser.add_argument("--csv", metavar="OUT", help="write the final statistics to this CSV file")
    parser.add_argument("--quiet", action="store_true", help="no live progress line")


def run(args: argparse.Namespace) -> int:
    """Load the scenario and run it."""
    try:
        scenario = load_scenario(args.file)
        calls = args.calls if args.calls is not None or args.duration is not None else 1
        settings = LoadSettings(
            calls=calls, rate=args.rate, concurrency=args.concurrency, duration=args.duration
        )
        timers = TimerConfig(t1=args.t1, t2=max(args.t1, TimerConfig().t2))
    except (ConfigError, ValueError) as exc:
        print(f"callscript scenario: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return asyncio.run(_run(args, scenario, settings, timers))
    except (CallscriptError, OSError) as exc:
        print(f"callscript scenario: {exc}", file=sys.stderr)
        return EXIT_USAGE


async def _run(
    args: argparse.Namespace, scenario: Scenario, settings: LoadSettings, timers: TimerConfig
) -> int:
    listen = args.listen or ["udp:127.0.0.1:0"]
    async with await Stack.start(listen, timers=timers, advertise=args.advertise) as stack:
        for listener in stack.listeners:
            host, port = listener.sent_by
            print(f"listening on {listener.transport} {host}:{port}", flush=True)
        aor = args.aor or URI("sip", user="callscript", host=stack.listeners[0].sent_by[0])
        credentials = None
        if args.password is not None:
            credentials = Credentials(args.username or aor.user or "", args.password)
        core = UserAgentCore(aor, ids=stack.ids, credentials=credentials)
        endpoint = Endpoint(stack, core, proxy=args.proxy, timeout=args.timeout)
        registration = None
        if args.register is not None:
            registration = UserAgent(
                stack, aor, password=args.password, username=args.username, proxy=args.proxy
            )
            await registration.register(expires=args.register)
            print(f"registered {aor} for {args.register} s", flush=True)
        progress = None if args.quiet else Progress(sys.stderr)
        runner = Runner(endpoint, scenario, settings, target=args.target, progress=progress)
        try:
            stats = await runner.run()
        finally:
            endpoint.close()
            if registration is not None:
                await registration.unregister()
                registration.close()
    print(stats.summary(), flush=True)
    if args.csv:
        stats.write_csv(args.csv)
    return 0 if stats.calls and not stats.failed else EXIT_FAILED


def main(argv: list[str] | None = None) -> int:
    """Run the command on its own (``python -m callscript.commands.scenario``)."""
    parser = argparse.ArgumentParser(prog="callscript scenario", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
