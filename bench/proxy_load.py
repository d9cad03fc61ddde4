"""Proxy load benchmark: sipp UAC -> proxy -> sipp UAS over UDP, callscript beside Kamailio.

Run from the repository root, as root for the kernel buffer sizing::

    .venv/bin/python bench/proxy_load.py                  # full run: 10 s per step
    .venv/bin/python bench/proxy_load.py --quick          # 2 s steps, a smoke run
    .venv/bin/python bench/proxy_load.py --rates 100,400 --systems callscript --json out.json

Each call is INVITE, 100 (from the proxy), 180, 200, ACK, BYE, 200, record-routed, all on
127.0.0.1 (bench/scenarios/uac.xml and uas.xml). The same load goes, in one sitting, through
Kamailio with a native configuration (bench/kamailio/native.cfg), through Kamailio with the
same routing in Python over KEMI (kemi.cfg + kemi.py) and through ``callscript serve``. Rates
rise step by step; a system's series stops after its first step that does not hold (99.9 %
of the calls successful at 95 % of the rate asked). For
each step: calls/s achieved, % success, the proxy's CPU per call (utime+stime of its whole
process tree from /proc), INVITE->100 and INVITE->200 percentiles from sipp's -trace_rtt.
See bench/README.md, section proxy_load.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SCENARIOS = HERE / "scenarios"
KAMAILIO_DIR = HERE / "kamailio"
HOST = "127.0.0.1"
DOMAIN = "example.com"
USER = "bob"
RATES = (100, 200, 400, 700, 1000, 1500, 2000, 3000, 4000, 5000)
SUCCESS_GOAL = 99.9
# A step holds only if the calls also went through at the rate asked: a proxy that falls
# behind still completes every call of a short step, late (sipp waits for them).
KEPT_UP = 0.95
CALLSCRIPT_GOAL_RATE = 1000
CPU_GOAL_RATIO = 3.0
TICKS = os.sysconf("SC_CLK_TCK")
# Kamailio's shared memory (MB): at 2000 calls/s its transactions need more than 256 MB.
KAMAILIO_SHM_MB = 1024
SYSCTLS = ("net.core.rmem_max", "net.core.wmem_max", "net.core.rmem_default")
RTDS = (("invite100", "INVITE->100"), ("invite200", "INVITE->200"))
# The per-user script of the callscript-scripts system: every callee rings, then voicemail.
PROXY_THEN_VOICEMAIL = """
def incoming(event):
    if event.action.proxy(timeout=30) in ('busy', 'noanswer', 'failure'):
        event.action.voicemail()

basic.addEventListener('incoming', incoming)
"""
SCRIPTED_USERS = 1000
# callscript runs under this bootstrap (with --gc-log, the default): it logs every garbage
# collection that takes >= 5 ms, so that stalls of the event loop show with their cause.
# The callback costs about a microsecond per collection; callscript itself is unchanged.
GC_BOOTSTRAP = """
import gc, sys, time
from callscript.cli import main
started = [0.0]
def log_pause(phase, info):
    if phase == "start":
        started[0] = time.perf_counter()
    elif (ms := (time.perf_counter() - started[0]) * 1000) >= 5:
        print(f"gc pause: generation {info['generation']} {ms:.0f} ms", file=sys.stderr, flush=True)
gc.callbacks.append(log_pause)
sys.exit(main(sys.argv[1:]))
"""
GC_PAUSE = "gc pause: generation "
STAT_COUNTERS = (
    "OutgoingCall(C)",
    "SuccessfulCall(C)",
    "FailedCall(C)",
    "Retransmissions(C)",
    "FailedTimeoutOnRecv(C)",
    "FailedMaxUDPRetrans(C)",
    "OutOfCallMsgs(C)",
    "DeadCallMsgs(C)",
)


@dataclass
class Latency:
    """Response times of one kind in one step, milliseconds (sipp's clock ticks)."""

    samples: int = 0
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    mean: float | None = None

    @classmethod
    def of(cls, values: list[float]) -> Latency:
        if not values:
            return cls()
        ordered = sorted(values)

        def rank(p: float) -> float:  # nearest-rank percentile
            return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]

        return cls(len(ordered), rank(50), rank(95), rank(99), sum(ordered) / len(ordered))


