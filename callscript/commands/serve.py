"""Run the SIP proxy (registrar, digest auth, location service, per-user routing).

With no options it runs on the embedded defaults: UDP and TCP on 127.0.0.1:5060,
SQLite in ./callscript.db, user scripts in ./user_scripts. Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from callscript.engine.app import serve
from callscript.engine.config import Listen, ServerConfig, load_config
from callscript.errors import ConfigError
from callscript.logs import setup_logging


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``callscript serve``."""
    parser.add_argument(
        "--config", "-c", metavar="FILE", help="TOML configuration (see callscript.example.toml)"
    )
    parser.add_argument(
        "--listen",
        "-l",
        action="append",
        metavar="TRANSPORT:HOST:PORT",
        help="listen address (repeatable)",
    )
    parser.add_argument(
        "--domain", "-d", action="append", metavar="DOMAIN", help="a domain served (repeatable)"
    )
    parser.add_argument("--db", metavar="PATH", help="SQLite database file")
    parser.add_argument(
        "--log-json", action="store_true", default=None, help="log one JSON object per line"
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="log debug details")


def run(args: argparse.Namespace) -> int:
    """Start the server; returns its exit code."""
    try:
        listen = tuple(Listen.parse(text) for text in args.listen) if args.listen else None
        config = load_config(
            args.config,
            listen=listen,
            domains=tuple(d.lower() for d in args.domain) if args.domain else None,
            database=args.db,
            log_json=args.log_json,
        )
    except ConfigError as exc:
        print(f"callscript serve: {exc}", file=sys.stderr)
        return 2
    setup_logging(config.log_json, args.verbose)
    if config.uvloop:
        try:
            import uvloop  # optional speed-up
        except ImportError:
            pass
        else:
            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return asyncio.run(_main(config))


async def _main(config: ServerConfig) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    return await serve(config, stop)
