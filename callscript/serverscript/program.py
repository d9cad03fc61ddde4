"""One run of a server script: its listeners, settings and handler, and the server it runs.

A script describes the server (``open``, ``configure``,
``basic.addEventListener('incoming', route)``) and then calls ``run()``, which
builds the same server as ``callscript serve`` (engine.app.Server) with the
script's handler in place of the default routing, and serves until SIGINT or
SIGTERM. Everything about the run lives in one :class:`Program` object; see
current.py for how ``callscript.api`` finds it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from callscript.engine.app import Server
from callscript.engine.config import TRANSPORTS, Listen, ServerConfig
from callscript.errors import ConfigError, TransportError
from callscript.logs import setup_logging
from callscript.serverscript.router import Handler, ScriptRouter
from callscript.web.config import WebConfig

log = logging.getLogger("callscript.serverscript")

# A server script routes everything itself: no per-user scripts and no automatic
# Record-Route unless it asks (configure(scripts_enabled=True), event.action.record_route()).
# A server script is its own routing: no per-user scripts and no management API unless it
# asks for them (configure(scripts_enabled=True), configure(web=WebConfig(...))).
SCRIPT_DEFAULTS = ServerConfig(
    scripts_enabled=False, record_route=False, web=WebConfig(enabled=False)
)
_SERVER_FIELDS = frozenset(f.name for f in dataclasses.fields(ServerConfig)) - {"listen"}
EVENTS = ("incoming",)


class Basic:
    """``basic``: registers the handler (``addEventListener`` or ``@basic.on('incoming')``)."""

    __slots__ = ("_program",)

    def __init__(self, program: Program) -> None:
        self._program = program

    def addEventListener(self, kind: str, handler: Handler) -> None:
        """Call ``handler(event)`` for every request the proxy core hands over."""
        self._program.add_listener(kind, handler)

    def on(self, kind: str) -> Callable[[Handler], Handler]:
        """``@basic.on('incoming')``: the decorator form of addEventListener."""

        def register(handler: Handler) -> Handler:
            self._program.add_listener(kind, handler)
            return handler

        return register

    def __repr__(self) -> str:
        return "<basic>"


class Program:
    """A server script's description of the server, and the server while it runs.

    Args:
        name: the script, for logs.
        verbose: log debug details.
    """

    def __init__(self, name: str = "<script>", *, verbose: bool = False) -> None:
        self.name = name
        self.verbose = verbose
        self.listens: list[Listen] = []
        self.settings: dict[str, Any] = {}
        self.threads = 32
        self.handler: Handler | None = None
        self.started = False
        self.basic = Basic(self)
        self.addresses: list[tuple[str, str, int]] = []

    # -- what the script declares -------------------------------------------------------

    def open(self, address: tuple[str, int], transports: Iterable[str] = ("udp", "tcp")) -> None:
        """Listen at ``(host, port)`` on each of ``transports`` (``''`` is every IPv4 address).

        Raises:
            ConfigError: a bad address or transport.
        """
        try:
            host, port = address
        except (TypeError, ValueError):
            raise ConfigError(f"open() takes a (host, port) pair, not {address!r}") from None
        if not isinstance(host, str) or type(port) is not int or not 0 <= port < 65536:
            raise ConfigError(f"open() takes a (host, port) pair, not {address!r}")
        for transport in transports:
            name = str(transport).lower()
            if name not in TRANSPORTS:
                raise ConfigError(f"open(): unknown transport {transport!r} (udp, tcp, tls)")
            self.listens.append(Listen(name, host.strip("[]") or "0.0.0.0", port))

    def configure(self, **settings: Any) -> None:
        """Server settings by ServerConfig field name (``domains=[...]``, ``database=...``),
        plus ``threads`` (worker threads for blocking handlers).

        Raises:
            ConfigError: an unknown setting.
        """
        for name, value in settings.items():
            if name == "threads":
                if type(value) is not int or value < 1:
                    raise ConfigError("configure(threads=...) takes a positive integer")
                self.threads = value
            elif name in _SERVER_FIELDS:
                self.settings[name] = _setting(name, value)
            else:
                raise ConfigError(f"configure(): unknown setting {name!r}")

    def add_listener(self, kind: str, handler: Handler) -> None:
        """Register the handler of ``kind`` (only ``'incoming'``: every request)."""
        if kind not in EVENTS:
            raise ConfigError(f"the event must be one of {', '.join(EVENTS)}, not {kind!r}")
        if not callable(handler):
            raise ConfigError("the handler must be a function taking the event")
        if self.handler is not None:
            raise ConfigError(f"a handler for {kind!r} is already registered")
        self.handler = handler

    def config(self) -> ServerConfig:
        """The server configuration the script described.

        Raises:
            ConfigError: no listener, or a bad setting.
        """
        if not self.listens:
            raise ConfigError("the script opens no listener: call open((host, port)) first")
        try:
            return dataclasses.replace(SCRIPT_DEFAULTS, listen=tuple(self.listens), **self.settings)
        except TypeError as exc:
            raise ConfigError(f"bad setting: {exc}") from None

    # -- running ------------------------------------------------------------------------

    async def serve(self, stop: asyncio.Event) -> int:
        """Run the server until ``stop`` is set; returns the exit code (1: could not start)."""
        handler = self.handler
        if handler is None:
            raise ConfigError("no handler: call basic.addEventListener('incoming', route) first")
        server = Server(self.config())
        try:
            await server.start()
        except (OSError, TransportError, ConfigError) as exc:
            log.error("cannot start: %s", exc)
            await server.stop()
            return 1
        assert server.router is not None and server.driver is not None
        executor = ThreadPoolExecutor(self.threads, thread_name_prefix="route")
        router = ScriptRouter(server.router, handler, executor)
        # The engine built its default router; the script's takes its place before any input.
        server.router = router
        server.driver.dispatch = router.dispatch
        self.addresses = list(server.addresses)
        mode = "a blocking handler in worker threads" if router.blocking else "an async handler"
        log.info("server script %s routes every request with %s", self.name, mode)
        try:
            await stop.wait()
        finally:
            log.info("stopping")
            await router.close()
            await server.stop()
        return 0

    def run(self) -> None:
        """Serve until SIGINT or SIGTERM; the process then ends normally (exit status 0).

        Raises:
            SystemExit: 2 for a configuration error, 1 when the server cannot start.
            RuntimeError: ``run()`` was already called.
        """
        if self.started:
            raise RuntimeError("run() was already called")
        self.started = True
        try:
            config = self.config()
            if self.handler is None:
                raise ConfigError("no handler: call basic.addEventListener('incoming', route)")
        except ConfigError as exc:
            print(f"callscript: {self.name}: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        setup_logging(config.log_json, self.verbose)
        if config.uvloop:
            try:
                import uvloop  # optional speed-up, as for callscript serve
            except ImportError:
                pass
            else:
                asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        code = asyncio.run(self._main())
        if code:
            raise SystemExit(code)

    async def _main(self) -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        return await self.serve(stop)


def _setting(name: str, value: Any) -> Any:
    """Lists become the tuples ServerConfig holds; domains are lower-case."""
    if isinstance(value, list | set | frozenset):
        value = tuple(value)
    if name == "domains" and isinstance(value, tuple):
        value = tuple(str(domain).lower() for domain in value)
    if name == "auth_algorithms" and isinstance(value, tuple):
        value = tuple(str(algorithm).upper() for algorithm in value)
    return value
