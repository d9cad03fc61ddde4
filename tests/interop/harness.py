"""Real peers for interop tests: a `callscript serve` process, sipp and sipsak on loopback."""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SCENARIOS = Path(__file__).parent / "scenarios"
REPO = Path(__file__).resolve().parents[2]


def need(tool: str) -> str:
    """The path of ``tool``, or skip saying how to get it (``./dev test`` installs it)."""
    path = shutil.which(tool)
    if path is None:
        pytest.skip(
            f"{tool} is not installed: run ./dev test (it installs sip-tester, sipsak, dnsmasq)"
        )
    return path


def free_port(kinds: tuple[int, ...] = (socket.SOCK_DGRAM, socket.SOCK_STREAM)) -> int:
    """A port free for UDP and TCP on 127.0.0.1, below 10000 (sipsak cuts 5-digit ports)."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(5100, 9999)
        socks = []
        try:
            for kind in kinds:
                sock = socket.socket(socket.AF_INET, kind)
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
        return port
    raise RuntimeError("no free port")


@dataclass
class ServerProcess:
    """A `callscript serve` subprocess."""

    port: int
    db: Path
    log: Path
    process: subprocess.Popen[bytes]
    config: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, text: str, *, count: int = 1, timeout: float = 10) -> bool:
        """Wait until ``text`` appears ``count`` times in the log (the server logs after it sends)."""
        deadline = time.monotonic() + timeout
        while self.log_text().count(text) < count:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def stop(self) -> int:
        """Ctrl-C the server and return its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_server(
    tmp: Path,
    *,
    extra: str = "",
    domains: tuple[str, ...] = ("example.com",),
    listen: list[str] | None = None,
    tail: str = "",
) -> ServerProcess:
    """Start `callscript serve` (UDP and TCP on 127.0.0.1 unless ``listen`` says) with a fresh database.

    ``extra`` goes into the [server] section; ``tail`` after it (other sections).
    """
    port = free_port()
    listen = listen or [f"udp:127.0.0.1:{port}", f"tcp:127.0.0.1:{port}"]
    port = int(listen[0].rsplit(":", 1)[1])
    addresses = ", ".join(f'"{item}"' for item in listen)
    # The management API stays off unless a test asks for it (it would all want port 8080).
    web = "" if "[web]" in tail else "[web]\nenabled = false"
    db = tmp / "callscript.db"
    config = tmp / "callscript.toml"
    quoted = ", ".join(f'"{d}"' for d in domains)
    config.write_text(
        f"""
[server]
listen = [{addresses}]
domains = [{quoted}]
database = "{db}"
uvloop = false
{extra}
{tail}
{web}
"""
    )
    log = tmp / "server.log"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [sys.executable, "-m", "callscript.cli", "serve", "--config", str(config), "-v"],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        cwd=tmp,
        env=env,
    )
    server = ServerProcess(port, db, log, process, config)
    deadline = time.monotonic() + 20
    while "serving domains" not in server.log_text():
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"callscript serve did not start:\n{server.log_text()}")
        time.sleep(0.05)
    return server


@dataclass
class Sipp:
    """One sipp run; ``result()`` waits for it."""

    args: list[str]
    process: subprocess.Popen[bytes]
    workdir: Path
    name: str
    stats: dict[str, str] = field(default_factory=dict)

    def result(self, timeout: float = 60) -> int:
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return self.process.returncode

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def errors(self) -> str:
        path = self.workdir / f"{self.name}_errors.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def output(self) -> str:
        path = self.workdir / f"{self.name}.out"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def sipp(
    workdir: Path,
    scenario: str | Path,
    *,
    local_port: int,
    remote: str | None = None,
    service: str | None = None,
    calls: int = 1,
    rate: float | None = None,
    transport: str = "u1",
    extra: list[str] | None = None,
    name: str | None = None,
    domain: str = "example.com",
) -> Sipp:
    """Start sipp with ``scenario`` (a file in tests/interop/scenarios or a path)."""
    binary = need("sipp")
    path = Path(scenario) if Path(scenario).is_absolute() else SCENARIOS / scenario
    name = name or f"{Path(path).stem}_{local_port}"
    domains = workdir / f"domain_{name}.csv"
    domains.write_text(f"SEQUENTIAL\n{domain};\n")
    args = [
        binary,
        "-sf", str(path),
        "-i", "127.0.0.1",
        "-p", str(local_port),
        "-m", str(calls),
        "-t", transport,
        "-inf", str(domains),
        "-nostdin",
        "-trace_err", "-error_file", str(workdir / f"{name}_errors.log"),
        "-timeout", "60",
        "-timeout_error",
        "-max_recv_loops", "1000",
        "-nd",
    ]  # fmt: skip
    if rate is not None:
        args += ["-r", str(rate), "-rp", "1000"]
    if service:
        args += ["-s", service]
    args += extra or []
    if remote:
        args.append(remote)
    out = (workdir / f"{name}.out").open("wb")
    process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=workdir)
    return Sipp(args, process, workdir, name)


def wait_bound(port: int, *, udp: bool = True, timeout: float = 10) -> bool:
    """Wait until something (a sipp UAS) has bound ``port`` on 127.0.0.1."""
    deadline = time.monotonic() + timeout
    kind = socket.SOCK_DGRAM if udp else socket.SOCK_STREAM
    while time.monotonic() < deadline:
        sock = socket.socket(socket.AF_INET, kind)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
        finally:
            sock.close()
        time.sleep(0.02)
    return False


class Peers:
    """The sipp processes of one test, all stopped when the test ends."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.running: list[Sipp] = []

    def sipp(self, scenario: str | Path, **kwargs: object) -> Sipp:
        """Start sipp (see :func:`sipp`); a UAS (no remote) is waited for until its port is bound."""
        run = sipp(self.workdir, scenario, **kwargs)  # type: ignore[arg-type]
        self.running.append(run)
        if kwargs.get("remote") is None:
            wait_bound(
                int(kwargs["local_port"]), udp=str(kwargs.get("transport", "u1")).startswith("u")
            )  # type: ignore[call-overload]
        return run

    def close(self) -> None:
        for run in self.running:
            run.stop()


def sipsak(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run sipsak and capture its output."""
    binary = need("sipsak")
    return subprocess.run(
        [binary, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def add_user(db: Path, user: str, password: str) -> None:
    """Create an account with the real command line, as an operator would."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "callscript.cli",
            "users",
            "add",
            user,
            "--password",
            password,
            "--db",
            str(db),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def bind(db: Path, aor: str, contact: str, *, q: float = 1.0, expires: float = 600) -> None:
    """Register ``contact`` for ``aor`` directly in the location store."""
    from callscript.store.base import Binding
    from callscript.store.sqlite import SqliteStore

    store = SqliteStore(str(db))
    try:
        store.location.save(
            Binding(
                aor=aor,
                contact=contact,
                expires_at=time.time() + expires,
                call_id=f"seed-{contact}",
                cseq=1,
                q=q,
            )
        )
    finally:
        store.close()
