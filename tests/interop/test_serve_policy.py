"""`callscript serve` as a hosting provider runs it: relay policy, proxy authentication, TLS, IPv6.

The server is a real process on loopback; the client side is a plain socket carrying messages
built with callscript's own message API.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from callscript.sip.auth import digest_response, pick_challenge
from callscript.sip.message import Request, Response, parse_message
from tests.interop.harness import ServerProcess, add_user, free_port, start_server

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]


def _request(
    method: str, uri: str, *, from_uri: str, port: int, family: str = "127.0.0.1", n: int = 1
) -> Request:
    host = f"[{family}]" if ":" in family else family
    return Request(
        method,
        uri,
        [
            ("Via", f"SIP/2.0/UDP {host}:{port};branch=z9hG4bKpolicy{n};rport"),
            ("Max-Forwards", 70),
            ("From", f"<{from_uri}>;tag=policy{n}"),
            ("To", f"<{uri}>"),
            ("Call-ID", f"policy-{n}@test"),
            ("CSeq", f"{n} {method}"),
            ("Contact", f"<sip:tester@{host}:{port}>"),
        ],
    )


def _final(sock: socket.socket, request: Request, address: tuple[str, int]) -> Response:
    sock.sendto(bytes(request), address)
    while True:
        message = parse_message(sock.recv(65535))
        assert isinstance(message, Response)
        if message.status >= 200:
            return message


@pytest.fixture
def untrusted(tmp_path: Path) -> Iterator[ServerProcess]:
    # No trusted network at all: loopback clients are treated like anyone on the Internet.
    process = start_server(
        tmp_path, extra='trusted_networks = ["192.0.2.0/24"]', tail='[auth]\nalgorithms = ["MD5"]'
    )
    yield process
    assert process.stop() == 0


def test_requests_for_other_domains_from_strangers_get_403(untrusted: ServerProcess) -> None:
    """RFC 3261 §16.5: a proxy that is not responsible for the domain relays only for its own users."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        port = sock.getsockname()[1]
        request = _request(
            "INVITE",
            "sip:someone@elsewhere.example.net",
            from_uri="sip:eve@evil.example",
            port=port,
        )
        response = _final(sock, request, ("127.0.0.1", untrusted.port))
    assert response.status == 403


def test_calls_from_a_local_user_are_challenged_and_then_relayed(untrusted: ServerProcess) -> None:
    """RFC 3261 §22.3: a request claiming one of our users gets 407; valid credentials let it through."""
    add_user(untrusted.db, "alice@example.com", "wonderland")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        port = sock.getsockname()[1]
        # Relayed to a numeric host of ours that nobody listens on: 408/503 after the challenge.
        target = f"sip:bob@127.0.0.1:{free_port()}"
        request = _request("OPTIONS", target, from_uri="sip:alice@example.com", port=port)
        challenge = _final(sock, request, ("127.0.0.1", untrusted.port))
        assert challenge.status == 407
        offer = pick_challenge(challenge)
        assert offer is not None
        retry = _request("OPTIONS", target, from_uri="sip:alice@example.com", port=port, n=2)
        credentials = digest_response(
            offer,
            method="OPTIONS",
            uri=target,
            username="alice",
            password="wonderland",
            cnonce="c0ffee",
            nc=1,
        )
        retry.add("Proxy-Authorization", credentials)
        relayed = _final(sock, retry, ("127.0.0.1", untrusted.port))
        assert relayed.status not in (403, 407), relayed
        wrong = _request("OPTIONS", target, from_uri="sip:alice@example.com", port=port, n=3)
        wrong.add(
            "Proxy-Authorization",
            digest_response(
                offer,
                method="OPTIONS",
                uri=target,
                username="alice",
                password="bad",
                cnonce="c1",
                nc=1,
            ),
        )
        assert _final(sock, wrong, ("127.0.0.1", untrusted.port)).status == 407


def test_ipv6_listener_answers_options(tmp_path: Path) -> None:
    """RFC 5118 §4.1: the proxy listens on [::1] and answers over IPv6."""
    probe = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        probe.bind(("::1", 0))
    except OSError:
        pytest.skip("IPv6 loopback is not available here")
    finally:
        probe.close()
    port = free_port()
    server = start_server(tmp_path, listen=[f"udp:[::1]:{port}"])
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.bind(("::1", 0))
            sock.settimeout(5)
            local = sock.getsockname()[1]
            request = _request(
                "OPTIONS", f"sip:[::1]:{port}", from_uri="sip:probe@[::1]", port=local, family="::1"
            )
            response = _final(sock, request, ("::1", port))
        assert response.status == 200
    finally:
        assert server.stop() == 0


def test_tls_listener_answers_options(tmp_path: Path) -> None:
    """RFC 3261 §26.2: the proxy accepts SIP over TLS with its configured certificate."""
    from tests.transport.certs import make_self_signed

    cert, key = make_self_signed(tmp_path)
    port = free_port()
    server = start_server(
        tmp_path, listen=[f"tls:127.0.0.1:{port}"], tail=f'[tls]\ncert = "{cert}"\nkey = "{key}"'
    )
    try:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # a throwaway certificate made for this test
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        with raw, context.wrap_socket(raw, server_hostname="localhost") as tls:
            local = tls.getsockname()[1]
            request = _request(
                "OPTIONS", f"sip:127.0.0.1:{port}", from_uri="sip:probe@127.0.0.1", port=local
            )
            data = bytes(request).replace(b"SIP/2.0/UDP", b"SIP/2.0/TLS", 1)
            tls.sendall(data)
            received = b""
            while b"\r\n\r\n" not in received:
                chunk = tls.recv(65535)
                assert chunk, "connection closed without an answer"
                received += chunk
        response = parse_message(received)
        assert isinstance(response, Response) and response.status == 200
    finally:
        assert server.stop() == 0


def _register(
    sock: socket.socket, server: ServerProcess, user: str, *, n: int, extra=()
) -> Response:  # type: ignore[no-untyped-def]
    port = sock.getsockname()[1]
    request = _request(
        "REGISTER", "sip:example.com", from_uri=f"sip:{user}@example.com", port=port, n=n
    )
    request["To"] = f"<sip:{user}@example.com>"
    for name, value in extra:
        request.add(name, value)
    return _final(sock, request, ("127.0.0.1", server.port))


def test_register_with_an_unsupported_require_gets_420(untrusted: ServerProcess) -> None:
    """RFC 3261 §10.3 step 2: a registrar refuses extensions it does not know with 420 and Unsupported."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        response = _register(sock, untrusted, "alice", n=1, extra=[("Require", "teleportation")])
    assert response.status == 420
    assert [str(v) for v in response.get_all("Unsupported")] == ["teleportation"]


def test_a_user_cannot_register_someone_elses_address(untrusted: ServerProcess) -> None:
    """RFC 3261 §10.3 step 4: credentials of bob do not let him change alice's bindings (403)."""
    add_user(untrusted.db, "alice@example.com", "wonderland")
    add_user(untrusted.db, "bob@example.com", "builder")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        challenge = _register(sock, untrusted, "alice", n=1)
        assert challenge.status == 401
        offer = pick_challenge(challenge)
        assert offer is not None
        credentials = digest_response(
            offer,
            method="REGISTER",
            uri="sip:example.com",
            username="bob",
            password="builder",
            cnonce="c",
            nc=1,
        )
        response = _register(sock, untrusted, "alice", n=2, extra=[("Authorization", credentials)])
    assert response.status == 403
