"""Running server scripts: `callscript run SCRIPT.py` and `python SCRIPT.py`, start, stop, errors."""

from __future__ import annotations

import contextvars
import socket
import textwrap
from pathlib import Path

import pytest

from callscript import api
from callscript.errors import ConfigError
from callscript.serverscript.current import current_program
from callscript.serverscript.program import Program
from tests.interop.harness import free_port
from tests.serverscript.harness import Phone, start_script

pytestmark = pytest.mark.timeout(90)

HEADER = """\
import os, sys
from callscript.api import *

configure(domains=["example.com"], database="callscript.db")
"""

KEEPALIVE = (
    HEADER
    + """\
open(("127.0.0.1", int(os.environ["SIP_PORT"])))

@basic.on("incoming")
async def route(event):
    if event.is_self:
        await event.action.reply(200, "Keepalive")
    else:
        await event.action.reply(404, "Nobody " + " ".join(sys.argv[1:]))
"""
)


def _write(tmp: Path, name: str, source: str) -> Path:
    path = tmp / name
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


@pytest.mark.parametrize("how", ["callscript", "python"])
def test_script_serves_until_sigint_and_exits_0(tmp_path: Path, how: str) -> None:
    """Both ways of running a script serve requests; Ctrl-C stops it with exit status 0."""
    script = _write(tmp_path, "keepalive.py", KEEPALIVE + "run()\n")
    running = start_script(tmp_path, script, how=how)
    phone = Phone()
    try:
        response = phone.ask(
            phone.request("OPTIONS", f"sip:127.0.0.1:{running.port}"), running.port
        )
    finally:
        phone.close()
        code = running.stop()
    assert (response.status, response.reason) == (200, "Keepalive")
    assert code == 0, running.log_text()
    assert "stopping" in running.log_text()


def test_callscript_run_runs_a_script_that_never_calls_run_and_passes_its_arguments(
    tmp_path: Path,
) -> None:
    """run() is optional under callscript run; the words after the script are its sys.argv[1:]."""
    script = _write(tmp_path, "no_run.py", KEEPALIVE)
    running = start_script(tmp_path, script, args=["here", "today"])
    phone = Phone()
    try:
        response = phone.ask(phone.request("MESSAGE", "sip:bob@example.com"), running.port)
    finally:
        phone.close()
        code = running.stop()
    assert (response.status, response.reason) == (404, "Nobody here today")
    assert code == 0


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("basic.addEventListener('incoming', lambda e: None)\nrun()\n", "opens no listener"),
        ("open(('127.0.0.1', 5999))\nrun()\n", "no handler"),
        ("configure(colour='blue')\n", "unknown setting 'colour'"),
        ("open(('127.0.0.1', 5999), transports=['sctp'])\n", "unknown transport"),
        ("basic.addEventListener('outgoing', print)\n", "the event must be one of incoming"),
    ],
    ids=["no-listener", "no-handler", "unknown-setting", "bad-transport", "bad-event"],
)
@pytest.mark.parametrize("how", ["callscript", "python"])
def test_configuration_errors_exit_2_and_say_what_is_wrong(
    tmp_path: Path, source: str, message: str, how: str
) -> None:
    """A script that describes a server that cannot be built ends with status 2 and the reason."""
    script = _write(tmp_path, "bad.py", HEADER + source)
    running = start_script(tmp_path, script, how=how, wait=False)
    assert running.process.wait(timeout=60) == 2, running.log_text()
    assert message in running.log_text()


def test_a_script_that_fails_before_serving_exits_1_with_its_traceback(tmp_path: Path) -> None:
    """An exception in the script's own code shows where it happened; status 1."""
    script = _write(tmp_path, "broken.py", HEADER + "def f():\n    return 1 / 0\nf()\n")
    running = start_script(tmp_path, script, wait=False)
    assert running.process.wait(timeout=60) == 1
    log = running.log_text()
    assert "ZeroDivisionError" in log and "broken.py" in log


def test_a_port_already_taken_exits_1(tmp_path: Path) -> None:
    """The server cannot listen: 'cannot start' is logged and the status is 1."""
    port = free_port()
    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    taken.bind(("127.0.0.1", port))
    try:
        script = _write(tmp_path, "taken.py", KEEPALIVE + "run()\n")
        running = start_script(tmp_path, script, env={"SIP_PORT": str(port)}, wait=False)
        assert running.process.wait(timeout=60) == 1
    finally:
        taken.close()
    assert "cannot start" in running.log_text()


def test_each_context_has_its_own_program_and_api_acts_on_it() -> None:
    """The current program lives in a ContextVar: two contexts never share one."""

    def describe(port: int) -> Program:
        api.open(("127.0.0.1", port))
        api.configure(domains=["Example.COM"], threads=4)
        return current_program()

    first = contextvars.Context().run(describe, 5071)
    second = contextvars.Context().run(describe, 5072)
    assert first is not second
    assert [listen.port for listen in first.listens] == [5071, 5071]
    assert [listen.transport for listen in second.listens] == ["udp", "tcp"]
    assert first.config().domains == ("example.com",) and first.threads == 4


def test_open_with_an_empty_host_listens_on_every_ipv4_address() -> None:
    """open(('', 5060)) is UDP and TCP on 0.0.0.0:5060."""
    program = Program()
    program.open(("", 5060))
    assert [(x.transport, x.host, x.port) for x in program.listens] == [
        ("udp", "0.0.0.0", 5060),
        ("tcp", "0.0.0.0", 5060),
    ]
    with pytest.raises(ConfigError):
        program.open(("127.0.0.1", 70000))
    with pytest.raises(ConfigError):
        program.configure(threads=0)


def test_uri_parses_like_the_per_user_api_and_refuses_garbage() -> None:
    """URI('sip:alice@example.com') has user, host and aor; bad text raises ValueError."""
    uri = api.URI("sip:alice@example.com;transport=tcp")
    assert (uri.user, uri.host, uri.aor) == ("alice", "example.com", "sip:alice@example.com")
    assert api.URI(uri) is uri
    with pytest.raises(ValueError):
        api.URI("not a uri")
