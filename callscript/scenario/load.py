"""Running a scenario once or under load: rate, concurrency, total calls, duration.

A UAC run starts call *i* (from 0) at ``start + i / rate`` (at once without a
rate), waiting for a free slot when ``concurrency`` calls are running, and
stops starting calls after ``calls`` of them or ``duration`` seconds,
whichever comes first; then it waits for the running ones. A UAS run answers
the calls that arrive until ``calls`` have arrived or ``duration`` has passed
(rate and concurrency are the caller's to choose), then waits for them.

A live progress line shows elapsed time, calls started, running, successful
and failed; the run ends with :class:`~callscript.scenario.stats.Stats`.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import TextIO

from callscript.errors import CallscriptError, ConfigError
from callscript.scenario.call import ScenarioCall
from callscript.scenario.endpoint import Endpoint
from callscript.scenario.inbox import ScenarioFailed
from callscript.scenario.loader import Scenario
from callscript.scenario.stats import CallRecord, Stats
from callscript.sip.uri import URI


@dataclass(frozen=True, slots=True)
class LoadSettings:
    """How many calls, how fast, how many at once, for how long.

    Args:
        calls: total calls (``None``: until ``duration``).
        rate: calls started per second (``None``: as fast as ``concurrency`` allows).
        concurrency: the most calls running at once (``None``: no limit).
        duration: seconds after which no call is started (``None``: no limit).
    """

    calls: int | None = 1
    rate: float | None = None
    concurrency: int | None = None
    duration: float | None = None

    def __post_init__(self) -> None:
        if self.calls is None and self.duration is None:
            raise ConfigError("give a number of calls, a duration, or both")
        for name in ("calls", "rate", "concurrency", "duration"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"{name} must be positive, not {value}")


class Progress:
    """A live progress line on ``stream``, rewritten in place on a terminal.

    Off a terminal the line is written only by :meth:`finish`, once.
    """

    def __init__(self, stream: TextIO, *, live: bool | None = None) -> None:
        self.stream = stream
        self.live = stream.isatty() if live is None else live
        self._shown = False

    @staticmethod
    def line(elapsed: float, started: int, running: int, ok: int, failed: int) -> str:
        """The progress text."""
        rate = started / elapsed if elapsed > 0 else 0.0
        return (
            f"{elapsed:7.1f} s  started {started}  running {running}  "
            f"ok {ok}  failed {failed}  {rate:.1f} calls/s"
        )

    def show(self, text: str) -> None:
        """Rewrite the line (on a terminal)."""
        if self.live:
            self.stream.write(f"\r{text}\x1b[K")
            self.stream.flush()
            self._shown = True

    def finish(self, text: str) -> None:
        """The last state of the line, then a newline."""
        self.stream.write(f"\r{text}\x1b[K\n" if self.live else f"{text}\n")
        self.stream.flush()


class Runner:
    """Runs ``scenario`` on ``endpoint`` as ``settings`` say; :meth:`run` returns the statistics.

    Args:
        target: the URI a UAC scenario calls (``call.target``).
        progress: where the live line goes (``None``: nowhere).
        interval: seconds between progress updates.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        scenario: Scenario,
        settings: LoadSettings | None = None,
        *,
        target: URI | None = None,
        progress: Progress | None = None,
        interval: float = 0.5,
    ) -> None:
        self.endpoint = endpoint
        self.scenario = scenario
        self.settings = settings or LoadSettings()
        self.target = target
        self.progress = progress
        self.interval = interval
        self.records: list[CallRecord] = []
        self.running: set[asyncio.Task[None]] = set()
        self._loop = endpoint.stack.loop
        self._started_at = self._loop.time()
        self._all_arrived = asyncio.Event()

    async def run(self) -> Stats:
        """Run the calls and return their statistics."""
        self._started_at = self._loop.time()
        ticker = asyncio.ensure_future(self._tick()) if self.progress is not None else None
        try:
            if self.scenario.role == "uac":
                await self._run_uac()
            else:
                await self._run_uas()
            if self.running:
                await asyncio.gather(*self.running, return_exceptions=True)
        finally:
            if ticker is not None:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticker
            self.endpoint.accepting = False
        if self.progress is not None:
            self.progress.finish(self._line())
        return Stats.of(self.records)

    async def _run_uac(self) -> None:
        settings, loop = self.settings, self._loop
        slots = asyncio.Semaphore(settings.concurrency) if settings.concurrency else None
        index = 0
        while settings.calls is None or index < settings.calls:
            if settings.rate is not None:
                await asyncio.sleep(
                    max(0.0, self._started_at + index / settings.rate - loop.time())
                )
            if slots is not None:
                await slots.acquire()
            if (
                settings.duration is not None
                and loop.time() - self._started_at >= settings.duration
            ):
                break
            call = self.endpoint.new_call(self.target)
            index += 1
            task = self._spawn(call)
            if slots is not None:
                task.add_done_callback(lambda _: slots.release())
            await asyncio.sleep(0)  # let the call send its first request before the next starts

    async def _run_uas(self) -> None:
        self.endpoint.on_new_call = self._arrived
        self.endpoint.accepting = True
        try:
            async with asyncio.timeout(self.settings.duration):
                await self._all_arrived.wait()
        except TimeoutError:
            pass
        self.endpoint.accepting = False

    def _arrived(self, call: ScenarioCall) -> None:
        calls = self.settings.calls
        if calls is not None and self.endpoint.started >= calls:
            self.endpoint.accepting = False
            self._all_arrived.set()
        self._spawn(call)

    def _spawn(self, call: ScenarioCall) -> asyncio.Task[None]:
        task = asyncio.ensure_future(self._one(call))
        self.running.add(task)
        task.add_done_callback(self.running.discard)
        return task

    async def _one(self, call: ScenarioCall) -> None:
        error: str | None = None
        try:
            await self.scenario.run(call)
        except ScenarioFailed as exc:
            error = str(exc)
        except (CallscriptError, OSError) as exc:
            error = f"step {call.step} {type(exc).__name__}: {exc}"
        except Exception as exc:  # a bug in the scenario fails its call, not the run
            error = f"step {call.step} raised {type(exc).__name__}: {exc}"
        finally:
            self.endpoint.finish(call)
        self.records.append(
            CallRecord(
                number=call.number,
                call_id=call.call_id,
                started=call.started_at,
                ended=self._loop.time(),
                error=error,
                response_time=call.response_time,
            )
        )

    def _line(self) -> str:
        ok = sum(1 for r in self.records if r.ok)
        return Progress.line(
            self._loop.time() - self._started_at,
            self.endpoint.started,
            len(self.running),
            ok,
            len(self.records) - ok,
        )

    async def _tick(self) -> None:
        assert self.progress is not None
        while True:
            self.progress.show(self._line())
            await asyncio.sleep(self.interval)