@dataclass
class Step:
    """One rate step of one system."""

    rate: int
    calls: int
    created: int = 0
    successful: int = 0
    achieved: float = 0.0
    success_pct: float = 0.0
    proxy_cpu_s: float = 0.0
    proxy_sys_s: float = 0.0  # the kernel's share of proxy_cpu_s (socket calls)
    cpu_ms_per_call: float | None = None
    sipp_cpu_s: float = 0.0
    other_cpu_s: float = 0.0
    wall_s: float = 0.0
    counters: dict[str, int] = field(default_factory=dict)
    latency: dict[str, Latency] = field(default_factory=dict)
    log_problems: list[str] = field(default_factory=list)
    gc_pauses_ms: dict[int, list[float]] = field(default_factory=dict)
    profiled: bool = False

    @property
    def verdict(self) -> str:
        """'held', or why not."""
        if self.success_pct < SUCCESS_GOAL:
            return f"no: < {SUCCESS_GOAL} % ok"
        if self.achieved < KEPT_UP * self.rate:
            return f"no: < {KEPT_UP:.0%} of rate"
        return "held"


@dataclass
class SystemRun:
    """A system's series of steps."""

    name: str
    version: str = ""
    log: str = ""
    note: str = ""
    steps: list[Step] = field(default_factory=list)

    @property
    def best_rate(self) -> int | None:
        passed = [s.rate for s in self.steps if s.verdict == "held"]
        return max(passed) if passed else None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for step, values in zip(self.steps, data["steps"], strict=True):
            values["verdict"] = step.verdict
        return data | {"best_rate": self.best_rate}


# ---------------------------------------------------------------- the host


def free_port() -> int:
    """A UDP port free on 127.0.0.1."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, 60000)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            try:
                sock.bind((HOST, port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free UDP port")


def tree_ticks(root: int) -> tuple[int, int]:
    """(user, system) clock ticks of ``root`` and all its descendants, reaped children included."""
    parents: dict[int, int] = {}
    ticks: dict[int, tuple[int, int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue  # the process ended meanwhile
        fields = text[text.rindex(")") + 2 :].split()
        parents[int(entry)] = int(fields[1])
        utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
        ticks[int(entry)] = (utime + cutime, stime + cstime)
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        kids = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
        tree.update(kids)
        frontier.extend(kids)
    mine = [ticks[pid] for pid in tree if pid in ticks]
    return sum(user for user, _ in mine), sum(system for _, system in mine)


def host_busy_ticks() -> int:
    """Ticks all CPUs spent running something since boot: user, nice, system, irq, softirq."""
    values = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    return sum(values) - values[3] - values[4]


def children_cpu() -> float:
    """CPU seconds of this script's reaped child processes (the sipp runs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@contextlib.contextmanager
def udp_buffers(size: int, notes: list[str]) -> Iterator[None]:
    """Raise the kernel's UDP buffer limits to ``size`` when root; restore them afterwards."""
    before: dict[str, int] = {}
    for name in SYSCTLS:
        path = Path("/proc/sys") / name.replace(".", "/")
        value = int(path.read_text())
        if value >= size:
            notes.append(f"sysctl {name} = {value} (kept)")
            continue
        try:
            path.write_text(str(size))
        except OSError as exc:
            notes.append(f"sysctl {name} = {value}: not raised ({exc.strerror}; run as root)")
            continue
        before[name] = value
        notes.append(f"sysctl {name}: {value} -> {size} for the run (restored at the end)")
    try:
        yield
    finally:
        for name, value in before.items():
            (Path("/proc/sys") / name.replace(".", "/")).write_text(str(value))


def probe(port: int, timeout: float) -> bool:
    """Send OPTIONS to the proxy until any response comes back: it is serving."""
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        sock.settimeout(0.2)
        me = sock.getsockname()[1]
        n = 0
        while time.monotonic() < deadline:
            n += 1
            request = (
                f"OPTIONS sip:{HOST}:{port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {HOST}:{me};branch=z9hG4bK-probe-{n};rport\r\n"
                f"Max-Forwards: 70\r\nFrom: <sip:probe@{HOST}>;tag=probe\r\n"
                f"To: <sip:{HOST}:{port}>\r\nCall-ID: probe-{n}-{me}@{HOST}\r\n"
                "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
            )
            sock.sendto(request.encode(), (HOST, port))
            with contextlib.suppress(TimeoutError):
                if sock.recv(65535).startswith(b"SIP/2.0 "):
                    return True
    return False


