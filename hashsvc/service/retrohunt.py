"""Retro-hunt: content uploaded before its hash was known is found when the hash arrives.

When HASHSVC_RETROHUNT_DAYS is above 0, the PDQ hash of every upload with enough quality (never the image) is
kept for that many days (`recent_uploads`), written in batches by the event writer. One process across the
replicas (the `retrohunt` lease) keeps those hashes in a Hamming index of its own and tails the change log: every
item added since its checkpoint, whatever the path (API, bulk, `hashsvc import`, partner feeds), is searched
against the retained uploads at its bank's PDQ threshold, and every hit becomes an event (`retrohunt`, with the
upload's content_id, key and metadata), as if the upload had matched when it was made: a webhook
(`retrohunt_hit`), and a review when the bank's action is `review`. The events and the new checkpoint commit in
one transaction, so a crash neither loses nor repeats hits.

Tailing the change log rather than hooking each add path means nothing can add an item without it being hunted.
"""

from __future__ import annotations

import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import sqlalchemy as sa

from hashsvc.hashes import ALGORITHMS
from hashsvc.index import HammingIndex
from hashsvc.service.disclosure import Caller
from hashsvc.service.events import MatchContext
from hashsvc.store import Store, aftermatch, changelog
from hashsvc.store.aftermatch import NewEvent
from hashsvc.store.bulk import insert_rows
from hashsvc.store.pruning import delete_in_chunks
from hashsvc.store.schema import recent_uploads
from hashsvc.store.transactions import utcnow

CHECKPOINT = "retrohunt"
ADD_KINDS = ("item_add",)
MIN_QUALITY = 50
PAGE = 1000
# Retained codes are read in chunks of this many rows (Core select of two columns), then indexed in one add:
# adding chunk by chunk made every chunk after the first go through the delta and a merge of the whole index
# (10M retained codes took 352 s to index that way, at load 29).
LOAD_CHUNK = 500_000
# New codes are searched in batches of this many queries, one batch per thread. The batched probe sorts every
# query's bucket probes per table (3 x 8 bytes x ~200 probes per query): at 100k queries in one call those arrays
# outgrew the caches and a query cost 1.7x what it costs in batches of 2,000 (1M retained, load 9).
HUNT_BATCH = 2000
# The kernels release the GIL, so two threads search two batches at once on a 2-core machine.
HUNT_THREADS = 2
UPLOAD_COLUMNS = ("at", "key_name", "content_id", "metadata", "algorithm", "code")


@dataclass(frozen=True)
class Retained:
    at: dt.datetime
    key_name: str | None
    content_id: str | None
    metadata: dict[str, Any]
    code: bytes


