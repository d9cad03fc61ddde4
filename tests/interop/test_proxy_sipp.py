"""sipp UAC -> callscript serve -> sipp UAS, over UDP and TCP, and sipsak against the proxy.

Every peer here is a real program on loopback: the server is `callscript serve` in its own
process, the callers and callees are sipp, the health checks sipsak.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.interop.harness import (
    SCENARIOS,
    Peers,
    ServerProcess,
    Sipp,
    add_user,
    bind,
    free_port,
    need,
    sipsak,
    start_server,
)

pytestmark = [pytest.mark.interop, pytest.mark.timeout(180)]

TRANSPORTS = {"udp": ("u1", "udp"), "tcp": ("t1", "tcp")}


@pytest.fixture
def peers(tmp_path: Path) -> Iterator[Peers]:
    running = Peers(tmp_path)
    yield running
    running.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    need("sipp")
    # sipp 3.6 answers only MD5 challenges and reads only the first one.
    process = start_server(tmp_path, extra="ring_timeout = 2", tail='[auth]\nalgorithms = ["MD5"]')
    yield process
    code = process.stop()
    assert code == 0, process.log_text()[-2000:]


def _final_scenario(tmp: Path, code: int) -> Path:
    path = tmp / f"uac_{code}.xml"
    path.write_text((SCENARIOS / "uac_final.xml.tmpl").read_text().format(code=code))
    return path


def _callee(
    peers: Peers, server: ServerProcess, scenario: str, transport: str = "udp", calls: int = 1
) -> Sipp:
    port = free_port()
    flag, param = TRANSPORTS[transport]
    bind(server.db, "sip:bob@example.com", f"sip:callee@127.0.0.1:{port};transport={param}")
    return peers.sipp(scenario, local_port=port, calls=calls, transport=flag)


def _caller(
    peers: Peers,
    server: ServerProcess,
    scenario: str | Path,
    transport: str = "udp",
    **kwargs: object,
) -> Sipp:
    flag, _ = TRANSPORTS[transport]
    remote = f"127.0.0.1:{server.port}"
    return peers.sipp(
        scenario, local_port=free_port(), remote=remote, service="bob", transport=flag, **kwargs
    )


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_answered_call_completes_with_bye_through_the_record_routing_proxy(
    peers: Peers, server: ServerProcess, tmp_path: Path, transport: str
) -> None:
    """RFC 3261 §16.6 step 4: the proxy record-routes, so ACK and BYE come back through it."""
    callee = _callee(peers, server, "uas.xml", transport)
    caller = _caller(peers, server, "uac.xml", transport)
    assert caller.result() == 0, caller.errors() + server.log_text()[-3000:]
    assert callee.result() == 0, callee.errors()
    assert server.wait_for("INVITE sip:bob@example.com"), server.log_text()
    assert server.wait_for("BYE sip:callee@127.0.0.1"), server.log_text()


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_busy_callee_gives_the_caller_486(
    peers: Peers, server: ServerProcess, tmp_path: Path, transport: str
) -> None:
    """RFC 3261 §16.7 step 6: the only final response, 486, is the best one and reaches the caller."""
    callee = _callee(peers, server, "uas_busy.xml", transport)
    caller = _caller(peers, server, _final_scenario(tmp_path, 486), transport)
    assert caller.result() == 0, caller.errors() + server.log_text()[-3000:]
    assert callee.result() == 0, callee.errors()


def test_unanswered_call_ends_after_the_ring_timeout_and_the_branch_is_cancelled(
    peers: Peers, server: ServerProcess, tmp_path: Path
) -> None:
    """RFC 3261 §16.10: when the ring timeout fires the branch is CANCELled and the caller gets a final response."""
    callee = _callee(peers, server, "uas_noanswer.xml")
    caller = _caller(peers, server, _final_scenario(tmp_path, 408))
    assert caller.result() == 0, caller.errors() + server.log_text()[-3000:]
    # The callee's scenario only ends once it got the CANCEL and the ACK for its 487.
    assert callee.result() == 0, callee.errors()


def test_caller_cancel_while_ringing_ends_with_487(
    peers: Peers, server: ServerProcess, tmp_path: Path
) -> None:
    """RFC 3261 §16.10: a CANCEL from the caller gets 200 and the INVITE ends with the callee's 487."""
    callee = _callee(peers, server, "uas_noanswer.xml")
    caller = _caller(peers, server, "uac_cancel.xml")
    assert caller.result() == 0, caller.errors() + server.log_text()[-3000:]
    assert callee.result() == 0, callee.errors()