def spawn(command: list[str], output: Path, cwd: Path | None = None) -> subprocess.Popen[bytes]:
    """Start ``command`` with stdout and stderr to ``output``."""
    with output.open("wb") as handle:  # the child keeps its own copy
        return subprocess.Popen(
            command,
            stdout=handle,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )


def stop_process(process: subprocess.Popen[bytes], wait: float = 10) -> None:
    """SIGTERM, then SIGKILL if it does not end within ``wait`` seconds."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# ---------------------------------------------------------------- the proxies


class Proxy:
    """A proxy process under test; subclasses say how to start it."""

    name = ""

    def __init__(self, workdir: Path, uas_port: int) -> None:
        self.workdir = workdir / self.name
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log = self.workdir / "proxy.log"
        self.port = free_port()
        self.uas_port = uas_port
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def version(self) -> str:
        raise NotImplementedError

    def check(self) -> str | None:
        """Why this system cannot run here, or None."""
        return None

    def start(self) -> None:
        self.process = spawn(self.command(), self.log, self.workdir)
        if not probe(self.port, 30) or self.process.poll() is not None:
            self.stop()
            raise RuntimeError(f"{self.name} did not answer OPTIONS; see {self.log}")

    def cpu_ticks(self) -> tuple[int, int]:
        assert self.process is not None
        return tree_ticks(self.process.pid)

    def stop(self) -> None:
        """Ctrl-C, as an operator would; SIGKILL if it is still there after 15 s."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Kamailio(Proxy):
    """Kamailio from the Debian package, native.cfg or kemi.cfg (app_python3)."""

    def __init__(self, workdir: Path, uas_port: int, *, kemi: bool, children: int) -> None:
        self.name = "kamailio-kemi" if kemi else "kamailio"
        self.config = KAMAILIO_DIR / ("kemi.cfg" if kemi else "native.cfg")
        self.children = children
        super().__init__(workdir, uas_port)

    def command(self) -> list[str]:
        run = self.workdir / "run"
        run.mkdir(exist_ok=True)
        return [
            shutil.which("kamailio") or "kamailio",
            "-f", str(self.config),
            "-A", f'UAS="{HOST}:{self.uas_port}"',
            "-A", f'BENCH_USER="{USER}"',
            "-A", f'KEMI_SCRIPT="{KAMAILIO_DIR / "kemi.py"}"',
            "-l", f"udp:{HOST}:{self.port}",
            "-n", str(self.children),
            "-m", str(KAMAILIO_SHM_MB),
            "-M", "16",
            "-Y", str(run),
            "-w", str(self.workdir),
            "-DD", "-E",
        ]  # fmt: skip

    def check(self) -> str | None:
        if shutil.which("kamailio") is None:
            return "kamailio is not installed (apt-get install kamailio kamailio-python3-modules)"
        result = subprocess.run(
            [*self.command(), "-c"], capture_output=True, text=True, check=False, timeout=30
        )
        if result.returncode != 0:
            return f"{self.config.name} does not load: {result.stderr.strip()[-300:]}"
        return None

    def version(self) -> str:
        result = subprocess.run(["kamailio", "-v"], capture_output=True, text=True, check=False)
        first = result.stdout.splitlines()[:1]
        return first[0].replace("version: ", "").strip() if first else "?"


