"""Hands watchdog's file events to the event loop, debounced per script.

Watchdog calls back on its own thread; this module only moves each event onto
the loop with ``call_soon_threadsafe`` and coalesces bursts (an editor's atomic
save is a create, a modify and a rename within milliseconds) so that each
script is re-read once, ``debounce`` seconds after its last event, measured on
the loop's clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from callscript.engine.scripts import name_of_path

# watchdog event types that may change a script's content or existence.
_CHANGES = frozenset({"created", "modified", "deleted", "moved", "closed"})


class ScriptWatcher(FileSystemEventHandler):
    """Calls ``on_change(name)`` on the loop when script ``name`` may have changed."""

    def __init__(
        self,
        root: Path,
        loop: asyncio.AbstractEventLoop,
        on_change: Callable[[str], object],
        *,
        debounce: float = 0.05,
    ) -> None:
        self.root = root
        self.loop = loop
        self.on_change = on_change
        self.debounce = debounce
        self._pending: dict[str, asyncio.TimerHandle] = {}
        self._observer: Observer | None = None  # type: ignore[valid-type]

    def start(self) -> None:
        """Start watching ``root`` and its domain folders."""
        self.root.mkdir(parents=True, exist_ok=True)
        observer = Observer()
        observer.schedule(self, str(self.root), recursive=True)
        observer.daemon = True
        observer.start()
        self._observer = observer

    def stop(self) -> None:
        """Stop watching; pending reloads are dropped."""
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None
        for handle in self._pending.values():
            handle.cancel()
        self._pending.clear()

    # watchdog's thread -----------------------------------------------------------

    def on_any_event(self, event: FileSystemEvent) -> None:
        # Opening or reading a file (as the reload itself does) is no change.
        if event.event_type not in _CHANGES:
            return
        for raw in (event.src_path, getattr(event, "dest_path", "")):
            if not raw:
                continue
            path = Path(raw if isinstance(raw, str) else raw.decode("utf-8", "surrogateescape"))
            name = name_of_path(self.root, path)
            if name is not None:
                self.loop.call_soon_threadsafe(self._schedule, name)

    # the loop ------------------------------------------------------------------

    def _schedule(self, name: str) -> None:
        old = self._pending.pop(name, None)
        if old is not None:
            old.cancel()
        self._pending[name] = self.loop.call_later(self.debounce, self._fire, name)

    def _fire(self, name: str) -> None:
        self._pending.pop(name, None)
        self.on_change(name)
