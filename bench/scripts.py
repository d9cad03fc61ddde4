"""Per-user script figures: load time and memory, script latency, hot-reload delay, ringing memory.

Run from the repository root::

    .venv/bin/python bench/scripts.py              # everything
    .venv/bin/python bench/scripts.py --quick      # smaller counts
    .venv/bin/python bench/scripts.py --only load,latency,reload,ringing

- load: time and memory to check and register 10,000 users' scripts (what `callscript serve`
  does at start), in this process, measured with /proc/self/statm.
- latency: time from a request's arrival to the script's first action, from outside: a MESSAGE
  to a user whose script rejects it at once, minus the same round trip to a user without a
  script (404 from the default routing), p50 and p99 over N requests to `callscript serve`.
- reload: time from an editor's atomic save of a script to the first call that follows the new
  version (polled every 10 ms), over N saves.
- ringing: memory of all callscript processes (server and sandbox workers, /proc RSS) while
  5,000 calls ring inside their scripts' proxy(): sipp calls users whose script proxies with a
  long timeout to a sipp UAS that rings and never answers.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from callscript.sandbox.policy import Policy  # noqa: E402
from callscript.sandbox.pool import SandboxPool  # noqa: E402
from callscript.store.audit import MemoryAuditLog  # noqa: E402
from tests.interop.harness import Peers, bind, free_port, start_server  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")
PROXY_THEN_VOICEMAIL = """
def incoming(event):
    if event.action.proxy(timeout={timeout}) in ('busy', 'noanswer', 'failure'):
        event.action.voicemail()