class Callscript(Proxy):
    """``callscript serve`` with a generated config and the callee's binding seeded."""

    def __init__(
        self,
        workdir: Path,
        uas_port: int,
        *,
        uvloop: bool,
        rcvbuf: int,
        name: str,
        gc_log: bool,
        users: int = 0,
    ) -> None:
        self.name = name
        self.users = users
        self.gc_log = gc_log
        self.uvloop = uvloop
        self.rcvbuf = rcvbuf
        super().__init__(workdir, uas_port)
        self.config = self.workdir / "callscript.toml"

    def command(self) -> list[str]:
        db = self.workdir / "callscript.db"
        scripts = self.workdir / "user_scripts"
        scripts.mkdir(exist_ok=True)
        self.config.write_text(
            "[server]\n"
            f'listen = ["udp:{HOST}:{self.port}"]\n'
            f'domains = ["{DOMAIN}"]\n'
            f'database = "{db}"\n'
            f'scripts_dir = "{scripts}"\n'
            "ring_timeout = 3600\n"
            f"uvloop = {'true' if self.uvloop else 'false'}\n"
            "[transport]\n"
            f"udp_rcvbuf = {self.rcvbuf}\n"
        )
        self.seed(db)
        start = ["-c", GC_BOOTSTRAP] if self.gc_log else ["-m", "callscript.cli"]
        return [sys.executable, *start, "serve", "--config", str(self.config)]

    def seed(self, db: Path) -> None:
        """Register the sipp UAS as the benchmark users' contact, straight into the store; with
        ``users``, give each of u0..u<users-1> a proxy-then-voicemail script too."""
        from callscript.store.base import Binding
        from callscript.store.sqlite import SqliteStore

        names = [USER] + [f"u{i}" for i in range(self.users)]
        store = SqliteStore(str(db))
        try:
            for name in names:
                store.location.save(
                    Binding(
                        aor=f"sip:{name}@{DOMAIN}",
                        contact=f"sip:callee@{HOST}:{self.uas_port}",
                        expires_at=time.time() + 86400,
                        call_id="proxy-load-seed",
                        cseq=1,
                        q=1.0,
                    )
                )
        finally:
            store.close()
        folder = self.workdir / "user_scripts" / DOMAIN
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(self.users):
            (folder / f"u{i}.py").write_text(PROXY_THEN_VOICEMAIL)
        if self.users:
            rows = "".join(f"u{i};\n" for i in range(self.users))
            (self.workdir / "users.csv").write_text("SEQUENTIAL\n" + rows)

    def version(self) -> str:
        import callscript

        loop = "asyncio"
        if self.process is not None:
            maps = Path(f"/proc/{self.process.pid}/maps").read_text(errors="replace")
            loop = "uvloop" if "uvloop" in maps else "asyncio"
        return f"callscript {getattr(callscript, '__version__', '?')}, {loop} event loop"


# ---------------------------------------------------------------- one step


def sipp_args(
    scenario: str, port: int, name: str, work: Path, args: argparse.Namespace
) -> list[str]:
    return [
        shutil.which("sipp") or "sipp",
        "-sf", str(SCENARIOS / scenario),
        "-i", HOST, "-p", str(port), "-t", "u1",
        "-nostdin", "-buff_size", str(args.udp_buffer),
        # Kamailio's workers run in parallel: a 180 may come after the 200. Don't abort on it.
        "-default_behaviors", "all,-abortunexp",
        "-recv_timeout", str(args.recv_timeout * 1000),
        "-trace_err", "-error_file", str(work / f"{name}_errors.log"), "-max_log_size", "2000000",
    ]  # fmt: skip


