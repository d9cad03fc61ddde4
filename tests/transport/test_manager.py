"""TransportManager: listeners, Via addresses, malformed input, closing, configuration."""

from __future__ import annotations

import asyncio
import socket

import pytest

from callscript.errors import ConfigError, TransportError
from callscript.sip.errors import ParseError
from callscript.sip.events import Peer
from callscript.sip.message import Response, parse_message
from callscript.transport.endpoint import Listener, TransportConfig
from callscript.transport.manager import TransportManager
from callscript.transport.tlsconf import TlsConfig, client_context, server_context

pytestmark = pytest.mark.timeout(30)


def test_several_listeners_each_with_its_real_port(ipv6):
    """Port 0 gives a free port; UDP, TCP and TLS over both families can listen at once."""

    async def main():
        manager = TransportManager()
        opened = [
            await manager.listen("UDP", "127.0.0.1", 0),
            await manager.listen("UDP", ipv6, 0),
            await manager.listen("TCP", "127.0.0.1", 0),
            await manager.listen("TCP", ipv6, 0),
        ]
        assert all(listener.port > 0 for listener in opened)
        assert set(manager.listeners) == set(opened)
        assert [ln.family for ln in opened] == [socket.AF_INET, socket.AF_INET6] * 2
        await manager.close()

    asyncio.run(main())


def test_local_address_is_ready_for_a_via(ipv6):
    """local_address gives the sent-by of the first listener of a transport and family."""

    async def main():
        manager = TransportManager()
        udp4 = await manager.listen("UDP", "127.0.0.1", 0)
        udp6 = await manager.listen("UDP", ipv6, 0)
        tcp = await manager.listen("TCP", "127.0.0.1", 0, advertise="sip.example.com")
        assert manager.local_address("UDP") == ("127.0.0.1", udp4.port)
        assert manager.local_address("UDP", socket.AF_INET6) == ("[::1]", udp6.port)
        assert manager.local_address("TCP", socket.AF_INET) == ("sip.example.com", tcp.port)
        with pytest.raises(TransportError):
            manager.local_address("TLS")
        await manager.close()

    asyncio.run(main())


def test_listen_rejects_bad_arguments():
    """Host names, unknown transports and TLS without a certificate are configuration errors."""

    async def main():
        manager = TransportManager()
        with pytest.raises(ConfigError):
            await manager.listen("UDP", "localhost", 0)
        with pytest.raises(ConfigError):
            await manager.listen("SCTP", "127.0.0.1", 0)
        with pytest.raises(ConfigError):
            await manager.listen("TLS", "127.0.0.1", 0)
        await manager.close()

    asyncio.run(main())


def test_configuration_errors_are_reported_early(tmp_path):
    """Non-positive limits and unreadable certificate files raise ConfigError."""
    with pytest.raises(ConfigError):
        TransportConfig(read_timeout=0)
    with pytest.raises(ConfigError):
        TransportConfig(udp_max_size=-1)
    with pytest.raises(ConfigError):
        server_context(TlsConfig(certfile=str(tmp_path / "missing.pem")))
    with pytest.raises(ConfigError):
        client_context(TlsConfig(cafile=str(tmp_path / "missing.pem")))


def test_close_releases_ports_and_connections(wire):
    """close() shuts every socket and connection; the ports can be bound again."""

    async def main():
        inbox = wire.Inbox()
        manager = TransportManager(on_message=inbox)
        udp = await manager.listen("UDP", "127.0.0.1", 0)
        tcp = await manager.listen("TCP", "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection("127.0.0.1", tcp.port)
        writer.write(wire.request("hold"))
        await inbox.get()
        await manager.close()
        assert await reader.read() == b""
        assert manager.stats.connections_open == 0
        assert manager.listeners == ()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as again:
            again.bind(("127.0.0.1", udp.port))
        again_tcp = TransportManager()
        assert (await again_tcp.listen("TCP", "127.0.0.1", tcp.port)).port == tcp.port
        await again_tcp.close()
        writer.close()
        await manager.close()  # twice is fine

    asyncio.run(main())


def test_send_after_close_reports_on_error(wire):
    """A closed manager sends nothing and tells on_error."""

    async def main():
        errors = wire.Errors()
        manager = TransportManager(on_error=errors)
        await manager.listen("UDP", "127.0.0.1", 0)
        await manager.close()
        peer = Peer("UDP", "127.0.0.1", 5060)
        manager.send(b"late", peer)
        assert (await errors.get())[0] == peer

    asyncio.run(main())


def test_answer_malformed_on_tcp_answers_over_the_connection_and_keeps_it(wire):
    """RFC 3261 §18.2.2: the 400 goes back over the request's connection, which stays open."""

    async def main():
        manager = TransportManager()
        received: list[Peer] = []

        def on_message(data: bytes, source: Peer, listener: Listener | None) -> None:
            received.append(source)
            try:
                parse_message(data).validate()
            except ParseError as exc:
                assert manager.answer_malformed(data, exc, source)

        manager.on_message = on_message
        tcp = await manager.listen("TCP", "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection("127.0.0.1", tcp.port)
        bad = wire.request("bad").replace(b"Max-Forwards: 70", b"Max-Forwards: many")
        writer.write(bad)
        response = parse_message(await wire.read_message(reader))
        assert isinstance(response, Response)
        assert response.status == 400
        assert response.reason.startswith("Bad Request (line 3: bad Max-Forwards header")
        writer.write(wire.request("next"))  # framing was intact: the connection still serves
        await wire.until(lambda: len(received) == 2)
        assert received[0] == received[1]
        writer.close()
        await manager.close()
        assert (manager.stats.malformed, manager.stats.answered) == (1, 1)

    asyncio.run(main())


def test_answer_malformed_drops_responses_and_unreadable_requests(wire):
    """A malformed response or a request without its identifiers is dropped, and counted."""

    async def main():
        manager = TransportManager()
        source = Peer("UDP", "127.0.0.1", 5999)
        assert not manager.answer_malformed(wire.response(), ParseError("bad"), source)
        assert not manager.answer_malformed(b"garbage\r\n\r\n", ParseError("bad"), source)
        await manager.close()
        assert (manager.stats.malformed, manager.stats.dropped) == (2, 2)

    asyncio.run(main())


def test_messages_without_a_callback_are_counted_as_dropped(wire):
    """With no on_message set, input is dropped and counted, never an error."""

    async def main():
        manager = TransportManager()
        udp = await manager.listen("UDP", "127.0.0.1", 0)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.sendto(wire.request(), ("127.0.0.1", udp.port))
            await wire.until(lambda: manager.stats.dropped == 1)
        await manager.close()
        assert manager.stats.datagrams_received == 1

    asyncio.run(main())
