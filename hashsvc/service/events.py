"""Match events: what a match decided, for whom and about which upload, written off the request path.

Every `block` and `review` decision, every allowlist suppression, and a sampled share of `allow` decisions
become events. The request only appends to a bounded in-process buffer; a writer thread flushes it every
`events_flush_s` (or sooner when a batch fills) in one transaction per batch, together with the reviews and
webhook outbox rows that follow from it (hashsvc.store.aftermatch). The flood guard's check of the items those
events blocked on runs in a transaction of its own, at most every FLOOD_CHECK_S (and on every explicit flush):
its count over the window cost the writer more than the batch it followed did.

What can be lost: nothing on a clean shutdown (`close()` drains the buffer and runs the flood check). A SIGKILL or
a power cut loses the events still buffered, at most the last `events_flush_s` of decisions (0.25 s by default);
their callers had their answers, so nothing is blocked or allowed differently, but those events, their reviews
and webhooks never exist. A flood check still pending is not lost with them: the count lives in the store, so
the item's next recorded match checks it again.
When the buffer is full (the store is down or slower than the traffic), matching waits for the writer rather than
dropping events.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hashsvc.errors import ValidationError
from hashsvc.store import Store, validation
from hashsvc.store.aftermatch import CountBounds, FloodRule, NewEvent, Recorded, guard, guarded_items, record
from hashsvc.store.transactions import utcnow

log = logging.getLogger(__name__)

MAX_CONTENT_ID = 255
MAX_EVENT_METADATA_BYTES = 4096
# Events per transaction, at most. Under load the writer takes whatever waited while it wrote the batch before
# (group commit). Each commit writes every index page it dirtied, and a batch of events that match the same items
# or come from the same clients dirties the same pages: with 1,000 a transaction, batch lookups that all matched
# cost the server 0.091 ms a hash set; with 10,000, 0.0605 (A/B in one sitting, docs/workflow.md). It is as large
# as the default buffer, so waiting is no longer: a SIGKILL loses what is buffered either way.
BATCH = 10_000
RECORDED_DECISIONS = ("block", "review")
# The writer checks the flood guard at most this often. The check (a count per blocked item over the window) cost
# more than writing the 5-10 events a 50 ms batch held; deciding a quarantine up to a second later lets through at
# most a second more of one item's blocks, against a default limit of 100 contents an hour.
FLOOD_CHECK_S = 1.0


@dataclass(frozen=True)
class MatchContext:
    """What the platform tells us about an upload: its own id and a small metadata object."""

    content_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def context_from(content_id: Any, metadata: Any, where: str = "") -> MatchContext:
    """Validate a content_id (1-255 printable characters) and metadata (an object of at most 4 KiB as JSON)."""
    if content_id is not None:
        if not isinstance(content_id, str) or not 1 <= len(content_id) <= MAX_CONTENT_ID:
            raise ValidationError(f"{where}content_id must be a string of 1 to {MAX_CONTENT_ID} characters")
        if not content_id.isprintable():
            raise ValidationError(f"{where}content_id must be printable text")
    if metadata is None:
        metadata = {}
    if isinstance(metadata, str):  # a multipart form field carries it as JSON text
        try:
            metadata = json.loads(metadata)
        except ValueError:
            raise ValidationError(f"{where}metadata must be a JSON object") from None
    if not isinstance(metadata, dict):
        raise ValidationError(f"{where}metadata must be a JSON object")
    if not metadata:  # most uploads, and every set of most batches: nothing to check or encode twice
        return MatchContext(content_id)
    if len(json.dumps(metadata)) > MAX_EVENT_METADATA_BYTES:
        raise ValidationError(f"{where}metadata must be at most {MAX_EVENT_METADATA_BYTES} bytes as JSON")
    return MatchContext(content_id, validation.metadata(metadata))


def match_event(
    key_name: str | None,
    context: MatchContext,
    hashes: dict[str, Any],
    result: Mapping[str, Any],
    allow_sample: float,
    at: dt.datetime | None = None,
) -> NewEvent | None:
    """The event a match result makes, or None when it is not recorded (an unsampled `allow`). `at`: when it was
    decided (the sets of one batch request share theirs), now by default."""
    decision = result["decision"]
    suppressed = result.get("suppressed") or []
    sampled = allow_sample > 0 and random.random() < allow_sample
    if decision not in RECORDED_DECISIONS and not suppressed and not sampled:
        return None
    kind = "match" if decision in RECORDED_DECISIONS or not suppressed else "suppression"
    details: dict[str, Any] = {}
    if suppressed:
        details["suppressed"] = suppressed
    if result.get("quarantined"):
        details["quarantined"] = sorted(result["quarantined"])
    return NewEvent(
        kind,
        at or utcnow(),
        context.content_id or f"upload:{secrets.token_hex(8)}",
        key_name=key_name,
        content_id=context.content_id,
        decision=decision,
        metadata=context.metadata,
        hashes=hashes,
        matches=[dict(m) for m in result["matches"]],
        details=details,
        webhook_type=decision if decision in RECORDED_DECISIONS else None,
        opens_review=decision == "review",
    )


class EventRecorder:
    """The bounded buffer and its writer thread (started on first use; `close()` drains and stops it)."""

    def __init__(self, store: Store, *, flush_s: float, buffer: int, flood: FloodRule | None) -> None:
        self.store = store
        self.flush_s = max(flush_s, 0.001)
        self.capacity = max(buffer, 1)
        self.flood = flood
        self.listeners: list[Callable[[list[NewEvent], Recorded], None]] = []
        self.extra_writers: list[Callable[[], None]] = []  # e.g. the retro-hunt's retained uploads
        self._pending: list[NewEvent] = []
        self._cond = threading.Condition()
        self._write_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._guarded: dict[int, str] = {}  # items blocked on since the last flood check (under _write_lock)
        self._flood_checked = time.monotonic()
        self._bounds = CountBounds()  # items' counts as of the last check, so a check skips those far under

    def add(self, event: NewEvent) -> None:
        self.add_many([event])

    def add_many(self, batch: list[NewEvent]) -> None:
        """Buffer events in order, waiting for room whenever the buffer is full (a batch request's 1,000 events
        take the lock once, not 1,000 times, unless they have to wait)."""
        start = 0
        with self._cond:
            while start < len(batch):
                while len(self._pending) >= self.capacity and not self._stopping:
                    self._cond.wait(0.5)
                room = len(batch) if self._stopping else self.capacity - len(self._pending)
                self._pending.extend(batch[start : start + room])
                start += room
                if self._thread is None and not self._stopping:
                    self._thread = threading.Thread(target=self._run, name="hashsvc-events", daemon=True)
                    self._thread.start()
                if len(self._pending) >= BATCH:
                    self._cond.notify_all()

    def kick(self) -> None:
        """Make sure the writer runs (for extra writers' buffers, when no event has started it yet)."""
        if self._thread is None:
            with self._cond:
                if self._thread is None and not self._stopping:
                    self._thread = threading.Thread(target=self._run, name="hashsvc-events", daemon=True)
                    self._thread.start()

    def flush(self) -> None:
        """Write everything buffered now and check the flood guard, in the calling thread (readers call it to see
        their own writes)."""
        while self._write_batch():
            pass
        self._check_flood(force=True)

    def close(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(10)
        self.flush()

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._pending and not self._stopping:
                    self._cond.wait(self.flush_s)
                if self._stopping:
                    return
            try:
                self._write_batch()
                self._check_flood(force=False)
            except Exception:  # the store is down: keep the events and try again
                log.exception("writing match events failed; retrying")
                with self._cond:
                    self._cond.wait(1.0)
            else:
                with self._cond:
                    if len(self._pending) < BATCH and not self._stopping:
                        self._cond.wait(self.flush_s)

    def _write_batch(self) -> bool:
        with self._write_lock:
            for writer in self.extra_writers:
                writer()
            with self._cond:
                batch = self._pending[:BATCH]
            if not batch:
                return False
            recorded = record(self.store.engine, batch, None)
            with self._cond:
                del self._pending[: len(batch)]  # only once committed: a failed write keeps them
                self._cond.notify_all()
            if self.flood is not None:
                self._guarded.update(guarded_items(batch))
        for listener in self.listeners:
            listener(batch, recorded)
        return True

    def _check_flood(self, *, force: bool) -> None:
        """Run the flood guard over the items blocked on since its last run, if FLOOD_CHECK_S has passed."""
        with self._write_lock:
            if self.flood is None or not self._guarded:
                return
            now = time.monotonic()
            if not force and now - self._flood_checked < FLOOD_CHECK_S:
                return
            quarantined = guard(self.store.engine, self._guarded, self.flood, self._bounds)  # raises: they stay pending
            self._guarded = {}
            self._flood_checked = now
        if quarantined:
            for listener in self.listeners:
                listener([], Recorded([], quarantined))
