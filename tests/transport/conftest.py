"""Fixtures for the transport tests: loopback addresses, the ``wire`` helpers, TLS files.

Every test runs its own event loop with plain ``asyncio.run``, talks only to
127.0.0.1 / ::1 on ports the kernel picks, and waits for conditions, never
for durations (pytest-timeout guards against hangs).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from callscript.sip.events import Peer
from callscript.transport.endpoint import Listener
from tests.transport.certs import make_self_signed


def ipv6_loopback_available() -> bool:
    """True when ::1 can be bound (some containers have no IPv6)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.fixture(
    params=[
        pytest.param("127.0.0.1", id="ipv4"),
        pytest.param(
            "::1",
            id="ipv6",
            marks=pytest.mark.skipif(
                not ipv6_loopback_available(), reason="no IPv6 loopback (::1) to bind"
            ),
        ),
    ]
)
def loopback(request: pytest.FixtureRequest) -> str:
    """127.0.0.1, then ::1 (skipped when IPv6 loopback cannot be bound)."""
    return str(request.param)


@pytest.fixture
def ipv6() -> str:
    """::1, or skip the test when IPv6 loopback cannot be bound."""
    if not ipv6_loopback_available():
        pytest.skip("no IPv6 loopback (::1) to bind")
    return "::1"


async def until(condition: Callable[[], bool]) -> None:
    """Wait until ``condition()`` holds (pytest-timeout ends a test that never gets there)."""
    while not condition():
        await asyncio.sleep(0.005)


class Inbox:
    """An ``on_message`` callback that keeps what it receives, to be awaited in order."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, Peer, Listener | None]] = asyncio.Queue()

    def __call__(self, data: bytes, source: Peer, listener: Listener | None) -> None:
        self.queue.put_nowait((data, source, listener))

    async def get(self) -> tuple[bytes, Peer, Listener | None]:
        """The next message received."""
        return await self.queue.get()


class Errors:
    """An ``on_error`` callback that keeps the failures."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[Peer, Exception]] = asyncio.Queue()

    def __call__(self, peer: Peer, exc: Exception) -> None:
        self.queue.put_nowait((peer, exc))

    async def get(self) -> tuple[Peer, Exception]:
        """The next failure reported."""
        return await self.queue.get()


def sip_request(
    call_id: str = "call-1",
    *,
    method: str = "OPTIONS",
    body: bytes = b"",
    content_length: bool = True,
    via: str = "SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-test;rport",
) -> bytes:
    """A small valid request (Content-Length written unless told not to)."""
    lines = [
        f"{method} sip:bob@127.0.0.1 SIP/2.0",
        f"Via: {via}",
        "Max-Forwards: 70",
        "From: <sip:alice@127.0.0.1>;tag=a1",
        "To: <sip:bob@127.0.0.1>",
        f"Call-ID: {call_id}",
        f"CSeq: 1 {method}",
    ]
    if content_length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def sip_response(call_id: str = "call-1", status: int = 200) -> bytes:
    """A small valid response to :func:`sip_request`."""
    return (
        f"SIP/2.0 {status} OK\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-test\r\n"
        "From: <sip:alice@127.0.0.1>;tag=a1\r\n"
        "To: <sip:bob@127.0.0.1>;tag=b1\r\n"
        f"Call-ID: {call_id}\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


async def read_message(reader: asyncio.StreamReader) -> bytes:
    """Read one Content-Length framed message from a test client's stream."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() in (b"content-length", b"l"):
            length = int(value)
    return head + await reader.readexactly(length)


class Wire:
    """What transport tests share: SIP bytes to send, stream reads, waits, callbacks."""

    request = staticmethod(sip_request)
    response = staticmethod(sip_response)
    read_message = staticmethod(read_message)
    until = staticmethod(until)
    Inbox = Inbox
    Errors = Errors


@pytest.fixture
def wire() -> Wire:
    """Helpers to build SIP messages, read framed replies and wait for conditions."""
    return Wire()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``(cert.pem, key.pem)``: self-signed for localhost, 127.0.0.1 and ::1."""
    return make_self_signed(tmp_path_factory.mktemp("tls"))
