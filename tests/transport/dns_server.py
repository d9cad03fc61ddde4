"""A real DNS server for tests: dnsmasq on 127.0.0.1, serving records given as options.

Use :func:`running_dnsmasq` from a fixture::

    with running_dnsmasq(tmp_dir, ["--host-record=a.test,127.0.0.2"]) as server:
        Resolver([server.address])

Records are dnsmasq options (``--host-record``, ``--srv-host``, ``--naptr-record``,
``--local-ttl``). Names under ``.test`` and ``localhost`` that have no record
get NXDOMAIN or an empty answer, never a forwarded query: the server has no
upstream and reads neither ``/etc/resolv.conf`` nor ``/etc/hosts``.

Every query is logged (``--log-queries``), so a test can count what a client
asked: :meth:`DnsServer.mark` and :meth:`DnsServer.queries_since`.
"""

from __future__ import annotations

import contextlib
import getpass
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode
import pytest

_QUERY_RE = re.compile(r"query\[(\w+)\] (\S+) from ")
_SYNC_PREFIX = "sync-"
_START_ATTEMPTS = 5
_WAIT_SECONDS = 10.0


@dataclass
class DnsServer:
    """A running dnsmasq: ``address`` to hand to a resolver, its query log for counting."""

    address: tuple[str, int]
    log_path: Path
    process: subprocess.Popen[bytes]
    _syncs: int = field(default=0)

    def ask(self, name: str, rdtype: str = "A", timeout: float = 1.0) -> dns.message.Message:
        """Send one query straight to the server (no resolver, no cache)."""
        query = dns.message.make_query(name, rdtype)
        return dns.query.udp(query, self.address[0], port=self.address[1], timeout=timeout)

    def mark(self) -> int:
        """A position in the query log: every query answered so far lies before it."""
        return len(self._logged())

    def queries_since(self, mark: int) -> list[tuple[str, str]]:
        """``(rdtype, name)`` of each query the server answered after ``mark``, in order."""
        return self._logged()[mark:]

    def _logged(self) -> list[tuple[str, str]]:
        # dnsmasq writes its log line when it takes a query in; a query of our own
        # that shows up in the log proves every earlier line is there too.
        self._syncs += 1
        sync = f"{_SYNC_PREFIX}{self._syncs}.test"
        self.ask(sync)
        deadline = time.monotonic() + _WAIT_SECONDS
        while True:
            lines = _QUERY_RE.findall(self.log_path.read_text(encoding="utf-8", errors="replace"))
            if ("A", sync) in lines or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        return [(t, n) for t, n in lines if not n.startswith(_SYNC_PREFIX) and n != "ready.test"]


def require_dnsmasq() -> str:
    """The dnsmasq executable, or skip the test with how to install it."""
    path = shutil.which("dnsmasq")
    if path is None:
        pytest.skip("dnsmasq is not installed: run `apt-get install dnsmasq` or ./dev test")
    return path


def dnsmasq_command(
    executable: str, port: int, directory: Path, records: Sequence[str]
) -> list[str]:
    """The dnsmasq command line: foreground, loopback only, no upstream, queries logged."""
    return [
        executable,
        "--keep-in-foreground",  # not --no-daemon: that is a debug mode
        "--no-resolv",  # no upstream servers: nothing leaves the machine
        "--no-hosts",  # /etc/hosts must not leak into answers
        "--conf-file=/dev/null",  # nor /etc/dnsmasq.conf
        "--listen-address=127.0.0.1",
        "--bind-interfaces",
        f"--port={port}",
        # dnsmasq started as root drops to "nobody", who could not write the log in a
        # private temporary directory; staying the current user works as root or not.
        f"--user={getpass.getuser()}",
        f"--pid-file={directory / 'dnsmasq.pid'}",
        "--local=/test/",  # unknown names answer NXDOMAIN instead of REFUSED
        "--local=/localhost/",
        "--local-ttl=300",
        "--log-queries",
        f"--log-facility={directory / 'queries.log'}",
        *records,
    ]


@contextlib.contextmanager
def running_dnsmasq(directory: Path, records: Sequence[str]) -> Iterator[DnsServer]:
    """Start dnsmasq with ``records`` on a free port of 127.0.0.1; stop it on exit."""
    executable = require_dnsmasq()
    error = ""
    for _ in range(_START_ATTEMPTS):
        port = _free_udp_port()
        log_path = directory / "queries.log"
        log_path.unlink(missing_ok=True)
        process = subprocess.Popen(
            dnsmasq_command(executable, port, directory, records),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        server = DnsServer(("127.0.0.1", port), log_path, process)
        if _wait_ready(server):
            break
        error = _stop(process)  # the port may have been taken meanwhile: try another
    else:
        raise RuntimeError(f"dnsmasq did not start: {error}")
    try:
        yield server
    finally:
        _stop(process)


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_ready(server: DnsServer) -> bool:
    deadline = time.monotonic() + _WAIT_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        try:
            response = server.ask("ready.test", timeout=0.2)
        except (dns.exception.DNSException, OSError):
            time.sleep(0.05)
            continue
        return response.rcode() in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN)
    return False


def _stop(process: subprocess.Popen[bytes]) -> str:
    """Stop dnsmasq; return what it wrote on stderr."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stderr is None:
        return ""
    with process.stderr:
        return process.stderr.read().decode(errors="replace").strip()
