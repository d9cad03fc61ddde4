"""SIP over TCP and TLS: listeners, outgoing connections, framing and their lifetimes.

Theory of operation. A :class:`StreamTransport` owns the listeners and the
connections of one stream transport (``TCP`` or ``TLS``). Each connection
(:class:`~callscript.transport.connection.StreamConnection`) has an integer
id, carried in ``Peer.connection`` of every message it delivers, its own
framer and its own idle and read timeouts (see ``connection.py``).

Sending to a Peer (RFC 3261 §18.1.1, §18.2.2): the connection it names when
still open; else any open connection to its address, inbound or outbound;
else a new connection, opened in the background with the data queued until
it is up. A failure to connect calls ``on_error(peer, exc)`` once per
attempt. All times come from ``loop.time()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field

from callscript.errors import ConfigError, TransportError
from callscript.sip.events import Peer
from callscript.transport.connection import StreamConnection
from callscript.transport.endpoint import (
    ErrorCallback,
    Listener,
    MessageCallback,
    TransportConfig,
    TransportStats,
    family_of,
    ip_key,
)

# How long close() waits for connections to finish closing before aborting them.
_CLOSE_GRACE = 1.0


@dataclass(slots=True)
class _Connecting:
    """An outgoing connection being opened, with the data waiting for it."""

    peer: Peer
    queue: list[bytes] = field(default_factory=list)
    task: asyncio.Task[None] | None = None


class StreamTransport:
    """The listeners and connections of one stream transport, ``TCP`` or ``TLS``.

    Args:
        name: ``"TCP"`` or ``"TLS"``.
        config: limits and timeouts.
        stats: counters shared with the other transports.
        deliver: called with each framed message (unparsed).
        on_error: called when a send fails.
        next_id: hands out connection ids, unique across transports.
        server_ssl / client_ssl: builders of the TLS contexts (TLS only);
            called on first use.
    """

    def __init__(
        self,
        name: str,
        *,
        config: TransportConfig,
        stats: TransportStats,
        deliver: MessageCallback,
        on_error: ErrorCallback,
        next_id: Callable[[], int],
        server_ssl: Callable[[], ssl.SSLContext] | None = None,
        client_ssl: Callable[[], ssl.SSLContext] | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.stats = stats
        self.next_id = next_id
        self.log = logging.getLogger(__name__)
        self._deliver = deliver
        self._on_error = on_error
        self._server_ssl = server_ssl
        self._client_ssl = client_ssl
        self._client_context_cache: ssl.SSLContext | None = None
        self.listeners: list[Listener] = []
        self._servers: list[asyncio.Server] = []
        self.connections: dict[int, StreamConnection] = {}
        self._by_address: dict[tuple[str, int], list[StreamConnection]] = {}
        self._connecting: dict[tuple[str, int], _Connecting] = {}

    # -- listening --------------------------------------------------------------------------

    async def listen(self, host: str, port: int, advertise: str | None = None) -> Listener:
        """Listen on ``(host, port)`` (port 0: any free port); return the bound Listener.

        Raises:
            ConfigError: ``host`` is not an IP address, or TLS has no certificate.
            OSError: the address cannot be bound.
        """
        family = family_of(host)
        context: ssl.SSLContext | None = None
        if self.name == "TLS":
            if self._server_ssl is None:
                raise ConfigError("TLS is not configured")
            context = self._server_ssl()
        loop = asyncio.get_running_loop()
        bound: list[Listener] = []  # filled in before the server accepts anything
        server = await loop.create_server(
            lambda: StreamConnection(self, bound[0], inbound=True),
            host.strip("[]"),
            port,
            family=family,
            reuse_address=True,
            start_serving=False,
            ssl=context,
            ssl_handshake_timeout=self.config.connect_timeout if context else None,
        )
        bound_host, bound_port = server.sockets[0].getsockname()[:2]
        listener = Listener(self.name, bound_host, bound_port, advertise)
        bound.append(listener)
        await server.start_serving()
        self._servers.append(server)
        self.listeners.append(listener)
        return listener

    def _listener_for(self, host: str) -> Listener | None:
        family = family_of(host)
        return next((ln for ln in self.listeners if ln.family == family), None)

    # -- connection registry -------------------------------------------------------------------

    def connection_made(self, connection: StreamConnection) -> None:
        """Register a connection that is up (inbound at once; outbound once its queue is sent)."""
        self.connections[connection.id] = connection
        self.stats.connections_opened += 1
        if connection.inbound:
            self._by_address.setdefault(self._key(connection), []).append(connection)

    def connection_lost(self, connection: StreamConnection) -> None:
        """Forget a closed connection."""
        if self.connections.pop(connection.id, None) is None:
            return
        self.stats.connections_closed += 1
        key = self._key(connection)
        same = self._by_address.get(key, [])
        if connection in same:
            same.remove(connection)
        if not same:
            self._by_address.pop(key, None)

    @staticmethod
    def _key(connection: StreamConnection) -> tuple[str, int]:
        assert connection.peer is not None
        return ip_key(connection.peer.host), connection.peer.port

    def deliver(self, data: bytes, connection: StreamConnection) -> None:
        """Hand a framed message up."""
        assert connection.peer is not None
        self._deliver(data, connection.peer, connection.listener)

    # -- sending ----------------------------------------------------------------------------

    def send(self, data: bytes, peer: Peer, server_name: str | None = None) -> None:
        """Send ``data`` to ``peer`` (see the module docstring); never blocks or raises.

        Args:
            data: one serialized message.
            peer: the destination; ``peer.connection`` pins a connection.
            server_name: for TLS, the name the server's certificate must carry
                when a new connection is opened (default: the IP address).
        """
        connection = self.find(peer)
        if connection is None:
            try:
                key = (ip_key(peer.host), peer.port)
            except ConfigError as exc:
                self._on_error(peer, TransportError(str(exc)))
                return
            self._queue(key, data, peer, server_name)
            return
        try:
            connection.send(data)
        except TransportError as exc:
            self._on_error(peer, exc)

    def find(self, peer: Peer) -> StreamConnection | None:
        """The open connection a send to ``peer`` uses: the pinned one, else one to its address."""
        if peer.connection is not None:
            pinned = self.connections.get(peer.connection)
            if pinned is not None and pinned.is_open:
                # RFC 3261 §18.2.2: a response goes back over the connection the request came on.
                return pinned
        try:
            key = (ip_key(peer.host), peer.port)
        except ConfigError:
            return None
        # RFC 3261 §18.1.1: reuse an open connection to the address, inbound or outbound.
        for connection in reversed(self._by_address.get(key, ())):
            if connection.is_open:
                return connection
        return None

    def _queue(
        self, key: tuple[str, int], data: bytes, peer: Peer, server_name: str | None
    ) -> None:
        pending = self._connecting.get(key)
        if pending is None:
            pending = self._connecting[key] = _Connecting(Peer(self.name, *key))
            loop = asyncio.get_running_loop()
            pending.task = loop.create_task(self._connect(key, pending, server_name))
        if sum(map(len, pending.queue)) + len(data) > self.config.max_write_buffer:
            self._on_error(peer, TransportError(f"too much data waiting for {self.name} {key}"))
            return
        pending.queue.append(data)

    def _client_context(self) -> ssl.SSLContext:
        if self._client_context_cache is None:
            if self._client_ssl is None:
                raise ConfigError("TLS is not configured")
            self._client_context_cache = self._client_ssl()
        return self._client_context_cache

    async def _connect(
        self, key: tuple[str, int], pending: _Connecting, server_name: str | None
    ) -> None:
        host, port = key
        loop = asyncio.get_running_loop()
        try:
            context = self._client_context() if self.name == "TLS" else None
            async with asyncio.timeout(self.config.connect_timeout):
                _, connection = await loop.create_connection(
                    lambda: StreamConnection(self, self._listener_for(host), inbound=False),
                    host,
                    port,
                    ssl=context,
                    server_hostname=(server_name or host) if context else None,
                )
        except Exception as exc:  # every way of failing to connect is a transport error
            self._connecting.pop(key, None)
            error = TransportError(f"cannot connect to {self.name} {host}:{port}: {exc!r}")
            error.__cause__ = exc
            self._on_error(pending.peer, error)
            return
        self._connecting.pop(key, None)
        # Queued data goes first; only then can other sends find the connection by address.
        for data in pending.queue:
            try:
                connection.send(data)
            except TransportError as exc:
                self._on_error(pending.peer, exc)
                return
        if connection.is_open:
            self._by_address.setdefault(key, []).append(connection)

    # -- closing --------------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop listening, cancel connection attempts and close every connection."""
        for server in self._servers:
            server.close()
        tasks = [p.task for p in self._connecting.values() if p.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._connecting.clear()
        connections = list(self.connections.values())
        for connection in connections:
            connection.close()
        waiting = [c.closed for c in connections if not c.closed.done()]
        if waiting:
            await asyncio.wait(waiting, timeout=_CLOSE_GRACE)
        for connection in connections:
            if not connection.closed.done():
                connection.abort()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_CLOSE_GRACE):
                await asyncio.gather(*(c.closed for c in connections))
        # Newer Pythons also wait here for connections still in their TLS handshake.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_CLOSE_GRACE):
                for server in self._servers:
                    await server.wait_closed()
        self._servers.clear()
        self.listeners.clear()
