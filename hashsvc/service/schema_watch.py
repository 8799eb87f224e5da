"""Whether the store's schema is still the one this process's code was written for, re-checked while it runs.

A replica keeps the code it started with. When another version migrates the store (an upgrade), or this version
starts against a store not yet migrated, the replica still answers matches (its queries read columns every
version has), but what it writes may not be what the new schema needs: after migration 0010 an old replica's
event items had no `at_ms`, and the flood guard does not count them. So readiness turns 503 with the reason
within CHECK_S, and a load balancer that follows /readyz moves the traffic to replicas on the new code.

Matching is not refused: without a readiness-aware load balancer that would turn every migration into an outage
until each replica restarts, and the answers themselves are not wrong.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from hashsvc.store import Store, revision_of, schema_problem

log = logging.getLogger(__name__)

# One `SELECT version_num FROM alembic_version` this often per process: an old replica stops getting traffic at
# most this long (plus the load balancer's own check interval) after a migration.
CHECK_S = 5.0


class SchemaWatch:
    """The store's schema as of the last check (`problem`: None when it matches this code)."""

    def __init__(self, store: Store, *, every_s: float = CHECK_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.every_s = every_s
        self.clock = clock
        self.problem: str | None = None
        self.revision: str | None = None
        self._checked = float("-inf")
        self._lock = threading.Lock()

    def check(self) -> str | None:
        """Read the store's revision if `every_s` has passed since the last read; return the problem.

        A store that cannot be read keeps the last answer: unreachability is readiness's other reason."""
        with self._lock:
            now = self.clock()
            if now - self._checked < self.every_s:
                return self.problem
            self._checked = now
            try:
                revision = revision_of(self.store.engine)
            except Exception as exc:  # noqa: BLE001 - the change-log tail reports an unreachable store
                log.debug("schema check failed: %s: %s", type(exc).__name__, exc)
                return self.problem
            problem = schema_problem(revision)
            if problem != self.problem or revision != self.revision:
                if problem is None:
                    log.info("store schema is at %s, this code's: ready as far as the schema goes", revision)
                else:
                    log.warning("store schema is at %s: the store has %s; reporting not ready", revision, problem)
            self.problem, self.revision = problem, revision
            return problem
