"""Prometheus metrics: counters and histograms a Server owns, in the text exposition format.

One :class:`Metrics` instance belongs to one running server (no module-level
registry): the engine counts into it (``metrics.inc("callscript_sip_requests_total",
method="INVITE")``), the management API serves :meth:`Metrics.render` at ``/metrics``.
Values that other parts already keep (the sandbox pool's restarts, the script
host's reloads) are read when rendered, through callbacks (:meth:`Metrics.gauge_from`,
:meth:`Metrics.counter_from`), so nothing counts twice.

Written here rather than taken from ``prometheus_client``: the format is a few
lines of text (https://prometheus.io/docs/instrumenting/exposition_formats/),
and a small class keeps every series on the instance, checked against the
families declared in :data:`STANDARD`.
"""

from __future__ import annotations

import bisect
import math
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# Seconds; a proxy decision is a store lookup and a script step or two.
DECISION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

Labels = tuple[tuple[str, str], ...]
Sample = tuple[Mapping[str, str], float]


@dataclass(frozen=True, slots=True)
class Family:
    """A declared metric: ``kind`` is counter, gauge or histogram; ``labels`` their names."""

    name: str
    kind: str
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if _NAME_RE.fullmatch(self.name) is None:
            raise ValueError(f"bad metric name {self.name!r}")
        if self.kind not in ("counter", "gauge", "histogram"):
            raise ValueError(f"bad metric kind {self.kind!r}")
        for label in self.labels:
            if _LABEL_RE.fullmatch(label) is None or label == "le":
                raise ValueError(f"bad label name {label!r}")
        if self.kind == "histogram" and list(self.buckets) != sorted(set(self.buckets)):
            raise ValueError("histogram buckets must increase")


# The families every server declares (the engine counts into them; see the report of the
# web helper for where).
STANDARD: tuple[Family, ...] = (
    Family("callscript_sip_requests_total", "counter", "SIP requests received", ("method",)),
    Family(
        "callscript_sip_responses_total",
        "counter",
        "Final SIP responses sent for requests we routed, by method and status class",
        ("method", "class"),
    ),
    Family("callscript_calls_total", "counter", "Calls (INVITEs) by outcome", ("outcome",)),
    Family(
        "callscript_script_invocations_total",
        "counter",
        "User script runs by direction",
        ("direction",),
    ),
    Family(
        "callscript_script_violations_total",
        "counter",
        "Script steps that failed (error, timeout, memory, crash, quarantined)",
        ("kind",),
    ),
    Family("callscript_script_quarantines_total", "counter", "Script versions put in quarantine"),
    Family("callscript_script_reloads_total", "counter", "Script changes applied (hot reload)"),
    Family("callscript_scripts_live", "gauge", "User scripts live"),
    Family("callscript_sandbox_worker_restarts_total", "counter", "Sandbox workers replaced"),
    Family(
        "callscript_proxy_decision_seconds",
        "histogram",
        "Time from a request's arrival to the routing decision",
        ("kind",),
        DECISION_BUCKETS,
    ),
    Family(
        "callscript_http_requests_total",
        "counter",
        "Management API requests by method, route and status class",
        ("method", "route", "class"),
    ),
    Family("callscript_script_uploads_total", "counter", "Script uploads by result", ("result",)),
)


@dataclass(slots=True)
class _Histogram:
    counts: list[int]
    total: float = 0.0
    count: int = 0


@dataclass(slots=True)
class _Series:
    family: Family
    values: dict[Labels, float] = field(default_factory=dict)
    histograms: dict[Labels, _Histogram] = field(default_factory=dict)
    callback: Callable[[], Sequence[Sample]] | None = None


