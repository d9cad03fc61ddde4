"""Parse and forward benchmark: callscript against sippy, sipmessage and a bytes.split floor.

Run from the repository root::

    .venv/bin/python bench/parse.py            # full run (about a minute)
    .venv/bin/python bench/parse.py --quick    # fewer, shorter repeats
    .venv/bin/python bench/parse.py --json results.json

On the same messages (bench/messages/*.sip and RFC 4475 wsinv from the shared
conformance corpus) it times, as operations per second (best of N repeats):

(a) parse + read the From tag, top Via branch, CSeq number and Call-ID;
(b) a proxy's forward path: parse, change, serialize to bytes. Requests get
    a Via pushed, Max-Forwards decremented and a Record-Route added; the
    response gets its top Via removed (RFC 3261 §16.7 step 3), which is what a
    proxy does to a response.

Each implementation uses its own parser and its own public API. Every result
is checked once before timing (the four values, and the forwarded bytes
re-parsed); an implementation that fails or gives a wrong answer gets ``n/a``.
The floor is plain ``bytes.split`` into a dict with no checks at all.

A scaling section then times callscript on 1x/2x/4x/8x the headers of the
INVITE and on 250 KB / 500 KB / 1 MB of folded header lines, printing the cost
per byte so that linear (flat) or superlinear (rising) behaviour shows.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import sys
import timeit
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from callscript.sip.address import Address
from callscript.sip.message import Request, parse_message
from callscript.sip.via import Via

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MESSAGES = (("200 OK", "ok200.sip"), ("REGISTER", "register.sip"), ("INVITE+SDP", "invite.sip"))
PROXY_HOST = "proxy.example.com"
PROXY_BRANCH = "z9hG4bKpx7a3f9c21"
PROXY_VIA = f"SIP/2.0/UDP {PROXY_HOST}:5060;branch={PROXY_BRANCH}"
RECORD_ROUTE = f"<sip:{PROXY_HOST};lr>"

Fields = tuple[object, object, object, object]


def conformance_dir() -> Path:
    """The shared corpus: env CALLSCRIPT_CONFORMANCE, else <repo root>/../shared/conformance."""
    env = os.environ.get("CALLSCRIPT_CONFORMANCE")
    return Path(env) if env else ROOT.parent / "shared" / "conformance"


# -- callscript ----------------------------------------------------------------------


def callscript_access(data: bytes) -> Fields:
    msg = parse_message(data)
    return msg.from_addr.tag, msg.top_via.branch, msg.cseq.number, msg.call_id


def callscript_script_access(data: bytes) -> Fields:
    msg = parse_message(data)
    return msg["From"].params["tag"], msg["Via"][0].branch, msg["CSeq"].number, msg["Call-ID"].value


def callscript_forward(data: bytes) -> bytes:
    msg = parse_message(data)
    if isinstance(msg, Request):
        msg.insert("Via", Via("UDP", PROXY_HOST, 5060, params={"branch": PROXY_BRANCH}))
        hops = msg.max_forwards
        msg["Max-Forwards"] = 69 if hops is None else hops - 1
        msg.insert("Record-Route", Address(f"sip:{PROXY_HOST};lr"))
    else:
        msg.pop("Via")
    return bytes(msg)


# -- sippy (bench-only peer) ---------------------------------------------------------


def sippy_impl() -> tuple[Callable[[bytes], Fields], Callable[[bytes], bytes]]:
    from sippy.SipHeader import SipHeader  # type: ignore[import-untyped]
    from sippy.SipRequest import SipRequest  # type: ignore[import-untyped]
    from sippy.SipResponse import SipResponse  # type: ignore[import-untyped]

    def parse(data: bytes) -> Any:
        text = data.decode("utf-8")  # sippy parses str
        return SipResponse(buf=text) if text.startswith("SIP/") else SipRequest(buf=text)

    def access(data: bytes) -> Fields:
        m = parse(data)
        return (
            m.getHFBody("from").getTag(),
            m.getHFBody("via").getBranch(),
            m.getHFBody("cseq").getCSeqNum(),
            str(m.getHFBody("call-id")),
        )

    def forward(data: bytes) -> bytes:
        m = parse(data)
        if isinstance(m, SipRequest):
            m.insertHeaderBefore(m.getHF("via"), SipHeader(name="via", bodys=PROXY_VIA))
            m.getHFBody("max-forwards").incNum(-1)
            route = SipHeader(name="record-route", bodys=RECORD_ROUTE)
            existing = m.getHFs("record-route")
            if existing:
                m.insertHeaderBefore(existing[0], route)
            else:
                m.appendHeader(route)
        else:
            m.removeHeader(m.getHF("via"))
        return m.localStr().encode("utf-8")  # type: ignore[no-any-return]

    return access, forward


# -- sipmessage (bench-only peer) ----------------------------------------------------


def sipmessage_impl() -> tuple[Callable[[bytes], Fields], Callable[[bytes], bytes]]:
    from sipmessage import Address as SmAddress
    from sipmessage import Message as SmMessage
    from sipmessage import Parameters as SmParameters
    from sipmessage import Request as SmRequest
    from sipmessage import Via as SmVia

    def access(data: bytes) -> Fields:
        m = SmMessage.parse(data)
        return (
            m.from_address.parameters["tag"],
            m.via[0].parameters["branch"],
            m.cseq.sequence,
            m.call_id,
        )

    def forward(data: bytes) -> bytes:
        m = SmMessage.parse(data)
        if isinstance(m, SmRequest):
            top = SmVia(
                transport="UDP",
                host=PROXY_HOST,
                port=5060,
                parameters=SmParameters(branch=PROXY_BRANCH),
            )
            m.via = [top, *m.via]
            m.max_forwards = (m.max_forwards or 70) - 1
            m.record_route = [SmAddress.parse(RECORD_ROUTE), *m.record_route]
        else:
            m.via = m.via[1:]
        return bytes(m)

    return access, forward


# -- the floor: bytes.split into a dict, no checks -----------------------------------


def floor_split(data: bytes) -> tuple[bytes, dict[bytes, list[bytes]], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    headers: dict[bytes, list[bytes]] = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return lines[0], headers, body


def floor_access(data: bytes) -> Fields:
    _, h, _ = floor_split(data)
    tag = h[b"from"][0].partition(b";tag=")[2].partition(b";")[0]
    branch = h[b"via"][0].partition(b";branch=")[2].partition(b";")[0]
    return tag, branch, int(h[b"cseq"][0].partition(b" ")[0]), h[b"call-id"][0]


def floor_forward(data: bytes) -> bytes:
    start, h, body = floor_split(data)
    if start.startswith(b"SIP/"):
        h[b"via"].pop(0)
    else:
        h[b"via"].insert(0, PROXY_VIA.encode())
        h[b"max-forwards"] = [b"%d" % (int(h[b"max-forwards"][0]) - 1)]
        h.setdefault(b"record-route", []).insert(0, RECORD_ROUTE.encode())
    lines = [start]
    for name, values in h.items():
        lines += [name + b": " + value for value in values]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


# -- checks: every implementation must give the right answer before it is timed -----


def plain(value: object) -> object:
    return value.decode() if isinstance(value, bytes) else value


def check_access(fields: Fields, expected: Fields) -> None:
    got = tuple(plain(v) for v in fields)
    if got != expected:
        raise AssertionError(f"read {got}, expected {expected}")


def check_forward(out: bytes, original: bytes) -> None:
    """The forwarded bytes parse and carry exactly the proxy's changes."""
    before, after = parse_message(original), parse_message(out)
    after.validate()
    if isinstance(before, Request):
        vias = [v.branch for v in after.via]
        ok = (
            vias == [PROXY_BRANCH, *(v.branch for v in before.via)]
            and after.max_forwards == (before.max_forwards or 70) - 1
            and str(after["Record-Route"][0].uri) == f"sip:{PROXY_HOST};lr"
        )
    else:
        ok = [v.branch for v in after.via] == [v.branch for v in before.via[1:]]
    ok = ok and after.call_id == before.call_id and after.body == before.body
    if not ok:
        raise AssertionError("forwarded message does not carry the expected changes")