def run_step(proxy: Proxy, rate: int, args: argparse.Namespace, profile: bool) -> Step:
    """One rate step: a fresh sipp UAS and UAC, counters and CPU read around it."""
    calls = max(1, round(rate * args.step))
    work = proxy.workdir / f"step_{rate}"
    work.mkdir(exist_ok=True)
    limit = int(args.step * 2 + args.recv_timeout + 20)  # generous: sipp may lag behind the rate
    uas_cmd = [*sipp_args("uas.xml", proxy.uas_port, "uas", work, args), "-timeout", str(limit + 5)]
    uas = spawn(uas_cmd, work / "uas.out", work)
    time.sleep(0.3)  # sipp binds at once; leave it the time to read its scenario
    users = getattr(proxy, "users", 0)
    # With scripted users, each call goes to the next user of users.csv (uac_users.xml).
    called = ["-inf", str(proxy.workdir / "users.csv")] if users else ["-s", USER]
    uac_cmd = [
        *sipp_args("uac_users.xml" if users else "uac.xml", free_port(), "uac", work, args),
        *called, "-key", "domain", DOMAIN,
        "-r", str(rate), "-rp", "1000", "-m", str(calls),
        "-l", str(min(rate * (args.recv_timeout + 2) + 100, 15000)),
        "-d", str(args.hold),
        "-trace_rtt", "-rtt_freq", "1", "-trace_stat", "-stf", str(work / "stat.csv"),
        "-fd", "1", "-timeout", str(limit), "-timeout_error",
        f"{HOST}:{proxy.port}",
    ]  # fmt: skip
    log_offset = proxy.log.stat().st_size
    cpu0, host0, kids0, wall0 = proxy.cpu_ticks(), host_busy_ticks(), children_cpu(), time.time()
    uac = spawn(uac_cmd, work / "uac.out", work)
    spy = start_profile(proxy, work, args.step) if profile else None
    try:
        uac.wait(timeout=limit + 10)
    except subprocess.TimeoutExpired:
        stop_process(uac, 2)
    stop_process(uas, 5)
    time.sleep(args.settle)  # the proxy's timers and retransmissions of this step
    cpu1, host1, kids1, wall1 = proxy.cpu_ticks(), host_busy_ticks(), children_cpu(), time.time()
    if spy is not None:
        spy.wait(timeout=args.step + 30)
    step = Step(rate=rate, calls=calls, profiled=profile, wall_s=round(wall1 - wall0, 2))
    step.counters = read_stats(work / "stat.csv")
    step.created = step.counters.get("OutgoingCall(C)", 0)
    step.successful = step.counters.get("SuccessfulCall(C)", 0)
    step.success_pct = 100.0 * step.successful / calls
    samples = read_rtt(work)
    step.latency = {key: Latency.of(samples.get(key, [])) for key, _ in RTDS}
    answered = sorted(samples.get("invite200_at", []))
    if len(answered) > 1 and answered[-1] > answered[0]:
        step.achieved = (len(answered) - 1) / ((answered[-1] - answered[0]) / 1000)
    step.proxy_cpu_s = (sum(cpu1) - sum(cpu0)) / TICKS
    step.proxy_sys_s = (cpu1[1] - cpu0[1]) / TICKS
    step.cpu_ms_per_call = 1000 * step.proxy_cpu_s / step.created if step.created else None
    step.sipp_cpu_s = kids1 - kids0
    step.other_cpu_s = max(0.0, (host1 - host0) / TICKS - step.proxy_cpu_s - step.sipp_cpu_s)
    with proxy.log.open("rb") as handle:
        handle.seek(log_offset)
        lines = handle.read().decode(errors="replace").splitlines()
    step.log_problems = log_problems(lines)
    for line in lines:
        if line.startswith(GC_PAUSE):
            generation, ms, _ = line[len(GC_PAUSE) :].split(" ", 2)
            step.gc_pauses_ms.setdefault(int(generation), []).append(float(ms))
    return step


def read_stats(path: Path) -> dict[str, int]:
    """The cumulative counters of the last line of sipp's -trace_stat CSV."""
    if not path.exists():
        return {}
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    if len(lines) < 2:
        return {}
    row = dict(zip(lines[0].split(";"), lines[-1].split(";"), strict=False))
    return {name: int(float(row.get(name, "0") or 0)) for name in STAT_COUNTERS}


def read_rtt(work: Path) -> dict[str, list[float]]:
    """Response times by rtd name from sipp's *_rtt.csv (Date_ms;response_time_ms;rtd_no)."""
    samples: dict[str, list[float]] = {}
    for path in work.glob("uac_*_rtt.csv"):
        for line in path.read_text(errors="replace").splitlines()[1:]:
            parts = line.split(";")
            if len(parts) != 3:
                continue
            try:
                at, value = float(parts[0]), float(parts[1])
            except ValueError:
                continue
            samples.setdefault(parts[2], []).append(value)
            samples.setdefault(parts[2] + "_at", []).append(at)
    return samples


