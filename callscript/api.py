"""What a server script gets from ``from callscript.api import *``.

A server script is the server's own routing, written by its administrator in
plain Python. It is trusted code: it runs in the server process with every
right the process has, and is not sandboxed (per-user scripts are; see
callscript.sandbox). A minimal one::

    from callscript.api import *

    configure(domains=["example.com"], database="callscript.db")
    open(("", 5060))                       # UDP and TCP on every IPv4 address

    def route(event):
        if event.method == "REGISTER":
            if not event.action.verify():
                event.action.challenge()
            else:
                event.action.save()
        elif event.action.lookup():
            event.action.forward()
        else:
            event.action.reply(404)

    basic.addEventListener("incoming", route)
    run()

Run it with ``callscript run SCRIPT.py`` or ``python SCRIPT.py``. The handler
may be ``async def`` (then ``await`` every ``event.action`` call) or a plain
``def`` (run in a worker thread; each waiting call holds that thread). See
callscript.serverscript for the event and its actions.

Note that ``open`` here listens for SIP; the built-in ``open`` stays reachable
as ``io.open`` (or ``builtins.open``).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable
from typing import Any, NoReturn

from callscript.errors import ConfigError
from callscript.serverscript.call import CallEnded
from callscript.serverscript.current import current_program
from callscript.serverscript.forwarding import to_uri
from callscript.serverscript.router import Handler
from callscript.sip.uri import URI as SipURI

__all__ = ["URI", "CallEnded", "basic", "configure", "log", "open", "run"]

_log = logging.getLogger("callscript.script")


def _exit(exc: ConfigError) -> NoReturn:
    """A script describing a server that cannot be built stops here: the reason, status 2."""
    print(f"callscript: {current_program().name}: {exc}", file=sys.stderr)
    raise SystemExit(2) from None


def open(address: tuple[str, int], transports: Iterable[str] = ("udp", "tcp")) -> None:
    """Listen at ``(host, port)``, on UDP and TCP unless ``transports`` says (``'tls'`` too).

    Call it once per address; ``''`` as host is every IPv4 address, ``'::'`` every IPv6 one.
    A bad address ends the script with status 2 (as every configuration error does).
    """
    try:
        current_program().open(address, transports)
    except ConfigError as exc:
        _exit(exc)


def configure(**settings: Any) -> None:
    """Server settings, named as ServerConfig's fields (the TOML configuration's):
    ``domains``, ``database``, ``realm``, ``auth_algorithms``, ``trusted_networks``,
    ``ring_timeout``, ``max_message_size``, ``scripts_enabled``, ``scripts_dir``...
    plus ``threads`` (worker threads for a blocking handler, default 32)."""
    try:
        current_program().configure(**settings)
    except ConfigError as exc:
        _exit(exc)


def run() -> None:
    """Serve until SIGINT or SIGTERM (then return); exits 2 on a configuration error."""
    current_program().run()


class _Basic:
    """``basic``: registers the handler of every request (``'incoming'``)."""

    __slots__ = ()

    def addEventListener(self, kind: str, handler: Handler) -> None:
        """Call ``handler(event)`` for every request the server must route."""
        try:
            current_program().add_listener(kind, handler)
        except ConfigError as exc:
            _exit(exc)

    def on(self, kind: str) -> Callable[[Handler], Handler]:
        """``@basic.on('incoming')``: the decorator form."""

        def register(handler: Handler) -> Handler:
            self.addEventListener(kind, handler)
            return handler

        return register

    def __repr__(self) -> str:
        return "<basic>"


basic = _Basic()


def log(*values: object) -> None:
    """One line in the server's log (logger ``callscript.script``)."""
    _log.info(" ".join(str(value) for value in values))


def URI(text: str | SipURI) -> SipURI:
    """Parse a URI: ``URI('sip:alice@example.com')`` (``.user``, ``.host``, ``.aor``...).

    Raises:
        ValueError: not a valid URI.
    """
    return to_uri(text)