def test_200_retransmissions_and_the_late_ack_pass_through(
    peers: Peers, server: ServerProcess, tmp_path: Path
) -> None:
    """RFC 6026 §7.2: 2xx retransmissions are forwarded, and the ACK that finally comes is routed to the callee."""
    callee = _callee(peers, server, "uas.xml")
    caller = _caller(peers, server, "uac_retrans.xml")
    assert caller.result() == 0, caller.errors() + server.log_text()[-3000:]
    assert callee.result() == 0, callee.errors()
    # sipp's screen: "200 <----------  <messages> <retrans> <timeout> <unexpected>"
    row = next(
        line.split()
        for line in caller.output().splitlines()
        if line.split()[:2] == ["200", "<----------"]
    )
    assert int(row[-3]) >= 1, caller.output()


def test_hundred_calls_in_a_row_none_lost(
    peers: Peers, server: ServerProcess, tmp_path: Path
) -> None:
    """100 answered calls at 20 calls/s: every one completes (sipp exits 0 only when all succeeded)."""
    callee = _callee(peers, server, "uas.xml", calls=100)
    caller = _caller(peers, server, "uac.xml", calls=100, rate=20)
    assert caller.result(timeout=120) == 0, caller.errors() + caller.output()
    assert callee.result(timeout=30) == 0, callee.errors()
    assert server.wait_for("-> 200", count=200)  # 100 INVITEs and 100 BYEs


def test_registered_sipp_receives_calls_through_the_location_service(
    peers: Peers, server: ServerProcess, tmp_path: Path
) -> None:
    """RFC 3261 §10.3: sipp registers with digest auth, then a call to that user reaches its contact."""
    add_user(server.db, "bob@example.com", "s3cret")
    port = free_port()
    register = peers.sipp(
        "register.xml",
        local_port=port,
        remote=f"127.0.0.1:{server.port}",
        service="bob",
        extra=["-au", "bob", "-ap", "s3cret"],
    )
    assert register.result() == 0, register.errors() + server.log_text()[-3000:]
    callee = peers.sipp("uas.xml", local_port=port, name="registered_uas")
    caller = _caller(peers, server, "uac.xml")
    assert caller.result() == 0, caller.errors() + server.log_text()[-3000:]
    assert callee.result() == 0, callee.errors()
    assert server.wait_for("REGISTER sip:example.com")


def test_register_with_a_wrong_password_is_challenged_again(
    peers: Peers, server: ServerProcess, tmp_path: Path
) -> None:
    """RFC 3261 §10.3 step 3: the registrar challenges, and credentials that do not verify get a new 401."""
    add_user(server.db, "bob@example.com", "s3cret")
    register = peers.sipp(
        "register.xml",
        local_port=free_port(),
        remote=f"127.0.0.1:{server.port}",
        service="bob",
        extra=["-au", "bob", "-ap", "wrong"],
    )
    assert register.result() != 0
    assert server.wait_for("REGISTER sip:example.com from sip:bob@example.com")
    assert server.wait_for("-> 401")


def test_sipsak_options_to_the_proxy_itself_gets_200(server: ServerProcess) -> None:
    """OPTIONS addressed to the proxy is answered by the proxy (sipsak health check)."""
    result = sipsak("-s", f"sip:127.0.0.1:{server.port}", "-vv")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SIP/2.0 200" in result.stdout


def test_sipsak_max_forwards_zero_gets_483(server: ServerProcess) -> None:
    """RFC 3261 §16.3 step 3: a request with Max-Forwards 0 for someone else gets 483."""
    result = sipsak("-s", f"sip:nobody@127.0.0.1:{server.port}", "-m", "0", "-vv")
    assert "SIP/2.0 483" in result.stdout, result.stdout + result.stderr


def test_request_looping_back_to_the_proxy_gets_482(server: ServerProcess) -> None:
    """RFC 3261 §16.3 step 4: a request that comes back with our Via and the same loop hash gets 482."""
    uri = f"sip:loop@127.0.0.1:{server.port}"
    bind(server.db, "sip:loop@127.0.0.1", uri)
    result = sipsak("-s", uri, "-vv")
    assert "SIP/2.0 482" in result.stdout or "SIP/2.0 483" in result.stdout, (
        result.stdout + result.stderr
    )


@pytest.mark.parametrize(("user", "code"), [("nobody", 404), ("carol", 480)])
def test_calls_to_an_unknown_user_get_404_and_to_an_unregistered_user_480(
    peers: Peers, server: ServerProcess, tmp_path: Path, user: str, code: int
) -> None:
    """RFC 3261 §16.5: no binding means 480 for a known user and 404 for anyone else."""
    add_user(server.db, "carol@example.com", "pw")
    caller = peers.sipp(
        _final_scenario(tmp_path, code),
        local_port=free_port(),
        remote=f"127.0.0.1:{server.port}",
        service=user,
    )
    assert caller.result() == 0, caller.errors() + server.log_text()[-3000:]


def test_server_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    """Ctrl-C (SIGINT) stops `callscript serve` with exit code 0 and says so in the log."""
    process = start_server(tmp_path)
    time.sleep(0.2)
    assert process.stop() == 0
    assert "stopping" in process.log_text()