basic.addEventListener('incoming', incoming)
"""
REJECT = (
    "def h(event):\n    event.action.reject(code={code})\nbasic.addEventListener('incoming', h)\n"
)


def rss_of(pid: int) -> int:
    """Resident memory of process ``pid``, bytes."""
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * PAGE


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    out = [pid]
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        out += tree(int(child))
    return out


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def bench_load(count: int) -> dict[str, float]:
    from callscript.engine.scripthost import ScriptHost

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for i in range(count):
            domain = root / f"d{i % 50}.example.com"
            domain.mkdir(exist_ok=True)
            (domain / f"user{i}.py").write_text(PROXY_THEN_VOICEMAIL.format(timeout=15 + i % 7))
        before = rss_of(os.getpid())
        host = ScriptHost(root, Policy(), SandboxPool(Policy()), MemoryAuditLog(), watch=False)
        started = time.perf_counter()
        from callscript.engine.scripts import scan

        for name in scan(root):
            host.apply(name, audit_loads=False)
        elapsed = time.perf_counter() - started
        after = rss_of(os.getpid())
        assert len(host.registry) == count
    return {
        "scripts": count,
        "seconds": elapsed,
        "ms_per_script": elapsed / count * 1000,
        "rss_mb": (after - before) / 2**20,
    }


def _message(port: int, server_port: int, user: str, n: int) -> bytes:
    return (
        f"MESSAGE sip:{user}@example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKbench{n}{user};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:tester@example.org>;tag=b{n}\r\nTo: <sip:{user}@example.com>\r\n"
        f"Call-ID: bench-{n}-{user}\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def _round_trip(sock: socket.socket, server_port: int, user: str, n: int) -> tuple[float, int]:
    port = sock.getsockname()[1]
    started = time.perf_counter()
    sock.sendto(_message(port, server_port, user, n), ("127.0.0.1", server_port))
    while True:
        data = sock.recv(65535)
        status = int(data.split(b" ", 2)[1])
        if status >= 200:
            return time.perf_counter() - started, status


def _server_with_scripts(tmp: Path) -> tuple[object, Path]:
    scripts = tmp / "user_scripts" / "example.com"
    scripts.mkdir(parents=True)
    server = start_server(tmp, tail=f'[scripts]\ndir = "{tmp / "user_scripts"}"')
    return server, scripts


def bench_latency(count: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        server, scripts = _server_with_scripts(Path(tmp))
        try:
            (scripts / "alice.py").write_text(REJECT.format(code=603))
            assert server.wait_for("is live")  # type: ignore[attr-defined]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.bind(("127.0.0.1", 0))
                sock.settimeout(10)
                for n in range(50):  # warm up workers and caches
                    _round_trip(sock, server.port, "alice", -n - 1)  # type: ignore[attr-defined]
                scripted, plain = [], []
                for n in range(count):
                    took, status = _round_trip(sock, server.port, "alice", n)  # type: ignore[attr-defined]
                    assert status == 603
                    scripted.append(took)
                    took, status = _round_trip(sock, server.port, "nobody", n)  # type: ignore[attr-defined]
                    assert status == 404
                    plain.append(took)
        finally:
            server.stop()  # type: ignore[attr-defined]
    extra = [(a - b) * 1000 for a, b in zip(sorted(scripted), sorted(plain), strict=True)]
    return {
        "requests": count,
        "scripted_p50_ms": percentile(scripted, 50) * 1000,
        "scripted_p99_ms": percentile(scripted, 99) * 1000,
        "no_script_p50_ms": percentile(plain, 50) * 1000,
        "no_script_p99_ms": percentile(plain, 99) * 1000,
        "script_cost_p50_ms": percentile(extra, 50),
        "script_cost_p99_ms": percentile(extra, 99),
    }


def bench_reload(count: int) -> dict[str, float]:
    delays = []
    with tempfile.TemporaryDirectory() as tmp:
        server, scripts = _server_with_scripts(Path(tmp))
        try:
            target = scripts / "alice.py"
            target.write_text(REJECT.format(code=600))
            assert server.wait_for("is live")  # type: ignore[attr-defined]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.bind(("127.0.0.1", 0))
                sock.settimeout(10)
                n = 0
                for i in range(count):
                    code = 480 + i % 20  # a different answer after each save
                    temporary = scripts / ".alice.tmp"
                    temporary.write_text(REJECT.format(code=code))
                    saved = time.perf_counter()
                    temporary.replace(target)
                    while True:
                        n += 1
                        _, status = _round_trip(sock, server.port, "alice", 10_000 + n)  # type: ignore[attr-defined]
                        if status == code:
                            delays.append(time.perf_counter() - saved)
                            break
                        time.sleep(0.01)
        finally:
            server.stop()  # type: ignore[attr-defined]
    return {
        "saves": count,
        "p50_ms": percentile(delays, 50) * 1000,
        "max_ms": max(delays) * 1000,
        "mean_ms": statistics.mean(delays) * 1000,
    }


def bench_ringing(calls: int, rate: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        server, scripts = _server_with_scripts(work)
        peers = Peers(work)
        try:
            (scripts / "bob.py").write_text(PROXY_THEN_VOICEMAIL.format(timeout=120))
            assert server.wait_for("is live")  # type: ignore[attr-defined]
            port = free_port()
            bind(server.db, "sip:bob@example.com", f"sip:bob@127.0.0.1:{port}")  # type: ignore[attr-defined]
            idle = sum(rss_of(pid) for pid in tree(server.process.pid))  # type: ignore[attr-defined]
            callee = peers.sipp(
                "uas_noanswer.xml",
                local_port=port,
                calls=calls,
                extra=["-l", str(calls + 10), "-max_socket", "60000"],
            )
            caller = peers.sipp(
                "uac.xml",
                local_port=free_port(),
                remote=f"127.0.0.1:{server.port}",  # type: ignore[attr-defined]
                service="bob",
                calls=calls,
                rate=rate,
                extra=["-l", str(calls + 10)],
            )
            peak = 0
            # Every call rings for 120 s inside its script's proxy(); sample while they pile up.
            deadline = time.monotonic() + calls / rate + 15
            while time.monotonic() < deadline:
                time.sleep(1)
                total = sum(rss_of(pid) for pid in tree(server.process.pid))  # type: ignore[attr-defined]
                peak = max(peak, total)
            caller.stop()
            callee.stop()
        finally:
            peers.close()
            server.stop()  # type: ignore[attr-defined]
    return {"calls_ringing": calls, "idle_mb": idle / 2**20, "peak_mb": peak / 2**20}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default="load,latency,reload,ringing")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    only = set(args.only.split(","))
    results: dict[str, object] = {}
    if "load" in only:
        results["load"] = bench_load(1000 if args.quick else 10_000)
        print("load", json.dumps(results["load"]))
    if "latency" in only:
        results["latency"] = bench_latency(100 if args.quick else 1000)
        print("latency", json.dumps(results["latency"]))
    if "reload" in only:
        results["reload"] = bench_reload(5 if args.quick else 20)
        print("reload", json.dumps(results["reload"]))
    if "ringing" in only:
        results["ringing"] = bench_ringing(500 if args.quick else 5000, 100 if args.quick else 250)
        print("ringing", json.dumps(results["ringing"]))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
