"""Values the transport adapters share: listeners, configuration, counters, callbacks.

The UDP (``udp.py``) and stream (``stream.py``) adapters and the
``TransportManager`` (``manager.py``) all speak in these terms. Bytes are
handed up raw: the driver parses each message once.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

from callscript.errors import ConfigError
from callscript.sip.events import Peer
from callscript.sip.timers import TimerConfig
from callscript.transport.tlsconf import TlsConfig

# 64*T1 with the RFC's default T1: the longest a transaction waits (RFC 3261 Appendix A).
_TRANSACTION_TIMEOUT = TimerConfig().timeout


def family_of(host: str) -> socket.AddressFamily:
    """``AF_INET`` or ``AF_INET6`` for an IP literal (IPv6 brackets allowed).

    Raises:
        ConfigError: ``host`` is not an IP address.
    """
    return socket.AF_INET6 if ":" in ip_key(host) else socket.AF_INET


def ip_key(host: str) -> str:
    """The canonical text of an IP literal, without brackets (``[2001:DB8::1]`` -> ``2001:db8::1``).

    Raises:
        ConfigError: ``host`` is not an IP address.
    """
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        raise ConfigError(f"{host!r} is not an IP address") from None


@dataclass(frozen=True, slots=True)
class Listener:
    """An address we receive on: ``transport``, bound ``host`` (IP, no brackets) and ``port``.

    ``advertise`` is the host to put in Via and Contact instead of ``host``
    (needed when bound to a wildcard address such as ``0.0.0.0``).
    """

    transport: str
    host: str
    port: int
    advertise: str | None = None

    @property
    def family(self) -> socket.AddressFamily:
        """The address family of the bound socket."""
        return family_of(self.host)

    @property
    def sent_by(self) -> tuple[str, int]:
        """``(host, port)`` for a Via sent-by; an IPv6 host is in brackets."""
        host = self.advertise or self.host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return host, self.port


@dataclass(frozen=True, slots=True)
class TransportConfig:
    """Limits and timeouts of the transport layer.

    Args:
        udp_max_size: largest datagram accepted; a larger request gets 513.
        stream_max_size: largest message on TCP/TLS; a larger request gets 513
            and the connection is closed.
        udp_rcvbuf: socket receive buffer asked for (the kernel caps it at
            ``net.core.rmem_max`` unless we may force it).
        idle_timeout: a connection without traffic for this long is closed.
        read_timeout: a connection holding part of a message for this long is
            closed (a peer that starts a message and stalls).
        connect_timeout: limit for opening an outgoing connection, TLS
            handshake included; also the TLS handshake limit on inbound ones.
        max_write_buffer: bytes queued to a connection that does not read;
            beyond it the connection is closed and the send fails.
        tls: certificates and verification for TLS.
    """

    udp_max_size: int = 65535
    stream_max_size: int = 65536
    udp_rcvbuf: int = 4 * 1024 * 1024
    idle_timeout: float = 600.0
    read_timeout: float = _TRANSACTION_TIMEOUT
    connect_timeout: float = _TRANSACTION_TIMEOUT
    max_write_buffer: int = 1024 * 1024
    tls: TlsConfig = field(default_factory=TlsConfig)

    def __post_init__(self) -> None:
        sizes = (self.udp_max_size, self.stream_max_size, self.udp_rcvbuf, self.max_write_buffer)
        times = (self.idle_timeout, self.read_timeout, self.connect_timeout)
        if min(sizes) <= 0 or min(times) <= 0:
            raise ConfigError("transport sizes and timeouts must be positive")


@dataclass(slots=True)
class TransportStats:
    """Counters of one ``TransportManager`` (all transports together)."""

    datagrams_received: int = 0  # UDP datagrams, keep-alives included
    messages_received: int = 0  # messages framed on TCP/TLS
    pings: int = 0  # CRLF keep-alives received
    sent: int = 0  # datagrams and stream messages handed to the kernel
    malformed: int = 0  # framing errors, oversize input, and parse errors the driver reports
    oversize: int = 0  # of which too large
    answered: int = 0  # error responses sent for malformed requests
    dropped: int = 0  # input discarded without an answer
    send_failures: int = 0  # sends that failed (on_error was called)
    connections_opened: int = 0
    connections_closed: int = 0
    idle_closed: int = 0  # connections closed for inactivity
    read_timeouts: int = 0  # connections closed holding a partial message
    callback_errors: int = 0  # exceptions raised by on_message

    @property
    def connections_open(self) -> int:
        """Connections open now."""
        return self.connections_opened - self.connections_closed


MessageCallback = Callable[[bytes, Peer, Listener | None], None]
"""``on_message(data, source, listener)``: one datagram or one framed message, unparsed."""

ErrorCallback = Callable[[Peer, Exception], None]
"""``on_error(peer, exc)``: a send to ``peer`` failed (RFC 3261 §17.1.4 handling follows)."""