# -- timing ---------------------------------------------------------------------------


@dataclass
class Settings:
    target: float  # seconds per repeat
    repeat: int


def ops_per_sec(fn: Callable[[], object], settings: Settings) -> float:
    """Calls per second: best of ``repeat`` runs, each sized to about ``target`` seconds."""
    timer = timeit.Timer(fn)
    number = 1
    while True:
        elapsed = timer.timeit(number)
        if elapsed >= settings.target / 4 or number >= 10_000_000:
            break
        number *= 4 if elapsed < settings.target / 40 else 2
    number = max(1, int(number * settings.target / max(elapsed, 1e-9)))
    best = min(timer.repeat(repeat=settings.repeat, number=number)) / number
    return 1.0 / best


@dataclass
class Cell:
    ops: float | None
    note: str = ""


@dataclass
class Row:
    name: str
    size: int
    cells: dict[str, Cell] = field(default_factory=dict)


def measure(
    fn: Callable[[bytes], object], data: bytes, check: Callable[[Any], None], settings: Settings
) -> Cell:
    try:
        check(fn(data))
    except Exception as exc:  # a peer that cannot handle the message gets n/a
        return Cell(None, f"{type(exc).__name__}: {str(exc)[:60]}")
    return Cell(ops_per_sec(functools.partial(fn, data), settings))


