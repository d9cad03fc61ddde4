"""Keeping the garbage collector's pauses short under load.

A proxy keeps every transaction for up to 64*T1 after it ends (RFC 3261 §17: Timers J, L,
M on UDP), so at 1,000 calls/s hundreds of thousands of objects are alive at any time and
a full collection walks all of them: pauses of a second, during which SIP timers slip and
peers retransmit. Per-call objects form no reference cycles (a test holds that), so reference
counting frees them all; the cyclic collector only has to look at new objects.

So the server freezes (``gc.freeze``) what survived each second: automatic collections then
walk only the objects of the last second. Once in a while (``full_every``) everything is
unfrozen and collected, so that any cycle that did form is reclaimed.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time

log = logging.getLogger("callscript.memory")


class CollectorTuning:
    """Periodic ``gc.freeze`` with an occasional full collection."""

    def __init__(self, *, interval: float = 1.0, full_every: float = 3600.0) -> None:
        self.interval = interval
        self.full_every = full_every
        self._task: asyncio.Task[None] | None = None
        self.full_collections = 0

    def start(self) -> None:
        """Collect and freeze what start-up made, then keep freezing survivors."""
        gc.collect()
        gc.freeze()
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        last_full = loop.time()
        while True:
            await asyncio.sleep(self.interval)
            if loop.time() - last_full >= self.full_every:
                last_full = loop.time()
                started = time.perf_counter()
                gc.unfreeze()
                found = gc.collect()
                gc.freeze()
                self.full_collections += 1
                log.info(
                    "full collection: %d unreachable objects, %.0f ms",
                    found,
                    (time.perf_counter() - started) * 1000,
                )
            else:
                gc.freeze()

    def stop(self) -> None:
        """Stop freezing and give every object back to the collector."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        gc.unfreeze()
