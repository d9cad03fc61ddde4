"""Per-user scripts steering real calls: sipp UAC -> callscript serve -> sipp UAS (and voicemail).

The scripts live in a scripts directory the server watches; the sandbox runs them in its worker
processes; every peer is a real program on loopback.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from callscript.sip.message import Request, Response, parse_message
from callscript.store.sqlite import SqliteStore
from tests.interop.harness import SCENARIOS, Peers, ServerProcess, bind, free_port, start_server

pytestmark = [pytest.mark.interop, pytest.mark.timeout(240)]

PROXY_THEN_VOICEMAIL = """
def incoming(event):
    if event.action.proxy(timeout=2) in ('busy', 'noanswer', 'failure'):
        event.action.voicemail()

basic.addEventListener('incoming', incoming)
"""


class Setup:
    """A server with a scripts directory and a voicemail sipp, plus helpers to call it."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.scripts = tmp / "user_scripts" / "example.com"
        self.scripts.mkdir(parents=True)
        self.voicemail_port = free_port()
        self.peers = Peers(tmp)
        voicemail = f"sip:vm-{{user}}@127.0.0.1:{self.voicemail_port}"
        tail = f'[scripts]\ndir = "{tmp / "user_scripts"}"\nvoicemail = "{voicemail}"'
        self.server: ServerProcess = start_server(tmp, tail=tail)

    def write(self, user: str, source: str) -> None:
        """Save a script the way an editor does: a temporary file renamed over the old one."""
        temporary = self.scripts / f".{user}.py.tmp"
        temporary.write_text(source)
        temporary.replace(self.scripts / f"{user}.py")

    def caller(self, scenario: str | Path, user: str = "bob", **kwargs: object):  # type: ignore[no-untyped-def]
        return self.peers.sipp(
            scenario,
            local_port=free_port(),
            remote=f"127.0.0.1:{self.server.port}",
            service=user,
            **kwargs,
        )

    def callee(self, scenario: str, user: str = "bob", **kwargs: object):  # type: ignore[no-untyped-def]
        port = free_port()
        bind(self.server.db, f"sip:{user}@example.com", f"sip:{user}@127.0.0.1:{port}")
        return self.peers.sipp(scenario, local_port=port, **kwargs)

    def voicemail(self, scenario: str = "uas.xml"):  # type: ignore[no-untyped-def]
        return self.peers.sipp(scenario, local_port=self.voicemail_port, name="voicemail")

    def request(self, user: str, method: str = "MESSAGE") -> Response:
        """Send one request to ``user`` from a plain socket and return the final response."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(10)
            port = sock.getsockname()[1]
            stamp = f"{time.monotonic_ns()}"
            request = Request(
                method,
                f"sip:{user}@example.com",
                [
                    ("Via", f"SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{stamp};rport"),
                    ("Max-Forwards", 70),
                    ("From", f"<sip:tester@example.org>;tag={stamp}"),
                    ("To", f"<sip:{user}@example.com>"),
                    ("Call-ID", f"{stamp}@test"),
                    ("CSeq", f"1 {method}"),
                    ("Contact", f"<sip:tester@127.0.0.1:{port}>"),
                ],
            )
            sock.sendto(bytes(request), ("127.0.0.1", self.server.port))
            while True:
                message = parse_message(sock.recv(65535))
                assert isinstance(message, Response)
                if message.status >= 200:
                    return message

    def audit_kinds(self, owner: str) -> list[str]:
        store = SqliteStore(str(self.server.db))
        try:
            return [entry.kind for entry in store.audit.entries(owner=owner)]
        finally:
            store.close()

    def close(self) -> None:
        self.peers.close()
        assert self.server.stop() == 0, self.server.log_text()[-3000:]


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    running = Setup(tmp_path)
    yield running
    running.close()


def _wait_live(setup: Setup, version_count: int = 1) -> None:
    assert setup.server.wait_for("is live", count=version_count, timeout=10), (
        setup.server.log_text()[-2000:]
    )


def test_busy_callee_sends_the_call_to_voicemail(setup: Setup) -> None:
    """The script proxies; the callee answers 486; the script's voicemail() reaches the voicemail box."""
    setup.write("bob", PROXY_THEN_VOICEMAIL)
    _wait_live(setup)
    callee = setup.callee("uas_busy.xml")
    voicemail = setup.voicemail()
    caller = setup.caller("uac.xml")
    assert caller.result() == 0, caller.errors() + setup.server.log_text()[-3000:]
    assert callee.result() == 0, callee.errors()
    assert voicemail.result() == 0, voicemail.errors()


