"""SIP over TCP and TLS with real sockets on 127.0.0.1 and ::1."""

from __future__ import annotations

import asyncio
import socket
import ssl

import pytest

from callscript.errors import TransportError
from callscript.sip.events import Peer
from callscript.sip.message import Response, parse_message
from callscript.transport.endpoint import TransportConfig
from callscript.transport.manager import TransportManager
from callscript.transport.tlsconf import TlsConfig

pytestmark = pytest.mark.timeout(30)


async def tcp_server(host: str, inbox, config: TransportConfig | None = None):
    manager = TransportManager(config, on_message=inbox)
    listener = await manager.listen("TCP", host, 0)
    return manager, listener


async def read_response(reader: asyncio.StreamReader, wire) -> Response:
    response = parse_message(await wire.read_message(reader))
    assert isinstance(response, Response)
    return response


def test_tcp_delivers_several_messages_from_one_write(loopback, wire):
    """Messages arrive one by one, in order, with the connection id in their source Peer."""

    async def main():
        inbox = wire.Inbox()
        manager, listener = await tcp_server(loopback, inbox)
        _reader, writer = await asyncio.open_connection(loopback, listener.port)
        writer.write(wire.request("one") + wire.request("two", body=b"v=0\r\n") + wire.request("3"))
        got = [await inbox.get() for _ in range(3)]
        assert [data for data, _, _ in got] == [
            wire.request("one"),
            wire.request("two", body=b"v=0\r\n"),
            wire.request("3"),
        ]
        source = got[0][1]
        assert (source.transport, source.host) == ("TCP", loopback)
        assert source.port == writer.get_extra_info("sockname")[1]
        assert source.connection is not None
        assert {peer for _, peer, _ in got} == {source}
        assert got[0][2] == listener
        writer.close()
        await manager.close()
        assert manager.stats.messages_received == 3

    asyncio.run(main())


def test_tcp_delivers_a_message_written_byte_by_byte(wire):
    """RFC 3261 §18.3: a message split over many writes is framed by Content-Length, once."""

    async def main():
        inbox = wire.Inbox()
        manager, listener = await tcp_server("127.0.0.1", inbox)
        _reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        message = wire.request("slow", body=b"hello\r\n\r\nworld")
        for i in range(len(message)):
            writer.write(message[i : i + 1])
            await writer.drain()
            await asyncio.sleep(0)
        data, _, _ = await inbox.get()
        assert data == message
        writer.write(wire.request("after"))
        assert (await inbox.get())[0] == wire.request("after")
        writer.close()
        await manager.close()

    asyncio.run(main())


def test_tcp_keepalive_ping_gets_a_pong(wire):
    """RFC 5626 §3.5.1: a double-CRLF ping is answered with a single CRLF pong."""

    async def main():
        inbox = wire.Inbox()
        manager, listener = await tcp_server("127.0.0.1", inbox)
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        writer.write(b"\r\n\r\n")
        assert await reader.readexactly(2) == b"\r\n"
        writer.write(wire.request("after-ping"))
        assert (await inbox.get())[0] == wire.request("after-ping")
        writer.close()
        await manager.close()
        assert manager.stats.pings == 1

    asyncio.run(main())


def test_tcp_missing_content_length_gets_400_then_close(wire):
    """RFC 3261 §18.3: no Content-Length on a stream: 400 saying so, then the connection closes."""

    async def main():
        inbox = wire.Inbox()
        manager, listener = await tcp_server("127.0.0.1", inbox)
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        writer.write(wire.request("no-length", content_length=False))
        response = await read_response(reader, wire)
        assert response.status == 400
        assert response.reason == "Bad Request (Content-Length is required on stream transports)"
        assert response.call_id == "no-length"
        assert await reader.read() == b""  # closed by the server
        await wire.until(lambda: manager.stats.connections_open == 0)
        assert inbox.queue.empty()
        writer.close()
        await manager.close()
        stats = manager.stats
        assert (stats.malformed, stats.answered, stats.dropped) == (1, 1, 0)

    asyncio.run(main())


def test_tcp_unanswerable_framing_error_closes_silently(wire):
    """RFC 3261 §18.3: garbage that cannot be framed or answered: the connection just closes."""

    async def main():
        inbox = wire.Inbox()
        manager, listener = await tcp_server("127.0.0.1", inbox)
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        writer.write(b"\x16\x03\x01 not sip at all\r\n\r\n")
        assert await reader.read() == b""
        writer.close()
        await manager.close()
        stats = manager.stats
        assert (stats.malformed, stats.answered, stats.dropped) == (1, 0, 1)

    asyncio.run(main())


def test_tcp_oversize_message_gets_513_then_close(wire):
    """RFC 3261 §18.3: a message over the stream size limit gets 513, then the connection closes."""

    async def main():
        inbox = wire.Inbox()
        manager, listener = await tcp_server(
            "127.0.0.1", inbox, TransportConfig(stream_max_size=800)
        )
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        writer.write(wire.request("huge", body=b"x" * 2000))
        response = await read_response(reader, wire)
        assert response.status == 513
        assert response.reason.startswith("Message Too Large (message of ")
        assert await reader.read() == b""
        writer.close()
        await manager.close()
        assert (manager.stats.oversize, manager.stats.answered) == (1, 1)

    asyncio.run(main())


