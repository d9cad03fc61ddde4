"""Quarantine: a script that keeps failing the same way stops running for a while.

Pure bookkeeping with time passed in; the pool calls it with ``loop.time()``.
"""

from __future__ import annotations

import collections

from callscript.sandbox.policy import DomainPolicy


class Quarantine:
    """Violations per script version in a sliding window; time is passed in.

    A script version is ``(name, digest)``: installing a fixed version of a
    quarantined script lets it run at once.
    """

    def __init__(self) -> None:
        self._recent: dict[tuple[str, str], collections.deque[float]] = {}
        self._until: dict[tuple[str, str], float] = {}

    def active(self, version: tuple[str, str], *, now: float) -> bool:
        """Whether ``version`` is in quarantine at ``now``."""
        until = self._until.get(version)
        if until is None:
            return False
        if now < until:
            return True
        del self._until[version]
        return False

    def record(self, version: tuple[str, str], rules: DomainPolicy, *, now: float) -> bool:
        """Count one violation; True when it starts a quarantine."""
        q = rules.quarantine
        recent = self._recent.setdefault(version, collections.deque())
        recent.append(now)
        while recent and recent[0] <= now - q.window:
            recent.popleft()
        if len(recent) < q.violations:
            return False
        del self._recent[version]
        if q.duration > 0:
            self._until[version] = now + q.duration
        return q.duration > 0

    def release(self, name: str) -> None:
        """End the quarantine of every version of the script ``name`` (an admin's call)."""
        for table in (self._until, self._recent):
            for version in [v for v in table if v[0] == name]:
                del table[version]