def test_unanswered_callee_is_cancelled_after_the_script_timeout_then_voicemail(
    setup: Setup,
) -> None:
    """proxy(timeout=2) ends with 'noanswer': the ringing branch is CANCELled, voicemail answers."""
    setup.write("bob", PROXY_THEN_VOICEMAIL)
    _wait_live(setup)
    callee = setup.callee("uas_noanswer.xml")
    voicemail = setup.voicemail()
    caller = setup.caller("uac.xml")
    assert caller.result() == 0, caller.errors() + setup.server.log_text()[-3000:]
    assert callee.result() == 0, callee.errors()  # it got the CANCEL
    assert voicemail.result() == 0, voicemail.errors()


def test_answering_callee_completes_the_call_with_bye(setup: Setup) -> None:
    """proxy() returns 'success': the call is up and ends with BYE through the proxy."""
    setup.write("bob", PROXY_THEN_VOICEMAIL)
    _wait_live(setup)
    callee = setup.callee("uas.xml")
    caller = setup.caller("uac.xml")
    assert caller.result() == 0, caller.errors() + setup.server.log_text()[-3000:]
    assert callee.result() == 0, callee.errors()


def test_redirect_gives_the_caller_302_with_the_scripts_contact(setup: Setup) -> None:
    """redirect(location=...) answers 302 with the script's target as Contact."""
    setup.write(
        "bob",
        "def h(event):\n    event.action.redirect(location='sip:bob@desk.example.com')\n"
        "basic.addEventListener('incoming', h)\n",
    )
    _wait_live(setup)
    response = setup.request("bob", "INVITE")
    assert response.status == 302
    assert [str(c.uri) for c in response.contacts] == ["sip:bob@desk.example.com"]


def test_reject_sends_the_scripts_code_and_reason(setup: Setup) -> None:
    """reject(code=603, reason=...) reaches the caller as written."""
    setup.write(
        "bob",
        "def h(event):\n    event.action.reject(code=603, reason='Not Today')\nbasic.addEventListener('incoming', h)\n",
    )
    _wait_live(setup)
    response = setup.request("bob", "INVITE")
    assert (response.status, response.reason) == (603, "Not Today")


def test_a_hostile_script_hurts_only_its_owner_and_is_audited(setup: Setup) -> None:
    """Infinite loop, memory bomb, syntax error: other users' calls all succeed; the owner gets the
    fallback (default routing: 404 here) and the audit log records each event."""
    setup.write(
        "bob",
        "def h(event):\n    event.action.reject(code=603, reason='Declined')\nbasic.addEventListener('incoming', h)\n",
    )
    _wait_live(setup)
    assert setup.request("bob").status == 603
    # Steady load on alice, who has no script: 150 calls at 10 calls/s.
    callee = setup.callee("uas.xml", user="alice", calls=150)
    load = setup.caller("uac.xml", user="alice", calls=150, rate=10)
    time.sleep(1)
    setup.write(
        "bob",
        "def h(event):\n    while True:\n        pass\nbasic.addEventListener('incoming', h)\n",
    )
    _wait_live(setup, 2)
    assert setup.request("bob").status == 404
    setup.write(
        "bob", "def h(event):\n    x = 'a' * 10 ** 10\nbasic.addEventListener('incoming', h)\n"
    )
    _wait_live(setup, 3)
    assert setup.request("bob").status == 404
    setup.write("bob", "def h(event)\n    pass\n")
    assert setup.server.wait_for("script rejected", timeout=10)
    assert setup.request("bob").status == 404  # the memory bomb is still the live version
    assert load.result(timeout=120) == 0, load.errors() + load.output()
    assert callee.result(timeout=30) == 0, callee.errors()
    kinds = setup.audit_kinds("sip:bob@example.com")
    assert "reject" in kinds, kinds
    assert sum(kind.startswith("violation:") for kind in kinds) >= 3, kinds


def test_a_script_saved_on_disk_changes_the_next_call(setup: Setup) -> None:
    """Hot reload: after an editor's atomic save the next call follows the new version."""
    setup.write(
        "bob",
        "def h(event):\n    event.action.reject(code=486)\nbasic.addEventListener('incoming', h)\n",
    )
    _wait_live(setup)
    assert setup.request("bob").status == 486
    setup.write(
        "bob",
        "def h(event):\n    event.action.reject(code=600)\nbasic.addEventListener('incoming', h)\n",
    )
    deadline = time.monotonic() + 10
    while setup.request("bob").status != 600:
        assert time.monotonic() < deadline, "the new version never took effect"
        time.sleep(0.05)
    setup.write("bob", "this is not python")
    assert setup.server.wait_for("script rejected", timeout=10)
    assert setup.request("bob").status == 600  # the broken save left the previous version live


def test_scenarios_folder_has_the_scripts_used_here() -> None:
    """The sipp scenarios these tests run exist (a renamed file would only show up as a sipp error)."""
    for name in ("uac.xml", "uas.xml", "uas_busy.xml", "uas_noanswer.xml"):
        assert (SCENARIOS / name).is_file()
