"""The RFC 4475 and RFC 5118 torture messages sent to a running `callscript serve` over UDP and TCP.

Each request gets the answer its expectations.tsv row allows (or none), responses are never
answered or forwarded, and after the whole corpus the server still answers OPTIONS.
"""

from __future__ import annotations

import csv
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.interop.harness import REPO, ServerProcess, sipsak, start_server

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]


def _corpus() -> Path:
    root = Path(os.environ.get("CALLSCRIPT_CONFORMANCE", REPO.parent / "shared" / "conformance"))
    if not (root / "rfc4475" / "expectations.tsv").exists():
        pytest.skip(
            f"conformance corpus not found at {root}: set CALLSCRIPT_CONFORMANCE to the folder"
        )
    return root


def _rows(folder: Path) -> list[dict[str, str]]:
    with (folder / "expectations.tsv").open(newline="") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = start_server(tmp_path_factory.mktemp("torture"))
    yield process
    assert process.stop() == 0


def _reply_port(data: bytes) -> int:
    """Where RFC 3261 §18.2.2 sends the answer: the source address, the top Via's port (5060)."""
    for line in data.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() in (b"via", b"v"):
            sent_by = value.split(b";")[0].split(b",")[0].split()[-1]
            _host, _, port = sent_by.rpartition(b":")
            if port.isdigit() and not port.endswith(b"]"):
                return int(port)
            return 5060
    return 5060


def _udp_exchange(port: int, data: bytes, wait: float = 0.6) -> bytes | None:
    """Send ``data`` as one datagram; collect the answer on our socket or at the Via's port."""
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as via_sock,
    ):
        try:
            via_sock.bind(("127.0.0.1", _reply_port(data)))
        except OSError:
            pytest.skip("the Via port of the torture messages (5060) is busy on 127.0.0.1")
        sock.settimeout(wait)
        via_sock.settimeout(wait)
        sock.sendto(data, ("127.0.0.1", port))
        for receiver in (via_sock, sock):
            try:
                return receiver.recv(65535)
            except TimeoutError:
                continue
        return None


def _transaction_key(data: bytes) -> bytes:
    """Top Via (branch and sent-by) and CSeq method, roughly as RFC 3261 §17.2.3 matches."""
    via = cseq = b""
    for line in data.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name in (b"via", b"v") and not via:
            via = value.split(b",")[0].strip()
        elif name == b"cseq":
            cseq = value.split()[-1] if value.split() else b""
    return via + b"|" + cseq


def _status(reply: bytes) -> int:
    return int(reply.split(b" ", 2)[1])


# What a proxy may answer to each request of RFC 4475 that it cannot route, beyond its row.
_ROUTING_ANSWERS = {100, 403, 404, 405, 416, 480, 481, 482, 483, 501}


def test_every_rfc4475_message_gets_an_allowed_answer_over_udp(server: ServerProcess) -> None:
    """RFC 3261 §16.3 step 1: malformed requests get 4xx/5xx with a reason; responses get nothing."""
    folder = _corpus() / "rfc4475"
    problems = []
    seen: set[bytes] = set()
    for row in _rows(folder):
        data = (folder / f"{row['name']}.dat").read_bytes()
        # Several files reuse one Via branch and sent-by (unkscm/novelsc, cparam01/02...): to the
        # server the later one would be a retransmission of the earlier (RFC 3261 §17.2.3),
        # answered to the first sender. Such a file gets a branch of its own, nothing else changes.
        key = _transaction_key(data)
        if key in seen:
            data = data.replace(b"branch=z9hG4bK", b"branch=z9hG4bKfresh", 1)
        seen.add(key)
        reply = _udp_exchange(server.port, data)
        is_response = data.startswith(b"SIP/2.0")
        if is_response:
            if reply is not None:
                problems.append(f"{row['name']}: a response was answered: {reply[:60]!r}")
            continue
        if reply is None:
            # No Call-ID (insuf), no header end (baddn, test), unusable lengths: nothing to echo.
            expected = row["server_answer"].startswith(("400", "505", "416", "420", "483", "501"))
            if expected and row["name"] not in ("baddn", "ncl", "test", "clerr", "insuf"):
                problems.append(f"{row['name']}: no answer, expected {row['server_answer'][:40]}")
            continue
        status = _status(reply)
        if row["parser"] == "reject" and row.get("liberal_ok") == "no" and status < 400:
            problems.append(f"{row['name']}: invalid message accepted with {status}")
        if row["server_answer"].startswith("505") and status != 505:
            problems.append(f"{row['name']}: expected 505, got {status}")
        if row["name"] == "zeromf" and status != 483:
            problems.append(f"zeromf: expected 483, got {status}")
        if row["name"] == "unkscm" and status != 416:
            problems.append(f"unkscm: expected 416, got {status}")
        if row["name"] == "bext01" and status != 420:
            problems.append(f"bext01: expected 420, got {status}")
        if status == 400 and b"Bad Request (" not in reply.split(b"\r\n", 1)[0]:
            problems.append(
                f"{row['name']}: 400 without a reason naming the problem: {reply[:80]!r}"
            )
    assert not problems, "\n".join(problems)
    # The server is still serving.
    assert "SIP/2.0 200" in sipsak("-s", f"sip:127.0.0.1:{server.port}", "-vv").stdout


def test_rfc5118_ipv6_messages_are_parsed_and_answered(server: ServerProcess) -> None:
    """RFC 5118: IPv6 references in the Request-URI, Via and Contact are handled; ipv6-bad gets 400."""
    folder = _corpus() / "rfc5118"
    seen: set[bytes] = set()
    for row in _rows(folder):
        data = (folder / "wire" / f"{row['name']}.dat").read_bytes()
        key = _transaction_key(data)
        if key in seen:
            # Same branch and sent-by as an earlier file: a retransmission to the server.
            data = data.replace(b"branch=z9hG4bK", b"branch=z9hG4bKfresh", 1)
        seen.add(key)
        reply = _udp_exchange(server.port, data)
        if row["parser"] == "reject":
            assert reply is not None and _status(reply) == 400, row["name"]
        elif reply is not None:
            assert _status(reply) != 400, (row["name"], reply[:200])


@pytest.mark.parametrize("name", ["clerr", "ncl", "mcl01"])
def test_framing_errors_over_tcp_close_the_connection_or_answer(
    server: ServerProcess, name: str
) -> None:
    """RFC 3261 §18.3: bad Content-Length on a stream is answered or closed, never waited on forever."""
    data = (_corpus() / "rfc4475" / f"{name}.dat").read_bytes()
    with socket.create_connection(("127.0.0.1", server.port), timeout=40) as sock:
        sock.sendall(data)
        received = b""
        while True:
            chunk = sock.recv(65535)
            if not chunk:
                break  # closed by the server
            received += chunk
            if b"\r\n\r\n" in received:
                break
    assert received == b"" or received.startswith(b"SIP/2.0 4"), received[:100]
