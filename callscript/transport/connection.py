"""One TCP or TLS connection: framing, keep-alive pongs, idle and read timeouts.

Per connection (the :class:`~callscript.transport.stream.StreamTransport`
that owns it keeps the registry and opens outgoing ones):

- framed messages go up unparsed as ``(data, source, listener)``, the
  source Peer carrying the connection id; a double CRLF ping is answered
  with a single CRLF pong (RFC 5626 §3.5.1);
- a framing error (missing or bad Content-Length, oversize) is answered
  with 400/513 when the request can be read, then the connection closes:
  the stream cannot be re-synchronised (RFC 3261 §18.3);
- idle timeout: closed after ``idle_timeout`` s without traffic either way;
- read timeout: closed when it holds part of a message for ``read_timeout``
  s, counted from the message's first byte or from the last message
  completed, whichever is later (trickling bytes does not extend it, so a
  peer cannot hold the connection with a message it never finishes).

Both timers are one ``loop.call_at`` handle each, pushed back when they
fire early rather than re-armed on every read. All times are ``loop.time()``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol, cast

from callscript.errors import TransportError
from callscript.sip.errors import LocalProtocolError, ParseError
from callscript.sip.events import Peer
from callscript.sip.framing import PING, PONG, StreamFramer
from callscript.sip.receive import error_response, split_at_failure
from callscript.transport.endpoint import Listener, TransportConfig, TransportStats


class ConnectionOwner(Protocol):
    """What a connection needs from the transport that owns it."""

    name: str
    config: TransportConfig
    stats: TransportStats
    log: logging.Logger

    def next_id(self) -> int:
        """A fresh connection id."""
        ...

    def connection_made(self, connection: StreamConnection) -> None:
        """The connection is up."""
        ...

    def connection_lost(self, connection: StreamConnection) -> None:
        """The connection is closed."""
        ...

    def deliver(self, data: bytes, connection: StreamConnection) -> None:
        """Hand a framed message up."""
        ...


class StreamConnection(asyncio.Protocol):
    """One TCP or TLS connection (see the module docstring).

    ``closed`` is a future done once the connection is closed.
    """

    def __init__(self, owner: ConnectionOwner, listener: Listener | None, *, inbound: bool) -> None:
        self.id = owner.next_id()
        self.inbound = inbound
        self.listener = listener
        self.peer: Peer | None = None
        self._owner = owner
        self._config = owner.config
        self._loop = asyncio.get_running_loop()
        self._framer = StreamFramer(max_size=owner.config.stream_max_size)
        self._unframed = bytearray()  # bytes the framer holds, to answer a framing error
        self._transport: asyncio.Transport | None = None
        self.last_activity = self._loop.time()
        self._idle_handle: asyncio.TimerHandle | None = None
        self._read_handle: asyncio.TimerHandle | None = None
        self._read_deadline: float | None = None
        self.closed: asyncio.Future[None] = self._loop.create_future()

    # -- asyncio callbacks -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: cast, don't assert.
        self._transport = transport = cast(asyncio.Transport, transport)
        peername = transport.get_extra_info("peername")
        if not peername:  # reset before we got to it
            transport.abort()
            return
        self.peer = Peer(self._owner.name, peername[0], peername[1], connection=self.id)
        self.last_activity = self._loop.time()
        self._arm_idle()
        self._owner.connection_made(self)

    def data_received(self, data: bytes) -> None:
        self.last_activity = now = self._loop.time()
        try:
            messages = self._framer.feed(data)
        except ParseError as exc:
            self._framing_failed(bytes(self._unframed) + data, exc)
            return
        except LocalProtocolError:
            return  # bytes after a framing error, while the connection closes
        buffered = self._framer.buffered
        if buffered:
            self._unframed += data
            del self._unframed[:-buffered]
            if self._read_deadline is None or messages:
                # A message started, or one completed: the partial one has read_timeout to finish.
                self._read_deadline = now + self._config.read_timeout
                if self._read_handle is None:
                    self._read_handle = self._loop.call_at(self._read_deadline, self._read_check)
        else:
            self._unframed.clear()
            self._read_deadline = None
        stats = self._owner.stats
        for message in messages:
            if message == PING:
                # RFC 5626 §3.5.1: answer a double-CRLF ping with a single-CRLF pong.
                stats.pings += 1
                self._write(PONG)
            else:
                stats.messages_received += 1
                self._owner.deliver(message, self)

    def eof_received(self) -> bool | None:
        return None  # the peer is done sending: close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        for handle in (self._idle_handle, self._read_handle):
            if handle is not None:
                handle.cancel()
        self._idle_handle = self._read_handle = None
        if self._framer.buffered and not self._framer.broken:
            self._owner.stats.dropped += 1  # a partial message (a broken one was counted already)
        self._owner.connection_lost(self)
        if not self.closed.done():
            self.closed.set_result(None)

    # -- sending and closing ------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """True until the connection starts closing."""
        return self._transport is not None and not self._transport.is_closing()

    def send(self, data: bytes) -> None:
        """Queue ``data`` on the connection.

        Raises:
            TransportError: the connection is closed, or the peer has left
                more than ``max_write_buffer`` bytes unread (it is closed then).
        """
        transport = self._transport
        if transport is None or transport.is_closing():
            raise TransportError(f"connection {self.id} to {self.peer} is closed")
        if transport.get_write_buffer_size() + len(data) > self._config.max_write_buffer:
            transport.abort()
            raise TransportError(f"connection {self.id} to {self.peer}: peer is not reading")
        self._write(data)
        self._owner.stats.sent += 1

    def _write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self.last_activity = self._loop.time()
            self._transport.write(data)

    def close(self) -> None:
        """Close after the queued bytes are written."""
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        """Close at once, dropping queued bytes."""
        if self._transport is not None:
            self._transport.abort()

    # -- errors and timers ------------------------------------------------------------------

    def _framing_failed(self, unframed: bytes, error: ParseError) -> None:
        stats = self._owner.stats
        stats.malformed += 1
        if error.status == 513:
            stats.oversize += 1
        good, broken = split_at_failure(unframed, self._config.stream_max_size)
        for message in good:
            stats.messages_received += 1
            self._owner.deliver(message, self)
        response = error_response(broken, error, source=self.peer)
        if response is None:
            stats.dropped += 1
        else:
            stats.answered += 1
            self._write(response)
        # RFC 3261 §18.3: after a framing error the stream cannot be re-synchronised: close it.
        self.close()

    def _read_check(self) -> None:
        # Like the idle timer: one handle, pushed back on expiry rather than on every read.
        self._read_handle = None
        deadline = self._read_deadline
        if deadline is None:
            return
        if self._loop.time() < deadline:
            self._read_handle = self._loop.call_at(deadline, self._read_check)
            return
        self._owner.stats.read_timeouts += 1
        self._owner.log.info(
            "closing %s: message incomplete after %ss", self.peer, self._config.read_timeout
        )
        self.abort()

    def _arm_idle(self) -> None:
        self._idle_handle = self._loop.call_at(
            self.last_activity + self._config.idle_timeout, self._idle_check
        )

    def _idle_check(self) -> None:
        # One timer per connection, pushed back on expiry rather than on every packet.
        if self._loop.time() >= self.last_activity + self._config.idle_timeout:
            self._idle_handle = None
            self._owner.stats.idle_closed += 1
            self._owner.log.info("closing idle %s", self.peer)
            self.close()
        else:
            self._arm_idle()
