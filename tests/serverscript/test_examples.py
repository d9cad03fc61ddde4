"""The example server scripts in examples/, run as an admin would, against sipp and sipsak.

Every peer is a real program on loopback; each script runs in its own process
(`callscript run` or `python`) and is stopped with Ctrl-C, which must end it with 0.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.interop.harness import (
    REPO,
    SCENARIOS,
    Peers,
    add_user,
    bind,
    free_port,
    need,
    sipsak,
)
from tests.serverscript.harness import Phone, ScriptProcess, start_script

pytestmark = [pytest.mark.interop, pytest.mark.timeout(240)]

EXAMPLES = REPO / "examples"


@pytest.fixture
def peers(tmp_path: Path) -> Iterator[Peers]:
    running = Peers(tmp_path)
    yield running
    running.close()


def _run(tmp: Path, name: str, how: str = "callscript", **env: str) -> ScriptProcess:
    environment = {"SIP_HOST": "127.0.0.1", "SIP_DB": str(tmp / "callscript.db"), **env}
    return start_script(tmp, EXAMPLES / name, how=how, env=environment)


def _stopped(script: ScriptProcess) -> None:
    code = script.stop()
    assert code == 0, script.log_text()[-3000:]


def _expecting(tmp: Path, code: int) -> Path:
    """A sipp caller whose INVITE must end with ``code``."""
    path = tmp / f"uac_{code}.xml"
    path.write_text((SCENARIOS / "uac_final.xml.tmpl").read_text().format(code=code))
    return path


# -- Kamailio's default routing ----------------------------------------------------------


@pytest.fixture
def kamailio(tmp_path: Path) -> Iterator[ScriptProcess]:
    need("sipp")
    add_user(tmp_path / "callscript.db", "bob@example.com", "s3cret")
    script = _run(tmp_path, "kamailio_default.py")
    yield script
    _stopped(script)


def test_kamailio_answers_the_sipsak_keepalive(kamailio: ScriptProcess) -> None:
    """REQINIT: an OPTIONS for the server itself gets 200 Keepalive (sipsak -s)."""
    result = sipsak("-s", f"sip:127.0.0.1:{kamailio.port}", "-vv")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SIP/2.0 200 Keepalive" in result.stdout


def test_kamailio_max_forwards_zero_gets_483(kamailio: ScriptProcess) -> None:
    """RFC 3261 §16.3 step 3: sipsak -m 0 towards a user gets 483 before the script runs."""
    result = sipsak("-s", f"sip:nobody@127.0.0.1:{kamailio.port}", "-m", "0", "-vv")
    assert "SIP/2.0 483" in result.stdout, result.stdout + result.stderr


def test_kamailio_answers_oversized_requests_513(kamailio: ScriptProcess) -> None:
    """A 5 KB datagram passes the transport but not REQINIT's 4096-byte check; 70 KB over TCP stops at the transport."""
    phone = Phone()
    try:
        big = phone.request("MESSAGE", "sip:bob@example.com", body=b"x" * 5000)
        big["Content-Type"] = "text/plain"
        by_script = phone.ask(big, kamailio.port)
    finally:
        phone.close()
    assert (by_script.status, by_script.reason) == (513, "Message too big")
    huge = Phone().request("MESSAGE", "sip:bob@example.com", body=b"y" * 70_000)
    huge["Via"] = "SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKhuge"
    huge["Content-Type"] = "text/plain"
    with socket.create_connection(("127.0.0.1", kamailio.port), timeout=10) as stream:
        stream.sendall(bytes(huge))
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = stream.recv(65535)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"SIP/2.0 513 "), answer[:200]


@pytest.mark.parametrize("how", ["callscript", "python"])
def test_kamailio_registers_with_digest_then_calls_reach_the_contact_through_record_route(
    tmp_path: Path, peers: Peers, how: str
) -> None:
    """sipp registers (401, then MD5); lookup finds it for a call, whose BYE is loose-routed back."""
    need("sipp")
    add_user(tmp_path / "callscript.db", "bob@example.com", "s3cret")
    script = _run(tmp_path, "kamailio_default.py", how)
    try:
        port = free_port()
        register = peers.sipp(
            "register.xml",
            local_port=port,
            remote=f"127.0.0.1:{script.port}",
            service="bob",
            extra=["-au", "bob", "-ap", "s3cret"],
        )
        assert register.result() == 0, register.errors() + script.log_text()[-3000:]
        callee = peers.sipp("uas.xml", local_port=port, name="bob_phone")
        caller = peers.sipp(
            "uac.xml", local_port=free_port(), remote=f"127.0.0.1:{script.port}", service="bob"
        )
        assert caller.result() == 0, caller.errors() + script.log_text()[-3000:]
        assert callee.result() == 0, callee.errors()
        assert script.wait_for("REGISTER sip:example.com from sip:bob@example.com"), (
            script.log_text()
        )
        assert script.wait_for("INVITE sip:bob@example.com"), script.log_text()
        # The caller's BYE went to the Record-Route, was loose-routed and reached bob's phone.
        assert script.wait_for(f"BYE sip:callee@127.0.0.1:{port}"), script.log_text()
    finally:
        _stopped(script)