def test_tcp_framing_error_after_good_messages_delivers_them_and_answers_the_bad_one(wire):
    """RFC 3261 §18.3: messages framed before the broken one go up; the 400 names the broken one."""

    async def main():
        inbox = wire.Inbox()
        manager, listener = await tcp_server("127.0.0.1", inbox)
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        writer.write(wire.request("good") + wire.request("bad", content_length=False))
        assert (await inbox.get())[0] == wire.request("good")
        response = await read_response(reader, wire)
        assert (response.status, response.call_id) == (400, "bad")
        writer.close()
        await manager.close()

    asyncio.run(main())


def test_tcp_idle_connection_is_closed(wire):
    """A connection without traffic for idle_timeout seconds is closed by the server."""

    async def main():
        inbox = wire.Inbox()
        config = TransportConfig(idle_timeout=0.2)
        manager, listener = await tcp_server("127.0.0.1", inbox, config)
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        writer.write(wire.request("then-silence"))
        await inbox.get()
        assert await reader.read() == b""
        await wire.until(lambda: manager.stats.connections_open == 0)
        writer.close()
        await manager.close()
        assert manager.stats.idle_closed == 1

    asyncio.run(main())


def test_tcp_half_open_message_times_out_without_harming_other_connections(wire):
    """A peer that stalls mid-message is cut off after read_timeout; others keep working."""

    async def main():
        inbox = wire.Inbox()
        manager, listener = await tcp_server("127.0.0.1", inbox, TransportConfig(read_timeout=0.2))
        stalled_reader, stalled = await asyncio.open_connection("127.0.0.1", listener.port)
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        stalled.write(wire.request("stalled")[:40])
        assert await stalled_reader.read() == b""  # closed by the read timeout
        writer.write(wire.request("healthy"))
        data, source, _ = await inbox.get()
        assert data == wire.request("healthy")
        manager.send(wire.response("healthy"), source)
        assert (await read_response(reader, wire)).call_id == "healthy"
        stalled.close()
        writer.close()
        await manager.close()
        assert (manager.stats.read_timeouts, manager.stats.dropped) == (1, 1)

    asyncio.run(main())


def test_tcp_trickled_message_is_still_cut_off_by_the_read_timeout(wire):
    """Bytes trickling in without completing a message do not extend the read timeout."""

    async def main():
        inbox = wire.Inbox()
        manager, listener = await tcp_server("127.0.0.1", inbox, TransportConfig(read_timeout=0.3))
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        eof = asyncio.ensure_future(reader.read())
        for byte in wire.request("trickle", body=b"x" * 5000):
            if eof.done():
                break
            writer.write(bytes([byte]))
            await asyncio.sleep(0.02)
        assert await eof == b""
        assert inbox.queue.empty()
        writer.close()
        await manager.close()
        assert manager.stats.read_timeouts == 1

    asyncio.run(main())


