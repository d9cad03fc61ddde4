"""All the transports of one server: UDP, TCP and TLS, over IPv4 and IPv6.

The manager hands bytes up raw: ``on_message(data, source, listener)`` gets
one datagram or one framed stream message, unparsed, and the driver parses
it once. When that parse fails, the driver calls :meth:`answer_malformed`
(the 400 with a reason, or a silent drop; counted either way). Input that
cannot even be framed (oversize datagrams, stream framing errors) is
answered or dropped here, before it reaches the driver.

``send(data, peer)`` never blocks and never raises: a failure, now or when
a background connection attempt fails, reaches ``on_error(peer, exc)``,
always called later from the event loop, never from inside ``send``, so
that the core can run its RFC 3261 §17.1.4 transport-error handling.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
from functools import partial

from callscript.errors import ConfigError, TransportError
from callscript.sip.errors import ParseError
from callscript.sip.events import TRANSPORTS, Peer
from callscript.sip.receive import build_error_response, response_peer
from callscript.transport.endpoint import (
    ErrorCallback,
    Listener,
    MessageCallback,
    TransportConfig,
    TransportStats,
    family_of,
)
from callscript.transport.stream import StreamTransport
from callscript.transport.tlsconf import client_context, server_context
from callscript.transport.udp import UdpEndpoint, open_udp


class TransportManager:
    """Listeners and connections of every transport, behind one ``send``.

    Args:
        config: limits, timeouts and TLS settings.
        on_message: ``callback(data, source, listener)`` for each message
            received; ``listener`` is the Listener it arrived on (for
            connections we opened: our listener of that transport and
            family, or ``None`` when there is none).
        on_error: ``callback(peer, exc)`` when a send to ``peer`` fails.

    Both callbacks may also be set later as attributes.
    """

    def __init__(
        self,
        config: TransportConfig | None = None,
        *,
        on_message: MessageCallback | None = None,
        on_error: ErrorCallback | None = None,
    ) -> None:
        self.config = config or TransportConfig()
        self.stats = TransportStats()
        self.on_message = on_message
        self.on_error = on_error
        self._log = logging.getLogger(__name__)
        self._udp: list[UdpEndpoint] = []
        ids = itertools.count(1)
        tls = self.config.tls
        self._streams = {
            name: StreamTransport(
                name,
                config=self.config,
                stats=self.stats,
                deliver=self._deliver,
                on_error=self._report,
                next_id=partial(next, ids),
                server_ssl=partial(server_context, tls) if name == "TLS" else None,
                client_ssl=partial(client_context, tls) if name == "TLS" else None,
            )
            for name in ("TCP", "TLS")
        }
        self._closed = False

    # -- listening ------------------------------------------------------------------------

    async def listen(
        self, transport: str, host: str, port: int, *, advertise: str | None = None
    ) -> Listener:
        """Start receiving on ``transport`` at ``(host, port)``; port 0 picks a free port.

        Args:
            transport: ``"UDP"``, ``"TCP"`` or ``"TLS"``.
            host: an IPv4 or IPv6 address (``0.0.0.0`` / ``::`` for all).
            port: the port, or 0.
            advertise: the host to put in Via instead of ``host`` (a name, or
                the public address when bound to a wildcard).

        Returns:
            The bound Listener, with its real port.

        Raises:
            ConfigError: unknown transport, ``host`` not an IP address, TLS
                without a certificate.
            OSError: the address cannot be bound.
        """
        if transport not in TRANSPORTS:
            raise ConfigError(f"unknown transport {transport!r}")
        if self._closed:
            raise TransportError("the transport manager is closed")
        if transport != "UDP":
            return await self._streams[transport].listen(host, port, advertise)
        endpoint = await open_udp(
            host,
            port,
            rcvbuf=self.config.udp_rcvbuf,
            max_size=self.config.udp_max_size,
            stats=self.stats,
            deliver=self._deliver,
            advertise=advertise,
        )
        self._udp.append(endpoint)
        self._log.info(
            "UDP %s:%d receive buffer %d bytes (asked %d)",
            endpoint.listener.host,
            endpoint.listener.port,
            endpoint.rcvbuf,
            self.config.udp_rcvbuf,
        )
        return endpoint.listener

    @property
    def listeners(self) -> tuple[Listener, ...]:
        """Every listener, in the order they were opened."""
        udp = tuple(endpoint.listener for endpoint in self._udp)
        return udp + tuple(ln for stream in self._streams.values() for ln in stream.listeners)

    def udp_endpoint(self, listener: Listener) -> UdpEndpoint:
        """The UDP socket behind ``listener`` (its ``rcvbuf`` is the receive buffer size).

        Raises:
            KeyError: no UDP socket has that listener.
        """
        for endpoint in self._udp:
            if endpoint.listener == listener:
                return endpoint
        raise KeyError(listener)

    def local_address(
        self, transport: str, family: socket.AddressFamily = socket.AF_INET
    ) -> tuple[str, int]:
        """``(host, port)`` for the Via of a message sent over ``transport`` and ``family``.

        The host is the listener's ``advertise`` or bound address; an IPv6
        host is in brackets, ready for a Via. The first listener opened for
        that transport and family is used.

        Raises:
            TransportError: no listener for that transport and family.
        """
        for listener in self.listeners:
            if listener.transport == transport and listener.family == family:
                return listener.sent_by
        raise TransportError(f"no {transport} listener for {family.name}")

    def connection(self, peer: Peer) -> Peer | None:
        """The open connection a send to ``peer`` would use now, as a Peer with its id.

        ``None`` for UDP, or when a new connection would be opened.
        """
        stream = self._streams.get(peer.transport)
        found = None if stream is None else stream.find(peer)
        return None if found is None else found.peer

    # -- receiving --------------------------------------------------------------------------

    def _deliver(self, data: bytes, source: Peer, listener: Listener | None) -> None:
        callback = self.on_message
        if callback is None:
            self.stats.dropped += 1
            return
        try:
            callback(data, source, listener)
        except Exception:  # a bug upstream must not stop the transport from serving
            self.stats.callback_errors += 1
            self._log.exception("on_message failed for a message from %s", source)

    def answer_malformed(self, data: bytes, error: ParseError, source: Peer) -> bool:
        """Answer bytes that ``parse_message`` rejected, or drop them; count either way.

        The response (400 or ``error.status``, reason saying what and where)
        goes back the way RFC 3261 §18.2.2 says: over the same connection on
        TCP/TLS (whatever the Via claims), to received/rport on UDP.

        Returns:
            True when a response was sent.
        """
        self.stats.malformed += 1
        response = build_error_response(data, error, source=source)
        if response is None:
            self.stats.dropped += 1
            return False
        self.stats.answered += 1
        target = source
        if not source.reliable:
            # On UDP, received/rport; a Via naming another transport is ignored.
            via_peer = response_peer(response, source)
            # Only ever back to the source's address: an answer to bytes we could not
            # use must not be reflected at a third party named in them.
            if (
                via_peer is not None
                and via_peer.transport == "UDP"
                and via_peer.host == source.host
            ):
                target = via_peer
        self.send(bytes(response), target)
        return True

    # -- sending ------------------------------------------------------------------------------

    def send(self, data: bytes, peer: Peer, *, server_name: str | None = None) -> None:
        """Send one serialized message to ``peer``; failures go to ``on_error``.

        Args:
            data: the message.
            peer: the destination. On TCP/TLS, ``peer.connection`` pins the
                connection (responses go back over the request's); without
                it, an open connection to the address is reused, else one is
                opened in the background.
            server_name: the name a TLS server's certificate must match when a
                new TLS connection is opened (default: its IP address).
        """
        if self._closed:
            self._report(peer, TransportError("the transport manager is closed"))
            return
        if peer.transport != "UDP":
            self._streams[peer.transport].send(data, peer, server_name)
            return
        try:
            family = family_of(peer.host)
        except ConfigError as exc:
            self._report(peer, TransportError(str(exc)))
            return
        endpoint = next((e for e in self._udp if e.family == family), None)
        if endpoint is None:
            self._report(peer, TransportError(f"no UDP socket for {family.name}"))
            return
        try:
            endpoint.send(data, peer.address)
        except OSError as exc:
            error = TransportError(f"UDP send to {peer.host}:{peer.port} failed: {exc}")
            error.__cause__ = exc
            self._report(peer, error)

    def _report(self, peer: Peer, exc: Exception) -> None:
        self.stats.send_failures += 1
        self._log.info("send to %s failed: %s", peer, exc)
        if self.on_error is not None:
            asyncio.get_running_loop().call_soon(self._call_on_error, peer, exc)

    def _call_on_error(self, peer: Peer, exc: Exception) -> None:
        if self.on_error is None:
            return
        try:
            self.on_error(peer, exc)
        except Exception:  # a bug upstream must not stop the transport from serving
            self.stats.callback_errors += 1
            self._log.exception("on_error failed for %s", peer)

    # -- closing ----------------------------------------------------------------------------------

    async def close(self) -> None:
        """Close every socket and connection; safe to call twice."""
        self._closed = True
        for endpoint in self._udp:
            endpoint.close()
        self._udp.clear()
        for stream in self._streams.values():
            await stream.close()
        # Let the transports' connection_lost callbacks run before returning.
        await asyncio.sleep(0)