def test_kamailio_challenges_a_wrong_password_again(kamailio: ScriptProcess, peers: Peers) -> None:
    """A REGISTER whose credentials do not verify gets a new 401, never a 200."""
    register = peers.sipp(
        "register.xml",
        local_port=free_port(),
        remote=f"127.0.0.1:{kamailio.port}",
        service="bob",
        extra=["-au", "bob", "-ap", "wrong"],
    )
    assert register.result() != 0
    assert kamailio.wait_for("-> 401", count=2), kamailio.log_text()
    assert "REGISTER sip:example.com from sip:bob@example.com call-id" in kamailio.log_text()
    assert "-> 200" not in kamailio.log_text()


def test_kamailio_unknown_users_and_foreign_dialogs_get_404(kamailio: ScriptProcess) -> None:
    """LOCATION: nobody registered is 404 Not Found; WITHINDLG: a dialog not routed here is 404 Not here."""
    phone = Phone()
    try:
        unknown = phone.ask(phone.request("MESSAGE", "sip:carol@example.com"), kamailio.port)
        stray = phone.ask(
            phone.request("BYE", f"sip:127.0.0.1:{kamailio.port}", to_tag="t"), kamailio.port
        )
        incomplete = phone.ask(phone.request("MESSAGE", "sip:example.com"), kamailio.port)
    finally:
        phone.close()
    assert (unknown.status, unknown.reason) == (404, "Not Found")
    assert (stray.status, stray.reason) == (404, "Not here")
    assert (incomplete.status, incomplete.reason) == (484, "Address Incomplete")


def test_kamailio_without_trusted_networks_authenticates_our_callers_and_relays_nothing(
    tmp_path: Path,
) -> None:
    """AUTH: a caller claiming our domain gets 407; strangers calling strangers get 403 Not relaying."""
    script = _run(tmp_path, "kamailio_default.py", SIP_TRUSTED="")
    phone = Phone()
    try:
        ours = phone.request("MESSAGE", "sip:bob@example.com", from_uri="sip:alice@example.com")
        challenged = phone.ask(ours, script.port)
        relay = phone.request("MESSAGE", "sip:someone@example.net")
        refused = phone.ask(relay, script.port)
    finally:
        phone.close()
        _stopped(script)
    assert challenged.status == 407 and "Proxy-Authenticate" in challenged
    assert "algorithm=MD5" in str(challenged["Proxy-Authenticate"])
    assert (refused.status, refused.reason) == (403, "Not relaying")


# -- load balancer ---------------------------------------------------------------------


def _backends(peers: Peers, scenarios: list[tuple[str, int]]) -> list[int]:
    """Start one sipp UAS per (scenario, calls); return their ports."""
    ports = []
    for index, (scenario, calls) in enumerate(scenarios):
        port = free_port()
        peers.sipp(scenario, local_port=port, calls=calls, name=f"backend{index}")
        ports.append(port)
    return ports


def _balancer(tmp: Path, ports: list[int], **env: str) -> ScriptProcess:
    backends = ",".join(f"127.0.0.1:{port}" for port in ports)
    return _run(tmp, "load_balancer.py", SIP_BACKENDS=backends, **env)


def test_load_balancer_spreads_calls_round_robin_over_its_backends(
    tmp_path: Path, peers: Peers
) -> None:
    """12 calls over 3 sipp servers that each take exactly 4: every call completes, so each got its 4."""
    need("sipp")
    ports = _backends(peers, [("uas.xml", 4)] * 3)
    balancer = _balancer(tmp_path, ports)
    try:
        caller = peers.sipp(
            "uac.xml",
            local_port=free_port(),
            remote=f"127.0.0.1:{balancer.port}",
            service="bob",
            calls=12,
            rate=10,
        )
        assert caller.result() == 0, caller.errors() + balancer.log_text()[-3000:]
        for backend in peers.running[:3]:
            assert backend.result() == 0, backend.errors()
        log = balancer.log_text()
        assert [log.count(f"-> backend {i} ") for i in range(3)] == [4, 4, 4]
    finally:
        _stopped(balancer)


def test_load_balancer_moves_a_call_to_the_next_backend_on_503(
    tmp_path: Path, peers: Peers
) -> None:
    """RFC 3263 §4.3: the chosen server answers 503, the call goes on to the next one of the pool."""
    need("sipp")
    ports = _backends(peers, [("uas_503.xml", 2), ("uas.xml", 4)])
    balancer = _balancer(tmp_path, ports)
    try:
        caller = peers.sipp(
            "uac.xml",
            local_port=free_port(),
            remote=f"127.0.0.1:{balancer.port}",
            service="bob",
            calls=4,
            rate=5,
        )
        assert caller.result() == 0, caller.errors() + balancer.log_text()[-3000:]
        overloaded, healthy = peers.running[:2]
        assert overloaded.result() == 0, overloaded.errors()
        assert healthy.result() == 0, healthy.errors()
    finally:
        _stopped(balancer)


