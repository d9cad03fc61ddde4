"""What a scenario run measured: one record per call, and the statistics over them.

Response time is, per call, the time from the call's start (its first
request sent, or for a UAS the first request received) to the first final
response a step took. Percentiles use the nearest-rank method: the p-th
percentile is the smallest value with at least p % of the values at or below
it, so it is always one of the measured values.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PERCENTILES = (50, 90, 95, 99)


@dataclass(frozen=True, slots=True)
class CallRecord:
    """How one call of a run went.

    Attributes:
        number: the call's number in the run (from 1).
        call_id: its Call-ID.
        started: when it started (loop clock, seconds).
        ended: when its scenario finished.
        error: ``None`` when every step passed, else the failure text.
        response_time: seconds to the first final response, when one came.
    """

    number: int
    call_id: str
    started: float
    ended: float
    error: str | None = None
    response_time: float | None = None

    @property
    def ok(self) -> bool:
        """Whether every step passed."""
        return self.error is None


def percentile(values: Sequence[float], p: float) -> float | None:
    """The ``p``-th percentile of ``values`` by nearest rank; ``None`` for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True, slots=True)
class Stats:
    """The statistics of a run.

    Attributes:
        calls: calls started (UAC) or received (UAS).
        successful: calls whose every step passed.
        failed: the others.
        elapsed: seconds from the first call's start to the last call's end.
        response_times: percentile -> seconds (50, 90, 95, 99 and 100 for the maximum).
        failures: failure text -> how many calls failed that way.
    """

    calls: int
    successful: int
    failed: int
    elapsed: float
    response_times: dict[int, float | None] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, records: Iterable[CallRecord]) -> Stats:
        """The statistics of ``records``."""
        records = list(records)
        times = [r.response_time for r in records if r.response_time is not None]
        elapsed = (
            max(r.ended for r in records) - min(r.started for r in records) if records else 0.0
        )
        failures = Counter(r.error for r in records if r.error is not None)
        return cls(
            calls=len(records),
            successful=sum(1 for r in records if r.ok),
            failed=sum(1 for r in records if not r.ok),
            elapsed=elapsed,
            response_times={p: percentile(times, p) for p in (*PERCENTILES, 100)},
            failures=dict(failures.most_common()),
        )

    @property
    def rate(self) -> float:
        """Calls per second over the run."""
        return self.calls / self.elapsed if self.elapsed > 0 else 0.0

    def row(self) -> dict[str, str]:
        """The CSV row: counts, rate, and response-time percentiles in milliseconds."""
        row = {
            "calls": str(self.calls),
            "successful": str(self.successful),
            "failed": str(self.failed),
            "elapsed_s": f"{self.elapsed:.3f}",
            "rate_per_s": f"{self.rate:.2f}",
        }
        for p, value in self.response_times.items():
            name = "rt_max_ms" if p == 100 else f"rt_p{p}_ms"
            row[name] = "" if value is None else f"{value * 1000:.1f}"
        return row

    def write_csv(self, path: str | Path) -> None:
        """Write :meth:`row` with its header line to ``path``."""
        row = self.row()
        with Path(path).open("w", newline="", encoding="utf-8") as out:
            writer = csv.DictWriter(out, fieldnames=list(row))
            writer.writeheader()
            writer.writerow(row)

    def summary(self) -> str:
        """A few lines for people: counts, rate, percentiles, the commonest failures."""
        lines = [
            f"calls {self.calls}  successful {self.successful}  failed {self.failed}  "
            f"in {self.elapsed:.2f} s ({self.rate:.1f}/s)"
        ]
        times = "  ".join(
            f"{'max' if p == 100 else f'p{p}'} {value * 1000:.1f} ms"
            for p, value in self.response_times.items()
            if value is not None
        )
        if times:
            lines.append(f"response time  {times}")
        for text, count in list(self.failures.items())[:5]:
            lines.append(f"  {count} x {text}")
        return "\n".join(lines)
