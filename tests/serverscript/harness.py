"""Server scripts under test: in this process (a server thread) or as `callscript run` / `python`.

``serving(...)`` runs a :class:`Program` with a handler defined in the test on a
real loopback port; :class:`Phone` is a plain UDP socket that sends requests and
answers them; ``start_script(...)`` runs a script file in its own process.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from callscript import cli
from callscript.serverscript.program import Program
from callscript.serverscript.router import Handler
from callscript.sip.message import Request, Response, parse_message
from callscript.sip.reply import make_response
from tests.interop.harness import REPO, free_port

READY = "routes every request"


@dataclass
class Served:
    """A program serving in a thread of this process."""

    program: Program
    port: int
    loop: asyncio.AbstractEventLoop


@contextmanager
def serving(
    tmp: Path, handler: Handler, *, port: int | None = None, **settings: object
) -> Iterator[Served]:
    """Run ``handler`` as the routing of a server on 127.0.0.1 (UDP and TCP) until the block ends."""
    port = port or free_port()
    program = Program("test-script")
    program.open(("127.0.0.1", port))
    program.configure(database=str(tmp / "callscript.db"), domains=["example.com"], **settings)
    program.add_listener("incoming", handler)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    result: list[int] = []
    failure: list[BaseException] = []

    def main() -> None:
        try:
            result.append(loop.run_until_complete(program.serve(stop)))
        except BaseException as exc:  # reported by the test below
            failure.append(exc)

    thread = threading.Thread(target=main, name="server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not program.addresses:
        assert not failure and not result, f"the server did not start: {failure or result}"
        assert time.monotonic() < deadline, "the server did not start in 20 s"
        time.sleep(0.01)
    try:
        yield Served(program, port, loop)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=20)
        loop.close()
    assert not failure, failure
    assert result == [0]


class Phone:
    """A UDP endpoint on 127.0.0.1 that sends requests and answers the ones it gets."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(10)
        self.port: int = self.sock.getsockname()[1]
        self._count = 0

    @property
    def contact(self) -> str:
        """A SIP URI reaching this phone."""
        return f"sip:phone@127.0.0.1:{self.port}"

    def request(
        self,
        method: str,
        uri: str,
        *,
        from_uri: str = "sip:tester@example.org",
        headers: list[tuple[str, object]] | None = None,
        body: bytes = b"",
        to_tag: str | None = None,
    ) -> Request:
        """A request from this phone, new branch, tag and Call-ID each time."""
        self._count += 1
        stamp = f"{time.monotonic_ns()}x{self._count}"
        to = f"<{uri}>" + (f";tag={to_tag}" if to_tag else "")
        request = Request(
            method,
            uri,
            [
                ("Via", f"SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bK{stamp};rport"),
                ("Max-Forwards", 70),
                ("From", f"<{from_uri}>;tag={stamp}"),
                ("To", to),
                ("Call-ID", f"{stamp}@test"),
                ("CSeq", f"1 {method}"),
                ("Contact", f"<{self.contact}>"),
                *(headers or []),
            ],
            body,
        )
        return request

    def send(self, message: Request | Response, port: int, *, raw: bytes | None = None) -> None:
        """Send ``message`` (or ``raw`` bytes) to 127.0.0.1:``port``."""
        self.sock.sendto(raw if raw is not None else bytes(message), ("127.0.0.1", port))

    def receive(self) -> Request | Response:
        """The next message (10 s at most)."""
        return parse_message(self.sock.recvfrom(65535)[0])

    def final(self) -> Response:
        """The next final response, skipping provisional ones."""
        while True:
            message = self.receive()
            if isinstance(message, Response) and message.status >= 200:
                return message

    def ask(self, request: Request, port: int) -> Response:
        """Send ``request`` and return its final response."""
        self.send(request, port)
        return self.final()

    def answer(self, status: int, *, to_tag: str = "callee") -> Request:
        """Take the next request and answer it with ``status`` (to the top Via's port)."""
        message = self.receive()
        assert isinstance(message, Request), message
        response = make_response(message, status, to_tag=to_tag)
        via = message.top_via
        self.sock.sendto(bytes(response), ("127.0.0.1", via.rport or via.port or 5060))
        return message

    def close(self) -> None:
        self.sock.close()


# -- scripts in their own process --------------------------------------------------------


@dataclass
class ScriptProcess:
    """A server script run by `callscript run` or `python`, logging to a file."""

    process: subprocess.Popen[bytes]
    log: Path
    port: int

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, text: str, *, count: int = 1, timeout: float = 10) -> bool:
        """Wait until ``text`` is in the log ``count`` times."""
        deadline = time.monotonic() + timeout
        while self.log_text().count(text) < count:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def stop(self) -> int:
        """Ctrl-C the script and return its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def run_command() -> list[str]:
    """`callscript run` through the real CLI once registered, else the command module itself."""
    if "run" in cli.COMMANDS:
        return [sys.executable, "-m", "callscript.cli", "run"]
    return [sys.executable, "-m", "callscript.commands.run"]


def start_script(
    tmp: Path,
    script: Path,
    *,
    how: str = "callscript",
    env: dict[str, str] | None = None,
    args: list[str] | None = None,
    wait: bool = True,
) -> ScriptProcess:
    """Run ``script`` with ``how`` = ``callscript`` (callscript run -v) or ``python``."""
    port = int((env or {}).get("SIP_PORT", "0")) or free_port()
    command = [*run_command(), "-v"] if how == "callscript" else [sys.executable]
    log = tmp / f"{script.stem}.{how}.log"
    environment = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1", "SIP_PORT": str(port)}
    environment["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO), environment.get("PYTHONPATH", "")) if p
    )
    process = subprocess.Popen(
        [*command, str(script), *(args or [])],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        cwd=tmp,
        env=environment,
    )
    running = ScriptProcess(process, log, port)
    if wait:
        deadline = time.monotonic() + 30
        while READY not in running.log_text():
            if process.poll() is not None or time.monotonic() > deadline:
                running.stop()
                raise RuntimeError(f"{script.name} did not start:\n{running.log_text()}")
            time.sleep(0.05)
    return running