def test_stateless_load_balancer_dispatches_by_call_id(tmp_path: Path, peers: Peers) -> None:
    """RFC 3261 §16.11: stateless forwarding by Call-ID hash; the calls complete and spread over the pool."""
    need("sipp")
    ports = _backends(peers, [("uas.xml", 1000)] * 3)
    balancer = _balancer(tmp_path, ports, SIP_DISPATCH="call-id", SIP_STATELESS="1")
    try:
        caller = peers.sipp(
            "uac.xml",
            local_port=free_port(),
            remote=f"127.0.0.1:{balancer.port}",
            service="bob",
            calls=12,
            rate=10,
        )
        assert caller.result() == 0, caller.errors() + balancer.log_text()[-3000:]
        log = balancer.log_text()
        chosen = dict(re.findall(r"INVITE call-id (\S+) -> backend (\d)", log))
        assert len(chosen) == 12
        assert len(set(chosen.values())) >= 2
        assert log.count("forwarded statelessly") >= 12
    finally:
        _stopped(balancer)


# -- per-user scripts hosted like callscript serve ------------------------------------------

REJECTS = """
@basic.on('incoming')
def incoming(event):
    event.action.reject(code=603, reason='Decline')
"""

PROXIES = """
@basic.on('incoming')
def incoming(event):
    log('ringing', event.contacts)
    event.action.proxy(timeout=10)
"""


def _hosting(tmp: Path, how: str = "callscript", **env: str) -> ScriptProcess:
    scripts = tmp / "user_scripts" / "example.com"
    scripts.mkdir(parents=True)
    (scripts / "bob.py").write_text(REJECTS, encoding="utf-8")
    (scripts / "carol.py").write_text(PROXIES, encoding="utf-8")
    script = _run(tmp, "hosted_user_scripts.py", how, SIP_SCRIPTS=str(tmp / "user_scripts"), **env)
    assert script.wait_for("2 user scripts live"), script.log_text()
    return script


@pytest.mark.parametrize("how", ["callscript", "python"])
def test_hosted_scripts_reject_and_proxy_calls_like_callscript_serve(
    tmp_path: Path, peers: Peers, how: str
) -> None:
    """bob's script declines with 603; carol's proxies to her registered phone, which answers."""
    need("sipp")
    script = _hosting(tmp_path, how)
    try:
        remote = f"127.0.0.1:{script.port}"
        declined = peers.sipp(
            _expecting(tmp_path, 603), local_port=free_port(), remote=remote, service="bob"
        )
        assert declined.result() == 0, declined.errors() + script.log_text()[-3000:]
        phone_port = free_port()
        bind(
            tmp_path / "callscript.db", "sip:carol@example.com", f"sip:carol@127.0.0.1:{phone_port}"
        )
        callee = peers.sipp("uas.xml", local_port=phone_port, name="carol_phone")
        caller = peers.sipp("uac.xml", local_port=free_port(), remote=remote, service="carol")
        assert caller.result() == 0, caller.errors() + script.log_text()[-3000:]
        assert callee.result() == 0, callee.errors()
        assert script.wait_for("ringing"), script.log_text()
        assert script.wait_for(f"BYE sip:callee@127.0.0.1:{phone_port}"), script.log_text()
    finally:
        _stopped(script)


def test_hosted_scripts_narrowed_to_proxying_cannot_reject(tmp_path: Path, peers: Peers) -> None:
    """With user scripts allowed only to proxy, bob's reject is refused and default routing answers 404."""
    need("sipp")
    script = _hosting(tmp_path, SIP_USER_ACTIONS="proxy")
    try:
        caller = peers.sipp(
            _expecting(tmp_path, 404),
            local_port=free_port(),
            remote=f"127.0.0.1:{script.port}",
            service="bob",
        )
        assert caller.result() == 0, caller.errors() + script.log_text()[-3000:]
        assert "may not reject here" in script.log_text()
    finally:
        _stopped(script)


def test_hosted_registrar_challenges_then_stores_the_binding(tmp_path: Path, peers: Peers) -> None:
    """RFC 3261 §10.3 step 3: REGISTER gets 401, then the credentials store the binding (200)."""
    need("sipp")
    add_user(tmp_path / "callscript.db", "dave@example.com", "pw")
    script = _hosting(tmp_path, SIP_AUTH="MD5")  # sipp answers MD5 only
    try:
        register = peers.sipp(
            "register.xml",
            local_port=free_port(),
            remote=f"127.0.0.1:{script.port}",
            service="dave",
            extra=["-au", "dave", "-ap", "pw"],
        )
        assert register.result() == 0, register.errors() + script.log_text()[-3000:]
        assert script.wait_for("-> 401") and script.wait_for("-> 200"), script.log_text()
    finally:
        _stopped(script)