def load_messages(notes: list[str]) -> list[tuple[str, bytes]]:
    out = [(label, (HERE / "messages" / name).read_bytes()) for label, name in MESSAGES]
    wsinv = conformance_dir() / "rfc4475" / "wsinv.dat"
    if wsinv.is_file():
        out.append(("RFC 4475 wsinv", wsinv.read_bytes()))
    else:
        notes.append(f"RFC 4475 wsinv row skipped: {wsinv} not found (set CALLSCRIPT_CONFORMANCE)")
    return out


def run_compare(settings: Settings, notes: list[str]) -> tuple[list[Row], list[Row]]:
    access: dict[str, Callable[[bytes], Fields]] = {
        "callscript": callscript_access,
        "callscript (script style)": callscript_script_access,
    }
    forward: dict[str, Callable[[bytes], bytes]] = {"callscript": callscript_forward}
    for peer, make in (("sippy", sippy_impl), ("sipmessage", sipmessage_impl)):
        try:
            access[peer], forward[peer] = make()
        except ImportError as exc:
            notes.append(f"{peer} not installed ({exc}); pip install -e '.[bench]'")
    access["floor"], forward["floor"] = floor_access, floor_forward

    access_rows: list[Row] = []
    forward_rows: list[Row] = []
    for label, data in load_messages(notes):
        msg = parse_message(data)
        expected = (msg.from_addr.tag, msg.top_via.branch, msg.cseq.number, msg.call_id)
        a_row, f_row = Row(label, len(data)), Row(label, len(data))
        for name, fn in access.items():
            a_row.cells[name] = measure(
                fn, data, functools.partial(check_access, expected=expected), settings
            )
        for name, fwd in forward.items():
            f_row.cells[name] = measure(
                fwd, data, functools.partial(check_forward, original=data), settings
            )
        access_rows.append(a_row)
        forward_rows.append(f_row)
        for row, what in ((a_row, "parse+access"), (f_row, "forward")):
            for name, cell in row.cells.items():
                if cell.ops is None:
                    notes.append(f"{name} on {label} ({what}): n/a, {cell.note}")
    return access_rows, forward_rows


# -- scaling ----------------------------------------------------------------------------


