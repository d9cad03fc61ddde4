"""A callscript UserAgent against `callscript serve`: digest REGISTER, a call through the proxy to sipp.

Real parts only: the server is `callscript serve` in its own process, the callee is
sipp (tests/interop/scenarios/uas.xml, which echoes the Record-Route set), and the
README's example runs as a program of its own.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from callscript.agent import UserAgent
from callscript.stack import Stack
from callscript.store.sqlite import SqliteStore
from callscript.transaction import RequestFailed
from tests.interop.harness import (
    REPO,
    Peers,
    ServerProcess,
    add_user,
    bind,
    free_port,
    need,
    start_server,
)

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]

SDP = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n"


@pytest.fixture
def peers(tmp_path: Path) -> Iterator[Peers]:
    running = Peers(tmp_path)
    yield running
    running.close()


def serve(tmp: Path, algorithm: str) -> ServerProcess:
    need("sipp")
    # No trusted network: alice's INVITE is challenged (407) as well as her REGISTER (401).
    server = start_server(
        tmp, extra="trusted_networks = []", tail=f'[auth]\nalgorithms = ["{algorithm}"]'
    )
    add_user(server.db, "alice@example.com", "secret")
    return server


def bindings(db: Path, aor: str) -> list[str]:
    store = SqliteStore(str(db))
    try:
        return [b.contact for b in store.location.bindings(aor, now=time.time())]
    finally:
        store.close()


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
def test_user_agent_registers_with_digest_and_calls_through_the_proxy(
    tmp_path: Path, peers: Peers, algorithm: str
) -> None:
    """RFC 3261 §22.2: REGISTER answered 401 and INVITE answered 407 are resent with credentials."""
    server = serve(tmp_path, algorithm)
    try:
        callee_port = free_port()
        bind(server.db, "sip:bob@example.com", f"sip:callee@127.0.0.1:{callee_port}")
        callee = peers.sipp("uas.xml", local_port=callee_port)

        async def main() -> None:
            async with await Stack.start() as stack:
                ua = UserAgent(
                    stack,
                    "sip:alice@example.com",
                    password="secret",
                    proxy=f"sip:127.0.0.1:{server.port}",
                )
                ok = await ua.register(expires=300)
                host, port = stack.listeners[0].sent_by
                assert [str(c.uri) for c in ok.contacts] == [f"sip:alice@{host}:{port}"]
                assert bindings(server.db, "sip:alice@example.com") == [f"sip:alice@{host}:{port}"]
                call = await ua.invite("sip:bob@example.com", body=SDP, timeout=10)
                # RFC 3261 §12.1.2: the proxy's Record-Route is the route set of the call.
                assert [str(r.uri) for r in call.dialog.route_set] == [
                    f"sip:127.0.0.1:{server.port};lr"
                ]
                assert call.invite.get_all("Proxy-Authorization")
                assert str(call.remote_target).startswith(f"sip:callee@127.0.0.1:{callee_port}")
                bye = await call.bye()
                assert bye.status == 200
                await ua.unregister()
                assert bindings(server.db, "sip:alice@example.com") == []

        asyncio.run(main())
        assert callee.result(30) == 0, callee.errors() + callee.output()
        log = server.log_text()
        assert "REGISTER sip:example.com from sip:alice@example.com" in log
        assert "-> 401" in log and "-> 407" in log
    finally:
        assert server.stop() == 0


def test_wrong_password_fails_without_looping(tmp_path: Path) -> None:
    """RFC 3261 §22.2: refused credentials are not sent again: REGISTER fails with the 401."""
    server = serve(tmp_path, "SHA-256")
    try:

        async def main() -> None:
            async with await Stack.start() as stack:
                ua = UserAgent(
                    stack,
                    "sip:alice@example.com",
                    password="not the password",
                    proxy=f"sip:127.0.0.1:{server.port}",
                )
                with pytest.raises(RequestFailed) as failure:
                    await ua.register()
                assert failure.value.status == 401

        asyncio.run(main())
        assert server.log_text().count("REGISTER sip:example.com") == 2
    finally:
        assert server.stop() == 0


def test_readme_example_registers_and_calls(tmp_path: Path, peers: Peers) -> None:
    """The README's library example, run as it is, registers and completes a call."""
    server = serve(tmp_path, "SHA-256")
    try:
        callee_port = free_port()
        bind(server.db, "sip:bob@example.com", f"sip:callee@127.0.0.1:{callee_port}")
        callee = peers.sipp("uas.xml", local_port=callee_port)
        env = dict(
            os.environ,
            SIP_AOR="sip:alice@example.com",
            SIP_PASSWORD="secret",
            SIP_PROXY=f"sip:127.0.0.1:{server.port}",
            SIP_CALLEE="sip:bob@example.com",
        )
        example = REPO / "examples" / "ua_register_and_call.py"
        lines = [line for line in example.read_text().splitlines() if line.strip()]
        assert len(lines) <= 25
        result = subprocess.run(
            [sys.executable, str(example)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert f"answered by sip:callee@127.0.0.1:{callee_port}" in result.stdout
        assert callee.result(30) == 0, callee.errors()
        assert bindings(server.db, "sip:alice@example.com") == []
    finally:
        assert server.stop() == 0