def test_tcp_busy_connection_ending_reads_mid_message_stays_open(wire):
    """Each completed message restarts the read timeout for the partial one behind it."""

    async def main():
        inbox = wire.Inbox()
        manager, listener = await tcp_server("127.0.0.1", inbox, TransportConfig(read_timeout=1.0))
        _reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        stream = b"".join(wire.request(f"m{i}") for i in range(6))
        size = len(wire.request("m0"))
        writer.write(stream[: size // 2])
        for i in range(5):  # ~1.75 s in all, each step well within the 1 s read timeout
            await asyncio.sleep(0.35)
            writer.write(stream[size * i + size // 2 : size * (i + 1) + size // 2])
            assert (await inbox.get())[0] == wire.request(f"m{i}")
        writer.write(stream[size * 5 + size // 2 :])
        assert (await inbox.get())[0] == wire.request("m5")
        await manager.close()
        assert manager.stats.read_timeouts == 0
        writer.close()

    asyncio.run(main())


def test_tcp_response_goes_back_over_the_request_connection(loopback, wire):
    """RFC 3261 §18.2.2: a response sent to the source Peer goes over the connection it came on."""

    async def main():
        inbox = wire.Inbox()
        manager, listener = await tcp_server(loopback, inbox)
        reader, writer = await asyncio.open_connection(loopback, listener.port)
        writer.write(wire.request("reuse"))
        _, source, _ = await inbox.get()
        manager.send(wire.response("reuse"), source)
        assert (await read_response(reader, wire)).call_id == "reuse"
        assert manager.connection(source) == source
        assert manager.stats.connections_opened == 1  # nothing new was opened
        writer.close()
        await manager.close()

    asyncio.run(main())


def test_tcp_send_to_an_address_reuses_its_open_connection(wire):
    """RFC 3261 §18.1.1: a send to an address with an open inbound connection reuses it."""

    async def main():
        inbox = wire.Inbox()
        manager, listener = await tcp_server("127.0.0.1", inbox)
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        writer.write(wire.request("first"))
        _, source, _ = await inbox.get()
        manager.send(wire.request("to-client"), source.without_connection())
        assert (await read_response_or_request(reader, wire)).call_id == "to-client"
        assert manager.stats.connections_opened == 1
        writer.close()
        await manager.close()

    asyncio.run(main())


async def read_response_or_request(reader: asyncio.StreamReader, wire):
    return parse_message(await wire.read_message(reader))


def test_tcp_outbound_connection_is_opened_once_and_reused(wire):
    """Sends to a new address open one connection in the background; later ones reuse it."""

    async def main():
        server_inbox, client_inbox = wire.Inbox(), wire.Inbox()
        server, listener = await tcp_server("127.0.0.1", server_inbox)
        client = TransportManager(on_message=client_inbox)
        await client.listen("TCP", "127.0.0.1", 0)
        target = Peer("TCP", "127.0.0.1", listener.port)
        client.send(wire.request("a"), target)  # queued while connecting
        client.send(wire.request("b"), target)
        first = await server_inbox.get()
        second = await server_inbox.get()
        assert [first[0], second[0]] == [wire.request("a"), wire.request("b")]
        assert first[1] == second[1]  # one connection
        server.send(wire.response("a"), first[1])
        data, source, via_listener = await client_inbox.get()
        assert data == wire.response("a")
        assert source.connection is not None and source.address == target.address
        assert via_listener is not None and via_listener.transport == "TCP"
        client.send(wire.request("c"), target)
        assert (await server_inbox.get())[1] == first[1]
        assert (client.stats.connections_opened, server.stats.connections_opened) == (1, 1)
        await client.close()
        await server.close()

    asyncio.run(main())


def test_tcp_connect_failure_calls_on_error(wire):
    """RFC 3261 §17.1.4: a connection that cannot be opened is reported to on_error."""

    async def main():
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]  # closed again: nobody listens there
        errors = wire.Errors()
        manager = TransportManager(on_error=errors)
        target = Peer("TCP", "127.0.0.1", port)
        manager.send(wire.request("nowhere"), target)
        manager.send(wire.request("nowhere-2"), target)
        peer, exc = await errors.get()
        assert peer == target
        assert isinstance(exc, TransportError)
        assert isinstance(exc.__cause__, OSError)
        await manager.close()
        assert manager.stats.send_failures == 1
        assert errors.queue.empty()  # one report per failed attempt

    asyncio.run(main())


def test_tcp_peer_that_closes_is_forgotten(wire):
    """A connection the peer closes is cleaned up; a later send to it opens a new one."""

    async def main():
        inbox = wire.Inbox()
        manager, listener = await tcp_server("127.0.0.1", inbox)
        _reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        writer.write(wire.request("bye"))
        _, source, _ = await inbox.get()
        writer.close()
        await writer.wait_closed()
        await wire.until(lambda: manager.stats.connections_open == 0)
        assert manager.connection(source) is None
        await manager.close()
        assert manager.stats.connections_closed == 1

    asyncio.run(main())


def test_tls_handshake_and_a_message_each_way(loopback, wire, tls_files):
    """TLS with a self-signed certificate the client trusts: a request one way, a response back."""
    cert, key = (str(path) for path in tls_files)

    async def main():
        server_inbox, client_inbox = wire.Inbox(), wire.Inbox()
        server = TransportManager(
            TransportConfig(tls=TlsConfig(certfile=cert, keyfile=key)), on_message=server_inbox
        )
        listener = await server.listen("TLS", loopback, 0)
        client = TransportManager(
            TransportConfig(tls=TlsConfig(cafile=cert)), on_message=client_inbox
        )
        client.send(wire.request("secure"), Peer("TLS", loopback, listener.port))
        data, source, via_listener = await server_inbox.get()
        assert data == wire.request("secure")
        assert source.transport == "TLS" and via_listener == listener
        server.send(wire.response("secure"), source)
        data, back, _ = await client_inbox.get()
        assert data == wire.response("secure")
        assert back.transport == "TLS" and back.port == listener.port
        await client.close()
        await server.close()

    asyncio.run(main())


def test_tls_client_refuses_an_untrusted_certificate(wire, tls_files):
    """A server certificate the client cannot verify fails the send, reported to on_error."""
    cert, key = (str(path) for path in tls_files)

    async def main():
        server_inbox, errors = wire.Inbox(), wire.Errors()
        server = TransportManager(
            TransportConfig(tls=TlsConfig(certfile=cert, keyfile=key)), on_message=server_inbox
        )
        listener = await server.listen("TLS", "127.0.0.1", 0)
        client = TransportManager(on_error=errors)  # system trust store: self-signed is unknown
        client.send(wire.request("x"), Peer("TLS", "127.0.0.1", listener.port))
        _, exc = await errors.get()
        assert isinstance(exc.__cause__, ssl.SSLCertVerificationError)
        assert server_inbox.queue.empty()
        await client.close()
        await server.close()

    asyncio.run(main())