def scaled_headers(base: bytes, factor: int) -> bytes:
    """The INVITE with ``factor`` times its header count (extra Record-Route and X- lines)."""
    head, _, body = base.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    count = len(lines) - 1
    extra = []
    for i in range(count * (factor - 1)):
        if i % 2:
            extra.append(b"Record-Route: <sip:p%d.example.net;lr>" % i)
        else:
            extra.append(b"X-Extra-%d: value number %d" % (i, i))
    # Before Content-Type / Content-Length, the last two lines.
    return b"\r\n".join([*lines[:-2], *extra, *lines[-2:]]) + b"\r\n\r\n" + body


def folded_one_header(base: bytes, size: int) -> bytes:
    """``base`` plus one X-Folded header folded over continuation lines, ``size`` bytes in all."""
    head, _, body = base.partition(b"\r\n\r\n")
    piece = b"\r\n continued-value-0123456789abcdefghijklmnopqrstuvwxyz"
    count = max(1, (size - len(base)) // len(piece))
    return head + b"\r\nX-Folded: start" + piece * count + b"\r\n\r\n" + body


def folded_many_headers(base: bytes, size: int) -> bytes:
    """``base`` plus many X-F<n> headers, each folded over three lines, ``size`` bytes in all."""
    head, _, body = base.partition(b"\r\n\r\n")
    extra = []
    total = len(base)
    i = 0
    while total < size:
        line = b"\r\nX-F%d: first\r\n second\r\n\tthird" % i
        extra.append(line)
        total += len(line)
        i += 1
    return head + b"".join(extra) + b"\r\n\r\n" + body


def full_check(data: bytes) -> None:
    parse_message(data).validate()


@dataclass
class ScaleRow:
    label: str
    headers: int
    size: int
    parse_s: float
    full_s: float


def run_scaling(settings: Settings) -> list[ScaleRow]:
    invite = (HERE / "messages" / "invite.sip").read_bytes()
    register = (HERE / "messages" / "register.sip").read_bytes()
    cases: list[tuple[str, bytes]] = [
        (f"{f}x headers", scaled_headers(invite, f)) for f in (1, 2, 4, 8)
    ]
    for size, label in ((250_000, "250 KB"), (500_000, "500 KB"), (1_000_000, "1 MB")):
        cases.append((f"{label}, one folded header", folded_one_header(register, size)))
    for size, label in ((250_000, "250 KB"), (500_000, "500 KB"), (1_000_000, "1 MB")):
        cases.append((f"{label}, many folded headers", folded_many_headers(register, size)))
    slow = Settings(target=max(settings.target, 0.05), repeat=settings.repeat)
    rows = []
    for label, data in cases:
        full_check(data)
        current = settings if len(data) < 50_000 else slow
        parse_ops = ops_per_sec(functools.partial(parse_message, data), current)
        full_ops = ops_per_sec(functools.partial(full_check, data), current)
        rows.append(
            ScaleRow(
                label,
                len(parse_message(data).header_names()),
                len(data),
                1 / parse_ops,
                1 / full_ops,
            )
        )
    return rows


# -- report -------------------------------------------------------------------------------


def fmt_ops(cell: Cell | None) -> str:
    return "n/a" if cell is None or cell.ops is None else f"{cell.ops:,.0f}"


def fmt_time(seconds: float) -> str:
    if seconds >= 1e-3:
        return f"{seconds * 1e3:,.2f} ms"
    return f"{seconds * 1e6:,.1f} µs"


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a / b


def access_table(rows: list[Row]) -> tuple[list[str], list[dict[str, Any]]]:
    names = list(rows[0].cells) if rows else []
    out = [
        "### (a) parse + read From tag, top Via branch, CSeq number, Call-ID"
        " (ops/s, higher is better)",
        "",
        "| message | bytes | " + " | ".join(names) + " | callscript / faster peer (goal >= 3x) |",
        "|---|---:|" + "---:|" * len(names) + "---:|",
    ]
    summary = []
    for row in rows:
        peers = [row.cells[p].ops for p in ("sippy", "sipmessage") if p in row.cells]
        best = max((p for p in peers if p is not None), default=None)
        r = ratio(row.cells["callscript"].ops, best)
        mark = (
            "n/a (no peer parses it)"
            if r is None
            else f"{r:.1f}x {'ok' if r >= 3 else 'BELOW GOAL'}"
        )
        cells = " | ".join(fmt_ops(row.cells.get(n)) for n in names)
        out.append(f"| {row.name} | {row.size} | {cells} | {mark} |")
        summary.append({"message": row.name, "ratio_vs_faster_peer": r})
    return out, summary


def forward_table(rows: list[Row]) -> tuple[list[str], list[dict[str, Any]]]:
    names = list(rows[0].cells) if rows else []
    out = [
        "### (b) proxy forward: parse + changes + serialize to bytes (ops/s, higher is better)",
        "",
        "| message | bytes | " + " | ".join(names) + " | floor / callscript (goal <= 3) |",
        "|---|---:|" + "---:|" * len(names) + "---:|",
    ]
    summary = []
    for row in rows:
        r = ratio(row.cells["floor"].ops, row.cells["callscript"].ops)
        mark = (
            "n/a (floor cannot handle it)"
            if r is None
            else f"{r:.2f} {'ok' if r <= 3 else 'ABOVE GOAL'}"
        )
        cells = " | ".join(fmt_ops(row.cells.get(n)) for n in names)
        out.append(f"| {row.name} | {row.size} | {cells} | {mark} |")
        summary.append({"message": row.name, "floor_over_callscript": r})
    return out, summary


def scaling_table(rows: list[ScaleRow]) -> list[str]:
    out = [
        "### scaling (callscript): time per message and cost per byte",
        "",
        "parse = parse_message (lazy: start line, header split, Content-Length); "
        "full = parse_message + validate() (every header parsed and checked). "
        "A flat ns/byte column means linear cost.",
        "",
        "| input | headers | bytes | parse | parse ns/byte | parse µs/header"
        " | full | full ns/byte |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        per_byte = r.parse_s / r.size * 1e9
        per_header = r.parse_s / r.headers * 1e6
        out.append(
            f"| {r.label} | {r.headers:,} | {r.size:,} | {fmt_time(r.parse_s)} | {per_byte:.1f} "
            f"| {per_header:.2f} | {fmt_time(r.full_s)} | {r.full_s / r.size * 1e9:.1f} |"
        )
    return out


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "machine": platform.machine()}
    for dist in ("callscript", "sippy", "sipmessage"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--quick", action="store_true", help="fewer and shorter repeats (rough numbers)"
    )
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    args = parser.parse_args(argv)
    settings = Settings(target=0.02, repeat=3) if args.quick else Settings(target=0.2, repeat=7)

    notes: list[str] = []
    access_rows, forward_rows = run_compare(settings, notes)
    scale_rows = run_scaling(settings)

    info = versions()
    lines = [
        f"## parse benchmark ({'quick' if args.quick else 'full'} run; best of {settings.repeat})",
        "",
        ", ".join(f"{k} {v}" for k, v in info.items()),
        "",
    ]
    table_a, summary_a = access_table(access_rows)
    table_b, summary_b = forward_table(forward_rows)
    lines += [*table_a, "", *table_b, "", *scaling_table(scale_rows)]
    if notes:
        lines += ["", "Notes:", *(f"- {n}" for n in notes)]
    print("\n".join(lines))

    if args.json:
        result = {
            "settings": {
                "quick": args.quick,
                "repeat": settings.repeat,
                "target_s": settings.target,
            },
            "versions": info,
            "parse_access": {r.name: {n: c.ops for n, c in r.cells.items()} for r in access_rows},
            "forward": {r.name: {n: c.ops for n, c in r.cells.items()} for r in forward_rows},
            "ratios": {"parse_access": summary_a, "forward": summary_b},
            "scaling": [vars(r) for r in scale_rows],
            "notes": notes,
        }
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
