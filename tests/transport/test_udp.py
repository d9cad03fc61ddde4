"""SIP over UDP with real sockets on 127.0.0.1 and ::1."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from callscript.sip.errors import ParseError
from callscript.sip.events import Peer
from callscript.sip.message import Response, parse_message
from callscript.transport.endpoint import TransportConfig
from callscript.transport.manager import TransportManager
from callscript.transport.udp import set_receive_buffer

pytestmark = pytest.mark.timeout(30)
RMEM_MAX = Path("/proc/sys/net/core/rmem_max")


def client_socket(host: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.setblocking(False)
    return sock


async def receive(sock: socket.socket) -> tuple[bytes, tuple[str, int]]:
    data, addr = await asyncio.get_running_loop().sock_recvfrom(sock, 70000)
    return data, (addr[0], addr[1])


def test_udp_delivers_each_datagram_with_its_source(loopback, wire):
    """A datagram arrives whole, unparsed, with the sender's address as a UDP Peer."""

    async def main():
        inbox = wire.Inbox()
        manager = TransportManager(on_message=inbox)
        listener = await manager.listen("UDP", loopback, 0)
        with client_socket(loopback) as client:
            client.sendto(wire.request(), (loopback, listener.port))
            data, source, via_listener = await inbox.get()
            assert data == wire.request()
            assert source == Peer("UDP", loopback, client.getsockname()[1])
            assert via_listener == listener
            assert listener.port != 0
        await manager.close()
        assert manager.stats.datagrams_received == 1

    asyncio.run(main())


def test_udp_send_goes_out_of_the_socket_of_the_destination_family(ipv6, wire):
    """With IPv4 and IPv6 sockets open, each send leaves from the one of its family."""

    async def main():
        manager = TransportManager()
        v4 = await manager.listen("UDP", "127.0.0.1", 0)
        v6 = await manager.listen("UDP", ipv6, 0)
        with client_socket("127.0.0.1") as c4, client_socket(ipv6) as c6:
            manager.send(b"to v4", Peer("UDP", "127.0.0.1", c4.getsockname()[1]))
            manager.send(b"to v6", Peer("UDP", ipv6, c6.getsockname()[1]))
            assert await receive(c4) == (b"to v4", ("127.0.0.1", v4.port))
            assert await receive(c6) == (b"to v6", (ipv6, v6.port))
        await manager.close()
        assert manager.stats.sent == 2

    asyncio.run(main())


def test_udp_oversize_request_gets_513_and_the_socket_keeps_serving(wire):
    """RFC 3261 §18.1.1: a request over the size limit is answered 513, and the next one served."""

    async def main():
        inbox = wire.Inbox()
        manager = TransportManager(TransportConfig(udp_max_size=600), on_message=inbox)
        listener = await manager.listen("UDP", "127.0.0.1", 0)
        with client_socket("127.0.0.1") as client:
            big = wire.request("big", body=b"x" * 1000)
            client.sendto(big, ("127.0.0.1", listener.port))
            reply, _ = await receive(client)
            response = parse_message(reply)
            assert isinstance(response, Response)
            assert response.status == 513
            assert response.reason.startswith("Message Too Large (datagram of ")
            assert response.call_id == "big"
            # RFC 3581 §4 applied to the copied Via: received and rport point back at us.
            assert response.top_via.rport == client.getsockname()[1]
            client.sendto(b"x" * 1000, ("127.0.0.1", listener.port))  # unanswerable: dropped
            client.sendto(wire.request("next"), ("127.0.0.1", listener.port))
            data, _, _ = await inbox.get()
            assert data == wire.request("next")
        await manager.close()
        stats = manager.stats
        assert (stats.oversize, stats.malformed, stats.answered, stats.dropped) == (2, 2, 1, 1)

    asyncio.run(main())


def test_udp_malformed_request_is_answered_400_by_answer_malformed(wire):
    """The driver's parse error becomes a 400 saying what and where, sent to received/rport."""

    async def main():
        manager = TransportManager()

        def on_message(data: bytes, source: Peer, listener: object) -> None:
            try:
                parse_message(data).validate()
            except ParseError as exc:
                manager.answer_malformed(data, exc, source)

        manager.on_message = on_message
        listener = await manager.listen("UDP", "127.0.0.1", 0)
        bad = wire.request("bad").replace(b"Max-Forwards: 70", b"Max-Forwards: abc")
        with client_socket("127.0.0.1") as client:
            client.sendto(bad, ("127.0.0.1", listener.port))
            reply, _ = await receive(client)
        response = parse_message(reply)
        assert isinstance(response, Response)
        assert response.status == 400
        assert response.reason.startswith("Bad Request (line 3: bad Max-Forwards header")
        await manager.close()
        assert (manager.stats.malformed, manager.stats.answered) == (1, 1)

    asyncio.run(main())


def test_udp_keepalives_and_bad_callbacks_do_not_stop_the_socket(wire):
    """CRLF keep-alives are dropped; an exception in on_message is counted, not fatal."""

    async def main():
        inbox = wire.Inbox()
        calls = []

        def on_message(data: bytes, source: Peer, listener: object) -> None:
            calls.append(data)
            if len(calls) == 1:
                raise RuntimeError("bug upstream")
            inbox(data, source, None)

        manager = TransportManager(on_message=on_message)
        listener = await manager.listen("UDP", "127.0.0.1", 0)
        with client_socket("127.0.0.1") as client:
            for data in (b"\r\n\r\n", wire.request("one"), wire.request("two")):
                client.sendto(data, ("127.0.0.1", listener.port))
            data, _, _ = await inbox.get()
        assert data == wire.request("two")
        await manager.close()
        assert (manager.stats.pings, manager.stats.callback_errors) == (1, 1)

    asyncio.run(main())


def test_udp_send_without_a_socket_of_that_family_reports_on_error(wire):
    """No UDP socket for the destination's family: on_error gets the peer, later, not at once."""

    async def main():
        errors = wire.Errors()
        manager = TransportManager(on_error=errors)
        await manager.listen("UDP", "127.0.0.1", 0)
        peer = Peer("UDP", "::1", 5060)
        manager.send(b"x", peer)
        assert errors.queue.empty()  # never called from inside send()
        failed, exc = await errors.get()
        assert failed == peer
        assert "IPv6" in str(exc) or "AF_INET6" in str(exc)
        await manager.close()
        assert manager.stats.send_failures == 1

    asyncio.run(main())


def test_udp_receive_buffer_size_is_reported(wire):
    """The receive buffer asked for is set (forced past rmem_max when allowed) and reported."""

    async def main():
        asked = 1024 * 1024
        manager = TransportManager(TransportConfig(udp_rcvbuf=asked))
        listener = await manager.listen("UDP", "127.0.0.1", 0)
        reported = manager.udp_endpoint(listener).rcvbuf
        await manager.close()
        return reported

    reported = asyncio.run(main())
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        default = probe.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        assert set_receive_buffer(probe, 1024 * 1024) == reported
    assert reported > default
    if RMEM_MAX.exists():
        assert reported >= min(1024 * 1024, int(RMEM_MAX.read_text()))
