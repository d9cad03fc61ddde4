"""SIP over UDP: one socket per listen address, IPv4 or IPv6 (RFC 3261 §18).

Each datagram is one message (RFC 3261 §18.3) and is handed up unparsed as
``(data, source, listener)``. A datagram over the size limit is answered
with 513 when the request can be read, else dropped; either way the socket
keeps serving. Datagrams holding only CRLFs are keep-alives and are dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from typing import Any, cast

from callscript.sip.errors import ParseError
from callscript.sip.events import Peer
from callscript.sip.receive import build_error_response, response_peer
from callscript.transport.endpoint import Listener, TransportStats, family_of


def set_receive_buffer(sock: socket.socket, size: int) -> int:
    """Ask for a ``size``-byte receive buffer; return what the kernel reports.

    ``SO_RCVBUF`` is capped at ``net.core.rmem_max``; ``SO_RCVBUFFORCE``
    (Linux, needs CAP_NET_ADMIN) is tried first to go past it. Linux reports
    twice the size granted (it counts its bookkeeping too).
    """
    force = getattr(socket, "SO_RCVBUFFORCE", None)
    if force is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, force, size)
        except OSError:
            force = None
    if force is None:
        # On failure the system default stays; the size reported below says what we got.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)


def bind_udp_socket(host: str, port: int, rcvbuf: int) -> tuple[socket.socket, int]:
    """A non-blocking UDP socket bound to ``(host, port)`` and its receive buffer size.

    IPv6 sockets are IPv6-only, so that an IPv4 socket can share the port.

    Raises:
        OSError: the address cannot be bound.
    """
    family = family_of(host)
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        effective = set_receive_buffer(sock, rcvbuf)
        sock.bind((host.strip("[]"), port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock, effective


class UdpEndpoint(asyncio.DatagramProtocol):
    """One bound UDP socket: receives datagrams, sends to any address of its family.

    Use :func:`open_udp`. ``listener`` is its address; ``rcvbuf`` the
    receive buffer size the kernel reports.
    """

    def __init__(
        self,
        sock: socket.socket,
        listener: Listener,
        *,
        rcvbuf: int,
        max_size: int,
        stats: TransportStats,
        deliver: Callable[[bytes, Peer, Listener | None], None],
    ) -> None:
        self.listener = listener
        self.rcvbuf = rcvbuf
        self.max_size = max_size
        self._sock = sock
        self._stats = stats
        self._deliver = deliver
        self._transport: asyncio.DatagramTransport | None = None
        self._log = logging.getLogger(__name__)

    @property
    def family(self) -> socket.AddressFamily:
        """The socket's address family."""
        return self.listener.family

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Python 3.11's selector transport does not subclass DatagramTransport: cast, don't assert.
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        stats = self._stats
        stats.datagrams_received += 1
        try:
            source = Peer("UDP", addr[0], addr[1])
        except ValueError:  # source port 0: nowhere to answer
            stats.dropped += 1
            return
        if not data.strip(b"\r\n"):
            # A CRLF keep-alive (or an empty datagram): nothing to answer on UDP.
            stats.pings += 1
            return
        if len(data) > self.max_size:
            stats.malformed += 1
            stats.oversize += 1
            error = ParseError(f"datagram of {len(data)} bytes exceeds {self.max_size}", status=513)
            self._answer(data, error, source)
            return
        self._deliver(data, source, self.listener)

    def _answer(self, data: bytes, error: ParseError, source: Peer) -> None:
        response = build_error_response(data, error, source=source)
        if response is None:
            self._stats.dropped += 1
            return
        via_peer = response_peer(response, source)
        target = via_peer if via_peer is not None and via_peer.transport == "UDP" else source
        try:
            self.send(bytes(response), target.address)
        except OSError as exc:
            self._log.info("cannot answer %s: %s", source, exc)
            self._stats.send_failures += 1
            return
        self._stats.answered += 1

    def send(self, data: bytes, address: tuple[str, int]) -> None:
        """Send one datagram now, or queue it behind earlier ones.

        Raises:
            OSError: the kernel refused it at once (no route, too large...).
        """
        transport = self._transport
        if transport is None or transport.is_closing():
            raise OSError(f"UDP socket {self.listener.host}:{self.listener.port} is closed")
        # Straight to the kernel; only when its buffer is full does the transport queue
        # (UDP keeps no order anyway, so a queued datagram may be overtaken).
        try:
            self._sock.sendto(data, address)
        except (BlockingIOError, InterruptedError):
            pass
        else:
            self._stats.sent += 1
            return
        transport.sendto(data, address)
        self._stats.sent += 1

    def error_received(self, exc: Exception) -> None:
        # ICMP errors for earlier datagrams (no destination known): count and go on.
        self._stats.send_failures += 1
        self._log.info("UDP %s:%s error: %s", self.listener.host, self.listener.port, exc)

    def close(self) -> None:
        """Close the socket."""
        if self._transport is not None:
            self._transport.close()
        else:
            self._sock.close()


async def open_udp(
    host: str,
    port: int,
    *,
    rcvbuf: int,
    max_size: int,
    stats: TransportStats,
    deliver: Callable[[bytes, Peer, Listener | None], None],
    advertise: str | None = None,
) -> UdpEndpoint:
    """Bind a UDP socket to ``(host, port)`` (port 0: any) and start receiving.

    Raises:
        OSError: the address cannot be bound.
        ConfigError: ``host`` is not an IP address.
    """
    sock, effective = bind_udp_socket(host, port, rcvbuf)
    bound_host, bound_port = sock.getsockname()[:2]
    listener = Listener("UDP", bound_host, bound_port, advertise)
    endpoint = UdpEndpoint(
        sock, listener, rcvbuf=effective, max_size=max_size, stats=stats, deliver=deliver
    )
    loop = asyncio.get_running_loop()
    try:
        await loop.create_datagram_endpoint(lambda: endpoint, sock=sock)
    except BaseException:
        sock.close()
        raise
    return endpoint
