"""Proxy hot path benchmark: the CPU one relayed INVITE costs the sans-I/O core.

Run from the repository root::

    .venv/bin/python bench/forward.py            # full run (a few seconds)
    .venv/bin/python bench/forward.py --quick    # fewer, shorter repeats
    .venv/bin/python bench/forward.py --json results.json

On bench/messages/invite.sip it times, one after the other, the steps a stateful
proxy takes on a request it relays (the transaction layer and the script engine
left out):

- parse: ``parse_message`` with the server's size limit;
- stamp_via: ``received`` on the top Via (RFC 3261 §18.2.1);
- validate: ``validate_request`` (RFC 3261 §16.3: the headers the proxy uses,
  URI scheme, Max-Forwards, loop detection, Proxy-Require);
- route: ``loop_hash`` of the request as received and ``preprocess_route`` (§16.4);
- forward_copy: the copy for one target (§16.6: Request-URI, Max-Forwards,
  Record-Route, Via with the loop-detecting branch);
- bytes: the copy serialized for the transport.

Each row is the time of everything up to that step (best of N repeats, as
operations per second and µs per message), and the difference is that step's
cost. The bytes.split floor of bench/parse.py (split, pushed Via, Max-Forwards,
Record-Route, joined again, nothing checked) is printed for scale. The forwarded
bytes are checked once before timing: they parse, validate, and carry the changes.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import timeit
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from callscript.sip.events import Peer
from callscript.sip.message import Request, parse_message
from callscript.sip.proxy.config import ProxyConfig
from callscript.sip.proxy.forward import forward_copy
from callscript.sip.proxy.route import preprocess_route
from callscript.sip.proxy.validate import loop_hash, validate_request
from callscript.sip.receive import stamp_via
from callscript.sip.uri import URI, parse_uri

HERE = Path(__file__).resolve().parent
MESSAGE = HERE / "messages" / "invite.sip"
MAX_SIZE = 65535
PROXY = ("192.0.2.10", 5060)
CONFIG = ProxyConfig(
    domains=frozenset({"biloxi.example.com"}),
    local_hosts=frozenset({PROXY[0]}),
    local_ports=frozenset({PROXY[1]}),
    via={"UDP": PROXY},
)
SOURCE = Peer("UDP", "192.0.2.20", 5060)
TARGET = "sip:bob@192.0.2.4"
NEXT_HOP = Peer("UDP", "192.0.2.4", 5060)
FLOOR_VIA = b"SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKcs.0123456789abcdef.0.0;rport"
FLOOR_RECORD_ROUTE = b"<sip:192.0.2.10:5060;lr>"


def relay(data: bytes, target: URI, steps: int) -> object:
    """The first ``steps`` steps of relaying ``data``; returns what the last one made."""
    request = parse_message(data, max_size=MAX_SIZE)
    if steps == 1:
        return request
    assert isinstance(request, Request)
    stamp_via(request, SOURCE)
    if steps == 2:
        return request
    error = validate_request(request, CONFIG)
    if error is not None:
        raise AssertionError(f"the proxy refuses the benchmark request: {error.status}")
    if steps == 3:
        return request
    loop = loop_hash(request)
    preprocess_route(request, CONFIG)
    if steps == 4:
        return request
    copy = forward_copy(
        request, target, NEXT_HOP, SOURCE.transport, CONFIG, suffix="0.0", loop=loop
    )
    if steps == 5:
        return copy
    return bytes(copy)


STEPS = ("parse", "stamp_via", "validate", "route", "forward_copy", "bytes")


def floor_forward(data: bytes) -> bytes:
    """bytes.split into a dict, the proxy's changes, joined again: no checks at all."""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    headers: dict[bytes, list[bytes]] = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    headers[b"via"].insert(0, FLOOR_VIA)
    headers[b"max-forwards"] = [b"%d" % (int(headers[b"max-forwards"][0]) - 1)]
    headers.setdefault(b"record-route", []).insert(0, FLOOR_RECORD_ROUTE)
    out = [lines[0]]
    for name, values in headers.items():
        out += [name + b": " + value for value in values]
    return b"\r\n".join(out) + b"\r\n\r\n" + body


def check(data: bytes, target: URI) -> None:
    """The relayed bytes parse, validate and carry exactly the proxy's changes."""
    before = parse_message(data)
    out = relay(data, target, len(STEPS))
    assert isinstance(out, bytes) and isinstance(before, Request)
    after = parse_message(out)
    after.validate()
    assert isinstance(after, Request)
    vias = after.via
    ok = (
        after.uri == target
        and vias[0].host == PROXY[0]
        and (vias[0].branch or "").startswith("z9hG4bKcs.")
        and [v.branch for v in vias[1:]] == [v.branch for v in before.via]
        and vias[1].received == SOURCE.host
        and after.max_forwards == (before.max_forwards or 70) - 1
        and after["Record-Route"][0].uri.host == PROXY[0]
        and after.body == before.body
    )
    if not ok:
        raise AssertionError("relayed request does not carry the expected changes")


@dataclass
class Settings:
    target: float  # seconds per repeat
    repeat: int


def seconds_per_call(fn: Callable[[], object], settings: Settings) -> float:
    """Best of ``repeat`` runs, each sized to about ``target`` seconds (as bench/parse.py)."""
    timer = timeit.Timer(fn)
    number = 1
    while True:
        elapsed = timer.timeit(number)
        if elapsed >= settings.target / 4 or number >= 10_000_000:
            break
        number *= 4 if elapsed < settings.target / 40 else 2
    number = max(1, int(number * settings.target / max(elapsed, 1e-9)))
    return min(timer.repeat(repeat=settings.repeat, number=number)) / number


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer and shorter repeats")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    args = parser.parse_args(argv)
    settings = Settings(target=0.02, repeat=3) if args.quick else Settings(target=0.2, repeat=7)

    data = MESSAGE.read_bytes()
    target = parse_uri(TARGET)
    check(data, target)
    times = [
        seconds_per_call(lambda n=n: relay(data, target, n), settings)  # type: ignore[misc]
        for n in range(1, len(STEPS) + 1)
    ]
    floor = seconds_per_call(lambda: floor_forward(data), settings)

    lines = [
        f"## proxy forward benchmark ({'quick' if args.quick else 'full'} run;"
        f" best of {settings.repeat})",
        "",
        f"python {platform.python_version()}, {MESSAGE.name} ({len(data)} bytes)"
        f" from {SOURCE.host} to {TARGET}",
        "",
        "| up to step | µs per INVITE | step µs | INVITEs/s |",
        "|---|---:|---:|---:|",
    ]
    previous = 0.0
    for name, seconds in zip(STEPS, times, strict=True):
        lines.append(
            f"| {name} | {seconds * 1e6:.1f} | {(seconds - previous) * 1e6:.1f}"
            f" | {1 / seconds:,.0f} |"
        )
        previous = seconds
    lines += [
        "",
        f"floor (bytes.split, same changes, no checks): {floor * 1e6:.1f} µs, "
        f"{1 / floor:,.0f}/s; whole path / floor = {times[-1] / floor:.1f}",
    ]
    print("\n".join(lines))
    if args.json:
        result = {
            "settings": {
                "quick": args.quick,
                "repeat": settings.repeat,
                "target_s": settings.target,
            },
            "python": platform.python_version(),
            "steps_s": dict(zip(STEPS, times, strict=True)),
            "floor_s": floor,
        }
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
