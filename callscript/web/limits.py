"""Rate limits: a token bucket per (kind, who), with time passed in."""

from __future__ import annotations

import math
from dataclasses import dataclass

_MAX_BUCKETS = 10_000


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Allows ``per_minute`` events per key, in bursts of up to ``per_minute``."""

    def __init__(self) -> None:
        self._buckets: dict[tuple[str, str], _Bucket] = {}

    def take(self, kind: str, who: str, per_minute: int, *, now: float) -> float:
        """Spend one token; returns 0 when allowed, else the seconds until one is free."""
        rate = per_minute / 60.0
        key = (kind, who)
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= _MAX_BUCKETS:
                self._forget_full(now, rate, per_minute)
            bucket = self._buckets[key] = _Bucket(float(per_minute), now)
        bucket.tokens = min(float(per_minute), bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return math.ceil((1.0 - bucket.tokens) / rate)

    def wait(self, kind: str, who: str, per_minute: int, *, now: float) -> float:
        """Like :meth:`take` without spending: 0 when a token is free."""
        bucket = self._buckets.get((kind, who))
        if bucket is None:
            return 0.0
        rate = per_minute / 60.0
        tokens = min(float(per_minute), bucket.tokens + (now - bucket.updated) * rate)
        return 0.0 if tokens >= 1.0 else math.ceil((1.0 - tokens) / rate)

    def _forget_full(self, now: float, rate: float, capacity: int) -> None:
        # A bucket that has refilled says nothing a new one would not: drop those first.
        for key, bucket in list(self._buckets.items()):
            if bucket.tokens + (now - bucket.updated) * rate >= capacity:
                del self._buckets[key]
        while len(self._buckets) >= _MAX_BUCKETS:
            del self._buckets[next(iter(self._buckets))]
