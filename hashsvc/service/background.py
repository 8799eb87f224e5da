"""Background work, in one place with one lease mechanism: webhook deliveries, pruning, retro-hunting.

Each serving process runs one thread here. Each job is guarded by a lease in the store (hashsvc.store.leases), so
exactly one process across every replica does it at a time; if that process dies, another takes over once the
lease has expired (HASHSVC_LEASE_TTL_S). Jobs run on their own period; deliveries poll often so that a webhook
leaves within a fraction of a second of its event being written.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from hashsvc.store import Store, leases

log = logging.getLogger(__name__)
IDLE_S = 0.05


@dataclass
class Job:
    name: str  # the lease's name
    period_s: float  # how often it runs while there is nothing to do
    run: Callable[[], int]  # one pass; returns how much it did (non-zero: run again at once)
    next_at: float = 0.0


class Background:
    def __init__(self, store: Store, lease_ttl_s: float) -> None:
        self.store = store
        self.ttl_s = max(lease_ttl_s, 0.5)
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.jobs: list[Job] = []
        self._renewed: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, name: str, period_s: float, run: Callable[[], int]) -> None:
        self.jobs.append(Job(name, period_s, run))

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="hashsvc-background", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(15)
            self._thread = None
        for name in list(self._renewed):
            try:
                leases.release(self.store.engine, name, self.holder)
            except Exception:  # noqa: BLE001 - the store is gone: the lease simply expires
                log.warning("could not release lease %s", name)
        self._renewed.clear()

    def holds(self, name: str) -> bool:
        """Take or keep the lease, renewing it once a third of its TTL has passed (not on every pass)."""
        now = time.monotonic()
        if now - self._renewed.get(name, float("-inf")) < self.ttl_s / 3:
            return True
        if leases.acquire(self.store.engine, name, self.holder, self.ttl_s):
            self._renewed[name] = now
            return True
        self._renewed.pop(name, None)
        return False

    def run_due(self) -> int:
        """One pass over the jobs that are due; returns the work done (tests call this without the thread)."""
        done = 0
        for job in self.jobs:
            now = time.monotonic()
            if now < job.next_at:
                continue
            try:
                held = self.holds(job.name)
                worked = job.run() if held else 0
            except Exception:  # a job's failure (the store unreachable) must not end the loop
                log.exception("background job %s failed", job.name)
                held, worked = True, 0
            # Another process holds it: ask again only every third of a TTL (asking is a write).
            job.next_at = now if worked else now + (job.period_s if held else max(job.period_s, self.ttl_s / 3))
            done += worked
        return done

    def _loop(self) -> None:
        while not self._stop.is_set():
            if not self.run_due():
                self._stop.wait(IDLE_S)
