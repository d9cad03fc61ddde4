"""Run statistics: nearest-rank percentiles, counts, the CSV row and the summary."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from callscript.errors import ConfigError
from callscript.scenario import CallRecord, LoadSettings, Progress, Stats, percentile


def record(number: int, rt: float | None, error: str | None = None) -> CallRecord:
    return CallRecord(number, f"c{number}", float(number), float(number) + 1, error, rt)


def test_percentile_is_a_measured_value_by_nearest_rank() -> None:
    """The p-th percentile is the smallest value with p % of the values at or below it."""
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 90) == 90.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([7.0], 1) == 7.0
    assert percentile([], 50) is None


def test_stats_count_calls_failures_and_response_times() -> None:
    """Successful and failed calls are counted; failures are grouped by their text."""
    records = [record(i, i / 1000) for i in range(1, 9)]
    records += [record(9, None, "step 4 expected 200, got 486 Busy Here")] * 2
    stats = Stats.of(records)
    assert (stats.calls, stats.successful, stats.failed) == (10, 8, 2)
    assert stats.elapsed == 9.0
    assert stats.rate == pytest.approx(10 / 9)
    assert stats.response_times == {50: 0.004, 90: 0.008, 95: 0.008, 99: 0.008, 100: 0.008}
    assert stats.failures == {"step 4 expected 200, got 486 Busy Here": 2}
    summary = stats.summary()
    assert "calls 10  successful 8  failed 2" in summary
    assert "p50 4.0 ms" in summary and "max 8.0 ms" in summary
    assert "2 x step 4 expected 200, got 486 Busy Here" in summary


def test_csv_has_one_header_and_one_row(tmp_path: Path) -> None:
    """The CSV is a header line and the row: counts, rate, percentiles in milliseconds."""
    out = tmp_path / "stats.csv"
    Stats.of([record(1, 0.0123), record(2, None, "boom")]).write_csv(out)
    rows = list(csv.DictReader(out.open()))
    assert rows == [
        {
            "calls": "2",
            "successful": "1",
            "failed": "1",
            "elapsed_s": "2.000",
            "rate_per_s": "1.00",
            "rt_p50_ms": "12.3",
            "rt_p90_ms": "12.3",
            "rt_p95_ms": "12.3",
            "rt_p99_ms": "12.3",
            "rt_max_ms": "12.3",
        }
    ]


def test_no_calls_no_rate_and_empty_percentiles() -> None:
    """An empty run has zero counts and no percentiles."""
    stats = Stats.of([])
    assert (stats.calls, stats.rate, stats.elapsed) == (0, 0.0, 0.0)
    assert stats.row()["rt_p50_ms"] == ""


def test_load_settings_refuse_nonsense() -> None:
    """A run needs calls or a duration, and positive numbers."""
    with pytest.raises(ConfigError):
        LoadSettings(calls=None, duration=None)
    with pytest.raises(ConfigError):
        LoadSettings(calls=10, rate=0)
    with pytest.raises(ConfigError):
        LoadSettings(calls=-1)
    assert LoadSettings(calls=None, duration=5).duration == 5


class Tty:
    def __init__(self, tty: bool) -> None:
        self.text = ""
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty

    def write(self, text: str) -> int:
        self.text += text
        return len(text)

    def flush(self) -> None:
        pass


def test_progress_line_rewrites_itself_on_a_terminal_only() -> None:
    """On a terminal the line is rewritten in place; elsewhere only the final line is written."""
    line = Progress.line(2.0, 40, 3, 36, 1)
    assert line == "    2.0 s  started 40  running 3  ok 36  failed 1  20.0 calls/s"
    tty = Tty(True)
    progress = Progress(tty)  # type: ignore[arg-type]
    progress.show("a")
    progress.finish("b")
    assert tty.text == "\ra\x1b[K\rb\x1b[K\n"
    plain = Tty(False)
    progress = Progress(plain)  # type: ignore[arg-type]
    progress.show("a")
    progress.finish("b")
    assert plain.text == "b\n"