class UploadRetainer:
    """Buffers the PDQ codes of uploads; the event writer flushes them (`write`) with its batches."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._pending: list[tuple[Any, ...]] = []
        self._lock = threading.Lock()

    def keep(self, caller: Caller | None, context: MatchContext, pdq: bytes | None, quality: int | None) -> None:
        if pdq is None or (quality is not None and quality < MIN_QUALITY):
            return
        row = (utcnow(), caller.key.name if caller else None, context.content_id, context.metadata, "pdq", pdq)
        with self._lock:
            self._pending.append(row)

    def write(self) -> None:
        with self._lock:
            rows, self._pending = self._pending, []
        if rows:
            try:
                with self.store.engine.begin() as conn:
                    insert_rows(conn, recent_uploads, UPLOAD_COLUMNS, rows)
            except Exception:
                with self._lock:  # keep them for the next flush
                    self._pending = rows + self._pending
                raise


class RetroHunter:
    """The hunting job (run under the `retrohunt` lease; see the module docstring)."""

    def __init__(self, store: Store, retention_days: float) -> None:
        self.store = store
        self.retention = dt.timedelta(days=retention_days)
        # its first refresh is one bulk add of every retained code: its tables are built on HUNT_THREADS too
        self.index = HammingIndex(256, background_merge=False, build_threads=HUNT_THREADS)
        self.loaded_upto = 0  # highest recent_uploads id in the index
        self.forgotten_below = 1  # ids below this were pruned and removed from the index

    def refresh(self) -> int:
        """Add uploads retained since the last refresh to the index; return how many."""
        self._forget_pruned()
        id_parts: list[np.ndarray] = []
        code_parts: list[np.ndarray] = []
        upto = self.loaded_upto
        while True:
            with self.store.engine.connect() as conn:
                rows = conn.execute(
                    sa.select(recent_uploads.c.id, recent_uploads.c.code)
                    .where(recent_uploads.c.id > upto, recent_uploads.c.algorithm == "pdq")
                    .order_by(recent_uploads.c.id)
                    .limit(LOAD_CHUNK)
                ).all()
            if not rows:
                break
            id_parts.append(np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)))
            code_parts.append(np.frombuffer(b"".join(r[1] for r in rows), dtype=np.uint8).reshape(len(rows), 32))
            upto = int(id_parts[-1][-1])
            if len(rows) < LOAD_CHUNK:
                break
        if not id_parts:
            return 0
        ids = np.concatenate(id_parts)
        self.index.add(ids, np.concatenate(code_parts))
        self.loaded_upto = upto
        return int(ids.shape[0])

    def _forget_pruned(self) -> None:
        """Drop from the index the uploads pruned from the store (by whichever process holds the pruner lease).

        Ids only grow and pruning removes the oldest rows, so everything below the smallest id left is gone.
        """
        with self.store.engine.connect() as conn:
            lowest = conn.execute(sa.select(sa.func.min(recent_uploads.c.id))).scalar()
        below = self.loaded_upto + 1 if lowest is None else min(int(lowest), self.loaded_upto + 1)
        if below > self.forgotten_below and len(self.index):
            self.index.remove(np.arange(self.forgotten_below, below, dtype=np.int64))
        self.forgotten_below = max(self.forgotten_below, below)

    def run(self) -> int:
        """One pass: refresh, then hunt the items added since the checkpoint. Returns the changes read."""
        checkpoint = aftermatch.get_checkpoint(self.store.engine, CHECKPOINT)
        if checkpoint is None:  # retro-hunting starts now: items added before it was on are not hunted
            with self.store.engine.connect() as conn:
                latest = changelog.max_sequence(conn)
            aftermatch.record(self.store.engine, [], None, checkpoint=(CHECKPOINT, int(latest)))
            return 0
        self.refresh()
        changes = self.store.changes_since(checkpoint, limit=PAGE, algorithms=["pdq"])
        if not changes:
            return 0
        rows = [h for c in changes if c.kind in ADD_KINDS and c.effect == "activate" for h in c.hashes]
        found = self.hunt(rows)
        aftermatch.record(self.store.engine, found, None, checkpoint=(CHECKPOINT, changes[-1].sequence))
        return len(changes)

    def hunt(self, rows: list[Any]) -> list[NewEvent]:
        """Events for every retained upload within the bank's PDQ threshold of these new hash rows."""
        if not rows or not len(self.index):
            return []
        banks = {bank.id: bank for bank in self.store.list_banks()}
        wanted = [r for r in rows if r.bank_id in banks and banks[r.bank_id].action in ("block", "review")]
        if not wanted:
            return []
        default = ALGORITHMS["pdq"].default_threshold
        radius = max(int(banks[r.bank_id].thresholds.get("pdq", default)) for r in wanted)
        codes = np.frombuffer(b"".join(r.code for r in wanted), dtype=np.uint8).reshape(len(wanted), 32)
        hits: list[tuple[Any, int, int]] = []
        for row, (ids, distances) in zip(wanted, self._search(codes, radius), strict=True):
            if not ids.shape[0]:
                continue
            limit = int(banks[row.bank_id].thresholds.get("pdq", default))
            hits += [(row, int(i), int(d)) for i, d in zip(ids.tolist(), distances.tolist(), strict=True) if d <= limit]
        if not hits:
            return []
        uploads = self._uploads(sorted({upload_id for _, upload_id, _ in hits}))
        found: dict[tuple[int, int], NewEvent] = {}
        for row, upload_id, distance in hits:
            upload = uploads.get(upload_id)
            if upload is None:  # pruned since it was indexed
                continue
            bank = banks[row.bank_id]
            match = {
                "bank": bank.name,
                "item_id": row.item_id,
                "category": bank.category,
                "algorithm": "pdq",
                "distance": distance,
                "threshold": int(bank.thresholds.get("pdq", default)),
                "variant": "original",
                "action": bank.action,
            }
            key = (upload_id, row.item_id)
            if key in found:  # an item's crops: keep the closest
                if distance < found[key].matches[0]["distance"]:
                    found[key].matches[0] = match
                continue
            found[key] = NewEvent(
                "retrohunt",
                utcnow(),
                upload.content_id or f"upload-retained:{upload_id}",
                key_name=upload.key_name,
                content_id=upload.content_id,
                decision=bank.action,
                metadata=upload.metadata,
                hashes={"pdq": upload.code.hex()},
                matches=[match],
                details={"uploaded_at": upload.at.isoformat(), "retained_upload_id": upload_id},
                webhook_type="retrohunt_hit",
                opens_review=bank.action == "review",
            )
        return list(found.values())

    def _search(self, codes: np.ndarray, radius: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """range_search in batches of HUNT_BATCH queries on HUNT_THREADS threads, results in query order."""
        batches = [codes[start : start + HUNT_BATCH] for start in range(0, codes.shape[0], HUNT_BATCH)]
        if len(batches) == 1:
            return self.index.range_search(codes, radius)
        with ThreadPoolExecutor(HUNT_THREADS) as pool:
            parts = pool.map(lambda batch: self.index.range_search(batch, radius), batches)
            return [result for part in parts for result in part]

    def _uploads(self, ids: list[int]) -> dict[int, Retained]:
        cutoff = utcnow() - self.retention
        found = {}
        with self.store.engine.connect() as conn:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                for r in conn.execute(sa.select(recent_uploads).where(recent_uploads.c.id.in_(chunk))):
                    if r.at >= cutoff:
                        found[r.id] = Retained(r.at, r.key_name, r.content_id, r.metadata, bytes(r.code))
        return found

    def prune(self) -> None:
        # a chunk at a time: a day of retained uploads is every upload of that day
        delete_in_chunks(self.store.engine, recent_uploads, recent_uploads.c.at < utcnow() - self.retention)