def log_problems(lines: list[str]) -> list[str]:
    """Warnings and errors the proxy logged during the step, most frequent first."""
    seen: Counter[str] = Counter()
    for line in lines:
        if any(
            word in line for word in (" WARNING ", " ERROR ", "ERROR:", "CRITICAL", "Traceback")
        ):
            # Drop the timestamp / process prefix so that repeats count together.
            key = line.split(": ", 1)[-1][:160] if ": " in line else line[:160]
            seen[key] += 1
    return [f"{count} x {text}" for text, count in seen.most_common(5)]


def start_profile(proxy: Proxy, work: Path, seconds: float) -> subprocess.Popen[bytes] | None:
    """py-spy record (raw collapsed stacks) of the proxy for the step, if py-spy is there."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if proxy.process is None or not Path(spy).exists():
        return None
    command = [
        spy, "record", "--pid", str(proxy.process.pid), "--duration", str(max(1, int(seconds))),
        "--format", "raw", "--nonblocking", "--rate", "250", "--output", str(work / "profile.txt"),
    ]  # fmt: skip
    return spawn(command, work / "py-spy.out")


def top_functions(path: Path, count: int = 15) -> list[tuple[str, float]]:
    """Functions by own time (share of samples where they are the innermost frame)."""
    own: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, samples = line.rpartition(" ")
        if not samples.isdigit():
            continue
        leaf = stack.rsplit(";", 1)[-1]
        name, _, where = leaf.partition(" (")
        own[f"{name} ({where.rsplit(':', 1)[0].rsplit('/', 1)[-1]})"] += int(samples)
        total += int(samples)
    return [(name, 100 * n / total) for name, n in own.most_common(count)] if total else []


# ---------------------------------------------------------------- report


def fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(run: SystemRun) -> str:
    head = (
        "| rate asked | calls/s | success % | held | CPU ms/call | INVITE->100 p50 / p99 ms"
        " | INVITE->200 p50 / p99 ms | INVITE->200 mean ms | UAC retrans | other load |"
    )
    gc = any(s.gc_pauses_ms for s in run.steps)
    lines = [head + (" longest GC pause ms |" if gc else ""), "|" + "---|" * (11 if gc else 10)]
    for s in run.steps:
        l100, l200 = s.latency["invite100"], s.latency["invite200"]
        lines.append(
            f"| {s.rate}{' (profiled)' if s.profiled else ''} | {s.achieved:.0f} "
            f"| {s.success_pct:.2f} | {s.verdict} | {fmt(s.cpu_ms_per_call, 3)} "
            f"| {fmt(l100.p50)} / {fmt(l100.p99)} | {fmt(l200.p50)} / {fmt(l200.p99)} "
            f"| {fmt(l200.mean, 2)} | {s.counters.get('Retransmissions(C)', 0)} "
            f"| {s.other_cpu_s / s.wall_s if s.wall_s else 0:.2f} |"
            + (f" {max((max(p) for p in s.gc_pauses_ms.values()), default=0):.0f} |" if gc else "")
        )
    return "\n".join(lines)


def cpu_at(run: SystemRun, rate: int) -> float | None:
    return next((s.cpu_ms_per_call for s in run.steps if s.rate == rate), None)


def compare(a: SystemRun, b: SystemRun) -> tuple[int, float, float] | None:
    """(rate, a's CPU/call, b's CPU/call) at the highest rate both passed."""
    both = [
        s.rate
        for s in a.steps
        if s.verdict == "held" and any(t.rate == s.rate and t.verdict == "held" for t in b.steps)
    ]
    if not both:
        return None
    rate = max(both)
    x, y = cpu_at(a, rate), cpu_at(b, rate)
    return (rate, x, y) if x and y else None


def summary(runs: dict[str, SystemRun]) -> tuple[list[str], dict[str, Any]]:
    lines: list[str] = []
    data: dict[str, Any] = {"best_rate": {n: r.best_rate for n, r in runs.items()}}
    for name, run in runs.items():
        best = run.best_rate
        lines.append(f"- {name}: highest rate held (>= {SUCCESS_GOAL} % success at >= "
                     f"{KEPT_UP:.0%} of the rate asked): {best or 'none'} calls/s")  # fmt: skip
    for cs_name in [n for n in runs if n.startswith("callscript")]:
        cs = runs[cs_name]
        refs = (("kamailio-kemi", CPU_GOAL_RATIO), ("kamailio", None), ("callscript-asyncio", None))
        for ref, goal in refs if cs_name == "callscript" else refs[:2]:
            if ref not in runs:
                continue
            found = compare(cs, runs[ref])
            if found is None:
                lines.append(f"- {cs_name} vs {ref}: no rate both passed, CPU not compared")
                continue
            rate, mine, theirs = found
            ratio = mine / theirs
            verdict = (
                ""
                if goal is None
                else (" (goal <= 3x: met)" if ratio <= goal else " (goal <= 3x: NOT met)")
            )
            lines.append(f"- CPU per call at {rate} calls/s: {cs_name} {mine:.3f} ms vs {ref} "
                         f"{theirs:.3f} ms = {ratio:.1f}x{verdict}")  # fmt: skip
            data[f"cpu_ratio_{cs_name}_vs_{ref}"] = {"rate": rate, "ratio": ratio}
        reached = (cs.best_rate or 0) >= CALLSCRIPT_GOAL_RATE
        lines.append(f"- {cs_name} holds {CALLSCRIPT_GOAL_RATE} calls/s (goal): "
                     f"{'yes' if reached else 'NO'}")  # fmt: skip
        data[f"goal_{CALLSCRIPT_GOAL_RATE}_{cs_name}"] = reached
    if "callscript" in runs and "callscript-scripts" in runs:
        # Issue goal: scripts for every callee (1,000 users) cost at most 25 % of the throughput.
        plain = runs["callscript"].best_rate or 0
        scripted = runs["callscript-scripts"].best_rate or 0
        cost = 1 - scripted / plain if plain else None
        verdict = (
            "n/a"
            if cost is None
            else f"{cost:.0%} ({'met' if cost <= 0.25 else 'NOT met'}, goal <= 25 %)"
        )
        lines.append(
            f"- throughput cost of a proxy-then-voicemail script for each of {SCRIPTED_USERS} "
            f"callees: {plain} -> {scripted} calls/s: {verdict}"
        )
        data["script_cost"] = cost
    return lines, data


# ---------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--quick", action="store_true", help="2 s steps and rates 100,400,1000: a smoke run"
    )
    p.add_argument("--rates", help="comma-separated calls/s (default 100,200,400,...,5000)")
    p.add_argument("--step", type=float, help="seconds per step (default 10, --quick 2)")
    p.add_argument(
        "--systems",
        default="kamailio,kamailio-kemi,callscript,callscript-asyncio",
        help="which to run, in order (callscript-asyncio only when uvloop is installed)",
    )
    p.add_argument("--hold", type=int, default=100, help="ms between ACK and BYE (default 100)")
    p.add_argument("--recv-timeout", type=int, default=8, help="s a call waits for a message")
    p.add_argument("--settle", type=float, default=2.0, help="s of quiet after each step")
    p.add_argument("--udp-buffer", type=int, default=16 * 1024 * 1024, help="bytes, every socket")
    p.add_argument("--kamailio-children", type=int, default=4, help="UDP workers (default 4)")
    p.add_argument(
        "--no-gc-log",
        dest="gc_log",
        action="store_false",
        help="run callscript without the bootstrap that logs garbage collection pauses",
    )
    p.add_argument("--profile", type=int, metavar="RATE", help="py-spy callscript at this rate")
    p.add_argument("--workdir", help="where logs and sipp files go (default: a new temp dir)")
    p.add_argument("--json", metavar="FILE", help="write every number to FILE")
    args = p.parse_args(argv)
    args.step = args.step or (2.0 if args.quick else 10.0)
    default = (100, 400, 1000) if args.quick else RATES
    args.rates = [int(x) for x in args.rates.split(",")] if args.rates else list(default)
    if args.quick:
        args.settle = min(args.settle, 1.0)
    return args


def make_proxy(name: str, work: Path, args: argparse.Namespace) -> Proxy | str:
    uas_port = free_port()
    if name in ("kamailio", "kamailio-kemi"):
        return Kamailio(work, uas_port, kemi=name.endswith("kemi"), children=args.kamailio_children)
    if name in ("callscript", "callscript-asyncio", "callscript-scripts"):
        has_uvloop = subprocess.run([sys.executable, "-c", "import uvloop"], check=False,
                                    capture_output=True).returncode == 0  # fmt: skip
        if name == "callscript-asyncio" and not has_uvloop:
            return "uvloop is not installed: callscript already runs on asyncio"
        users = SCRIPTED_USERS if name == "callscript-scripts" else 0
        return Callscript(work, uas_port, uvloop=name != "callscript-asyncio" and has_uvloop,
                          rcvbuf=args.udp_buffer, name=name, gc_log=args.gc_log,
                          users=users)  # fmt: skip
    return f"unknown system {name!r}"


def run_system(proxy: Proxy, args: argparse.Namespace) -> SystemRun:
    run = SystemRun(proxy.name, log=str(proxy.log))
    proxy.start()
    try:
        run.version = proxy.version()
        print(f"\n## {proxy.name} ({run.version})\nlog: {proxy.log}", flush=True)
        for rate in args.rates:
            profile = args.profile == rate and isinstance(proxy, Callscript)
            step = run_step(proxy, rate, args, profile)
            run.steps.append(step)
            l200 = step.latency["invite200"]
            print(f"  {rate:>5} calls/s asked: {step.achieved:7.0f} achieved, "
                  f"{step.success_pct:6.2f} % ok, {fmt(step.cpu_ms_per_call, 3)} ms CPU/call, "
                  f"INVITE->200 p99 {fmt(l200.p99)} ms", flush=True)  # fmt: skip
            for problem in step.log_problems:
                print(f"        log: {problem}", flush=True)
            for generation, pauses in sorted(step.gc_pauses_ms.items()):
                print(f"        gc generation {generation}: {len(pauses)} pauses >= 5 ms, "
                      f"longest {max(pauses):.0f} ms, {sum(pauses):.0f} ms in all", flush=True)  # fmt: skip
            if profile:
                for name, share in top_functions(proxy.workdir / f"step_{rate}" / "profile.txt"):
                    print(f"        py-spy own time {share:5.1f} %  {name}", flush=True)
            if step.verdict != "held":
                print(f"  stopped ({step.verdict}); sipp files in "
                      f"{proxy.workdir / f'step_{rate}'}", flush=True)  # fmt: skip
                break
    finally:
        proxy.stop()
    return run


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("sipp") is None:
        print("sipp is not installed (apt-get install sip-tester)", file=sys.stderr)
        return 2
    work = Path(args.workdir or tempfile.mkdtemp(prefix="proxy_load-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    runs: dict[str, SystemRun] = {}
    with udp_buffers(args.udp_buffer, notes):
        print(f"# proxy load: {platform.node()}, {os.cpu_count()} CPUs, {platform.platform()}")
        print(f"steps of {args.step:g} s at {','.join(map(str, args.rates))} calls/s; "
              f"hold {args.hold} ms; work dir {work}; load average "
              f"{os.getloadavg()[0]:.2f} at start")  # fmt: skip
        for note in notes:
            print(note)
        for name in args.systems.split(","):
            proxy = make_proxy(name.strip(), work, args)
            problem = proxy if isinstance(proxy, str) else proxy.check()
            if problem is not None or isinstance(proxy, str):
                print(f"\n## {name}: left out: {problem}")
                runs[name] = SystemRun(name, note=str(problem))
                continue
            runs[name] = run_system(proxy, args)
    measured = {n: r for n, r in runs.items() if r.steps}
    for run in measured.values():
        print(f"\n### {run.name} ({run.version})\n\n{table(run)}")
    lines, data = summary(measured)
    print("\n### Summary\n\n" + "\n".join(lines))
    print(
        f"\nlatencies are sipp's, in steps of its clock tick (4 ms on this kernel); "
        f"'other load' is the CPUs the rest of the host kept busy during the step (of {os.cpu_count()}). Files: {work}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps({
            "host": {"node": platform.node(), "cpus": os.cpu_count(), "platform": platform.platform()},
            "settings": {k: v for k, v in vars(args).items() if k != "json"},
            "notes": notes,
            "systems": {n: r.to_json() for n, r in runs.items()},
            "summary": data,
        }, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