class Metrics:
    """The metrics of one server: declare families, count, observe, render.

    Thread-safe: the sandbox and the watcher may report from other threads.
    """

    def __init__(self, families: Sequence[Family] = STANDARD) -> None:
        self._lock = threading.Lock()
        self._series: dict[str, _Series] = {}
        for family in families:
            self.declare(family)

    def declare(self, family: Family) -> None:
        """Add a family (ValueError when the name is taken by another)."""
        with self._lock:
            known = self._series.get(family.name)
            if known is not None and known.family != family:
                raise ValueError(f"metric {family.name!r} is already declared differently")
            self._series.setdefault(family.name, _Series(family))

    def inc(self, name: str, value: float = 1.0, /, **labels: str) -> None:
        """Add ``value`` to a counter (or gauge) series.

        Raises:
            ValueError: unknown metric, wrong labels, or a counter going down.
        """
        series = self._get(name, ("counter", "gauge"))
        if series.family.kind == "counter" and value < 0:
            raise ValueError(f"counter {name!r} cannot go down")
        key = _key(series.family, labels)
        with self._lock:
            series.values[key] = series.values.get(key, 0.0) + value

    def set(self, name: str, value: float, /, **labels: str) -> None:
        """Set a gauge series."""
        series = self._get(name, ("gauge",))
        key = _key(series.family, labels)
        with self._lock:
            series.values[key] = value

    def observe(self, name: str, value: float, /, **labels: str) -> None:
        """Record one observation in a histogram."""
        series = self._get(name, ("histogram",))
        key = _key(series.family, labels)
        buckets = series.family.buckets
        with self._lock:
            hist = series.histograms.get(key)
            if hist is None:
                hist = series.histograms[key] = _Histogram([0] * len(buckets))
            index = bisect.bisect_left(buckets, value)
            if index < len(buckets):
                hist.counts[index] += 1
            hist.total += value
            hist.count += 1

    def counter_from(self, name: str, read: Callable[[], Sequence[Sample]]) -> None:
        """Read a counter's samples from ``read`` at render time (state kept elsewhere)."""
        self._get(name, ("counter", "gauge")).callback = read

    gauge_from = counter_from

    def value(self, name: str, /, **labels: str) -> float:
        """The current value of one counter or gauge series (0 when never counted)."""
        series = self._get(name, ("counter", "gauge"))
        key = _key(series.family, labels)
        if series.callback is not None:
            for sample_labels, sample in series.callback():
                if _key(series.family, dict(sample_labels)) == key:
                    return sample
            return 0.0
        with self._lock:
            return series.values.get(key, 0.0)

    def render(self) -> str:
        """Every family in the Prometheus text exposition format (version 0.0.4)."""
        lines: list[str] = []
        with self._lock:
            series_list = list(self._series.values())
        for series in series_list:
            family = series.family
            lines.append(f"# HELP {family.name} {_escape_help(family.help)}")
            lines.append(f"# TYPE {family.name} {family.kind}")
            if family.kind == "histogram":
                with self._lock:
                    hists = {
                        k: _Histogram(list(h.counts), h.total, h.count)
                        for k, h in series.histograms.items()
                    }
                for key, hist in sorted(hists.items()):
                    lines += _histogram_lines(family, key, hist)
                continue
            if series.callback is not None:
                samples = [(_key(family, dict(labels)), v) for labels, v in series.callback()]
            else:
                with self._lock:
                    samples = list(series.values.items())
            if not samples and not family.labels:
                samples = [((), 0.0)]
            for key, number in sorted(samples):
                lines.append(f"{family.name}{_labels(key)} {_number(number)}")
        return "\n".join(lines) + "\n"

    def _get(self, name: str, kinds: tuple[str, ...]) -> _Series:
        series = self._series.get(name)
        if series is None:
            raise ValueError(f"unknown metric {name!r}")
        if series.family.kind not in kinds:
            raise ValueError(f"metric {name!r} is a {series.family.kind}")
        return series


def status_class(status: int) -> str:
    """``2xx`` for 200..299 and so on (the ``class`` label)."""
    return f"{status // 100}xx"


def _key(family: Family, labels: Mapping[str, str]) -> Labels:
    if set(labels) != set(family.labels):
        raise ValueError(
            f"metric {family.name!r} takes labels {family.labels}, got {sorted(labels)}"
        )
    return tuple((name, str(labels[name])) for name in family.labels)


def _labels(key: Labels, extra: Labels = ()) -> str:
    pairs = (*key, *extra)
    if not pairs:
        return ""
    return "{" + ",".join(f'{name}="{_escape_value(value)}"' for name, value in pairs) + "}"


def _histogram_lines(family: Family, key: Labels, hist: _Histogram) -> list[str]:
    lines = []
    running = 0
    for bound, count in zip(family.buckets, hist.counts, strict=True):
        running += count
        lines.append(f"{family.name}_bucket{_labels(key, (('le', _number(bound)),))} {running}")
    lines.append(f"{family.name}_bucket{_labels(key, (('le', '+Inf'),))} {hist.count}")
    lines.append(f"{family.name}_sum{_labels(key)} {_number(hist.total)}")
    lines.append(f"{family.name}_count{_labels(key)} {hist.count}")
    return lines


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    return str(int(value)) if value == int(value) and abs(value) < 1e15 else repr(value)


def _escape_value(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


EMPTY_LABELS: Mapping[str, str] = MappingProxyType({})
