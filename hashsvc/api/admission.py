"""Admission: at most `slots` CPU-heavy requests per process, shared fairly between API keys.

Without fairness one key that floods expensive uploads holds every slot, and another key's cheap matches wait
out the queue timeout and get 503. The rules:

* A key may hold at most its cap: its own `max_inflight` when set, else the server's `key_max_inflight` when not
  0, else every slot.
* While several keys are **active** (holding a slot, waiting for one, or seen within `active_window_s`), each may
  hold at most its fair share, ceil(slots / active keys). A key alone gets the whole capacity; as soon as a second
  key shows up, the first cannot take the slots it frees back for itself beyond its share.
* A freed slot goes to the waiting key that holds the fewest slots (ties: the longest waiting request).
* A request that cannot get a slot within `timeout_s` is refused with 503 `overloaded` and Retry-After.

The share is held for `active_window_s` after a key's last request so that a key sending one request after
another finds its slot free each time instead of waiting for the flooder's next upload to finish; the price is
that a flooder may find a slot idle (and be refused) while the other key is between requests.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from hashsvc.errors import OverloadedError


@dataclass(frozen=True)
class _Waiter:
    key: str
    cap: int
    order: int


class Admission:
    """Fair per-key slots (see the module docstring). Thread-safe; one per process."""

    def __init__(
        self,
        slots: int,
        timeout_s: float,
        *,
        key_cap: int = 0,
        active_window_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.slots = max(1, slots)
        self.timeout_s = timeout_s
        self.key_cap = key_cap
        self.active_window_s = active_window_s
        self._clock = clock
        self._cond = threading.Condition()
        self._held: dict[str, int] = {}
        self._seen: dict[str, float] = {}
        self._waiting: list[_Waiter] = []
        self._order = itertools.count()

    @contextmanager
    def slot(self, key: str = "", cap: int | None = None) -> Iterator[None]:
        """Hold one slot for `key` (its own cap `cap`, None for the server's) while the block runs."""
        self._acquire(key, cap or self.key_cap or self.slots)
        try:
            yield
        finally:
            self._release(key)

    def held(self, key: str) -> int:
        with self._cond:
            return self._held.get(key, 0)

    def _acquire(self, key: str, cap: int) -> None:
        deadline = self._clock() + self.timeout_s
        with self._cond:
            self._seen[key] = self._clock()
            waiter = _Waiter(key, cap, next(self._order))
            self._waiting.append(waiter)
            try:
                while not self._grantable(waiter):
                    remaining = deadline - self._clock()
                    if remaining <= 0:
                        raise OverloadedError("the service is at capacity; retry after the delay in Retry-After")
                    self._cond.wait(remaining)
                self._held[key] = self._held.get(key, 0) + 1
            finally:
                self._waiting.remove(waiter)
                self._cond.notify_all()  # the next waiter in line may now be eligible

    def _release(self, key: str) -> None:
        with self._cond:
            self._held[key] -= 1
            if not self._held[key]:
                del self._held[key]
            self._seen[key] = self._clock()
            self._cond.notify_all()

    def _grantable(self, waiter: _Waiter) -> bool:
        """A free slot exists, the waiter's key is within its caps, and no eligible waiter comes before it."""
        if sum(self._held.values()) >= self.slots:
            return False
        share = self._fair_share()
        eligible = [w for w in self._waiting if self._held.get(w.key, 0) < min(w.cap, share)]
        if not eligible:
            return False
        first = min(eligible, key=lambda w: (self._held.get(w.key, 0), w.order))
        return first is waiter

    def _fair_share(self) -> int:
        cutoff = self._clock() - self.active_window_s
        for key in [k for k, at in self._seen.items() if at < cutoff and k not in self._held]:
            del self._seen[key]  # keeps the map as small as the set of recently active keys
        active = set(self._seen) | set(self._held) | {w.key for w in self._waiting}
        return math.ceil(self.slots / max(1, len(active)))
