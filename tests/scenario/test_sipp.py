"""Scenarios against sipp, both ways, directly and through `callscript serve`, via the command line.

Every peer is a real program on loopback: sipp (Debian's sip-tester) as UAS or UAC,
`callscript serve` as the proxy, and `python -m callscript.commands.scenario` as
the scenario runner (what `callscript scenario` runs).
"""

from __future__ import annotations

import csv
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.interop.harness import (
    Peers,
    ServerProcess,
    add_user,
    bind,
    free_port,
    need,
    start_server,
)
from tests.scenario.conftest import scenario_path

pytestmark = [pytest.mark.interop, pytest.mark.timeout(180)]

COMMAND = [sys.executable, "-m", "callscript.commands.scenario"]


@pytest.fixture
def peers(tmp_path: Path) -> Iterator[Peers]:
    need("sipp")
    running = Peers(tmp_path)
    yield running
    running.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    need("sipp")
    process = start_server(tmp_path, tail='[auth]\nalgorithms = ["SHA-256", "MD5"]')
    add_user(process.db, "alice@example.com", "secret")
    add_user(process.db, "bob@example.com", "bobpw")
    yield process
    assert process.stop() == 0, process.log_text()[-2000:]


def scenario(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the scenario command to the end."""
    return subprocess.run(
        [*COMMAND, *args, "--quiet"], capture_output=True, text=True, timeout=timeout, check=False
    )


class Background:
    """The scenario command running in the background (a UAS), its output in a file."""

    def __init__(self, tmp: Path, *args: str) -> None:
        self.out = tmp / f"scenario_{time.monotonic_ns()}.out"
        self.process = subprocess.Popen(
            [*COMMAND, *args, "--quiet"], stdout=self.out.open("wb"), stderr=subprocess.STDOUT
        )

    def text(self) -> str:
        return self.out.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"no {text!r} from the scenario:\n{self.text()}")
            time.sleep(0.02)

    def result(self, timeout: float = 60) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def sipp_builtin(tmp: Path, name: str, remote: str, *, calls: int, transport: str = "u1") -> int:
    """Run sipp's built-in scenario ``name`` (uac) against ``remote`` and return its exit code."""
    binary = need("sipp")
    port = free_port()
    result = subprocess.run(
        [
            binary, "-sn", name, "-i", "127.0.0.1", "-p", str(port), "-m", str(calls),
            "-t", transport, "-nostdin", "-nd", "-timeout", "60", "-timeout_error",
            "-trace_err", "-error_file", str(tmp / f"{name}_{port}_errors.log"),
            remote,
        ],
        capture_output=True,
        timeout=120,
        check=False,
        cwd=tmp,
    )  # fmt: skip
    return result.returncode


def test_uac_scenario_calls_sipp_uas_directly(peers: Peers) -> None:
    """A callscript UAC scenario completes a call with sipp's UAS, step by step."""
    port = free_port()
    callee = peers.sipp("uas.xml", local_port=port)
    result = scenario(str(scenario_path("uac_call")), "--target", f"sip:service@127.0.0.1:{port}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "calls 1  successful 1  failed 0" in result.stdout
    assert callee.result(30) == 0, callee.errors()


def test_load_mode_runs_50_calls_at_20_per_second_with_statistics(
    peers: Peers, tmp_path: Path
) -> None:
    """Load mode: every call passes, and the printed statistics agree with the CSV."""
    port = free_port()
    callee = peers.sipp("uas.xml", local_port=port, calls=50)
    out = tmp_path / "stats.csv"
    result = scenario(
        str(scenario_path("uac_call")),
        "--target", f"sip:service@127.0.0.1:{port}",
        "--calls", "50", "--rate", "20", "--concurrency", "10",
        "--csv", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "calls 50  successful 50  failed 0" in result.stdout
    assert "response time  p50" in result.stdout
    [row] = list(csv.DictReader(out.open()))
    assert (row["calls"], row["successful"], row["failed"]) == ("50", "50", "0")
    times = [
        float(row[k]) for k in ("rt_p50_ms", "rt_p90_ms", "rt_p95_ms", "rt_p99_ms", "rt_max_ms")
    ]
    assert times == sorted(times) and times[0] > 0
    assert float(row["rate_per_s"]) > 0
    assert callee.result(30) == 0, callee.errors()


def test_failure_names_the_step_and_what_sipp_sent(peers: Peers) -> None:
    """A busy sipp UAS makes the UAC scenario fail at the step that wanted the answer; exit code 1."""
    port = free_port()
    callee = peers.sipp("uas_busy.xml", local_port=port)
    result = scenario(str(scenario_path("uac_call")), "--target", f"sip:service@127.0.0.1:{port}")
    assert result.returncode == 1
    assert "1 x step 4 expected 100/180/183/200, got 486 Busy Here" in result.stdout
    assert callee.result(30) == 0, callee.errors()


def test_uac_scenario_cancels_a_ringing_sipp(peers: Peers) -> None:
    """RFC 3261 §9.2: sipp answers our CANCEL 200 and the INVITE 487; our transaction ACKs it."""
    port = free_port()
    callee = peers.sipp("uas_noanswer.xml", local_port=port)
    result = scenario(str(scenario_path("uac_cancel")), "--target", f"sip:service@127.0.0.1:{port}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert callee.result(30) == 0, callee.errors()


@pytest.mark.parametrize(("transport", "flag"), [("udp", "u1"), ("tcp", "t1")])
def test_sipp_uac_calls_a_uas_scenario_directly(
    peers: Peers, tmp_path: Path, transport: str, flag: str
) -> None:
    """sipp's built-in UAC completes calls against a callscript UAS scenario."""
    port = free_port()
    uas = Background(
        tmp_path,
        str(scenario_path("uas_answer")),
        "--listen", f"{transport}:127.0.0.1:{port}",
        "--calls", "3",
    )  # fmt: skip
    uas.wait_for("listening on")
    assert sipp_builtin(tmp_path, "uac", f"127.0.0.1:{port}", calls=3, transport=flag) == 0
    assert uas.result() == 0, uas.text()
    assert "calls 3  successful 3  failed 0" in uas.text()


def test_sipp_uac_reaches_a_registered_uas_scenario_through_serve(
    peers: Peers, server: ServerProcess, tmp_path: Path
) -> None:
    """sipp -> callscript serve -> a UAS scenario that registered itself with digest auth."""
    uas = Background(
        tmp_path,
        str(scenario_path("uas_answer")),
        "--aor", "sip:bob@example.com", "--password", "bobpw",
        "--proxy", f"sip:127.0.0.1:{server.port}",
        "--register", "300",
        "--calls", "2",
    )  # fmt: skip
    uas.wait_for("registered sip:bob@example.com")
    caller = peers.sipp(
        "uac.xml", local_port=free_port(), remote=f"127.0.0.1:{server.port}", service="bob", calls=2
    )
    assert caller.result(60) == 0, caller.errors() + caller.output()
    assert uas.result() == 0, uas.text()
    assert "calls 2  successful 2  failed 0" in uas.text()
    log = server.log_text()
    assert "INVITE sip:bob@example.com" in log and "BYE sip:bob@127.0.0.1" in log
    # Unregistered at the end.
    assert log.count("REGISTER sip:example.com from sip:bob@example.com") == 4


def test_uac_scenario_calls_sipp_through_serve(peers: Peers, server: ServerProcess) -> None:
    """A UAC scenario through the record-routing proxy to sipp: ACK and BYE follow the route set."""
    port = free_port()
    bind(server.db, "sip:bob@example.com", f"sip:callee@127.0.0.1:{port}")
    callee = peers.sipp("uas.xml", local_port=port)
    result = scenario(
        str(scenario_path("uac_call")),
        "--target", "sip:bob@example.com",
        "--aor", "sip:alice@example.com", "--password", "secret",
        "--proxy", f"sip:127.0.0.1:{server.port}",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert callee.result(30) == 0, callee.errors()
    assert "BYE sip:callee@127.0.0.1" in server.log_text()


def test_register_scenario_answers_the_registrars_challenge(server: ServerProcess) -> None:
    """RFC 3261 §22.2: a scenario's REGISTER gets 401 and is resent with credentials in the same step."""
    result = scenario(
        str(scenario_path("uac_register")),
        "--aor", "sip:alice@example.com", "--password", "secret",
        "--proxy", f"sip:127.0.0.1:{server.port}",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    log = server.log_text()
    assert log.count("REGISTER sip:example.com from sip:alice@example.com") == 4
    assert log.count("-> 401") == 2
