"""Per-key token buckets, in memory, one set per process.

A key's bucket holds up to `burst` tokens and refills at `rate_per_s`. A query (one image, or one hash set of a
batch) costs one token. A request costing `cost` is admitted when the bucket holds min(cost, burst) tokens and
is then charged the full cost, so a batch larger than the burst is admitted from a full bucket and leaves it in
debt: the key's long-run rate stays exact whatever its batch sizes. Each process keeps its own buckets (see the
README's Security section for what that means with several processes and replicas).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from hashsvc.errors import RateLimitedError

MAX_BUCKETS = 10_000  # keys are few; past this, full (idle) buckets are dropped


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """`charge(key, cost, rate, burst)` spends tokens or raises RateLimitedError with the wait. Thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, _Bucket] = {}

    def charge(self, key: str, cost: int, rate_per_s: float, burst: int) -> None:
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._new_bucket(key, burst, now)
            # Refill; a key whose burst was lowered since is capped at once.
            bucket.tokens = min(float(burst), bucket.tokens + (now - bucket.updated) * rate_per_s)
            bucket.updated = now
            needed = min(cost, burst)
            if bucket.tokens < needed:
                wait_s = math.ceil((needed - bucket.tokens) / rate_per_s)
                raise RateLimitedError(
                    f"this key may make {rate_per_s:g} queries a second (bursts of {burst}); "
                    f"retry after {max(1, wait_s)} s",
                    wait_s,
                )
            bucket.tokens -= cost

    def _new_bucket(self, key: str, burst: int, now: float) -> _Bucket:
        if len(self._buckets) >= MAX_BUCKETS:
            # A bucket that refilled completely carries no state worth keeping.
            self._buckets = {k: b for k, b in self._buckets.items() if b.tokens < burst}
        bucket = self._buckets[key] = _Bucket(float(burst), now)
        return bucket
