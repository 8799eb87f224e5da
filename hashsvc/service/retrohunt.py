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
from hashsvc.store.schema import recent_uploads
from hashsvc.store.transactions import utcnow

CHECKPOINT = "retrohunt"
ADD_KINDS = ("item_add",)
MIN_QUALITY = 50
PAGE = 1000
LOAD_CHUNK = 200_000
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
        self.index = HammingIndex(256, background_merge=False)
        self.loaded_upto = 0  # highest recent_uploads id in the index

    def refresh(self) -> int:
        """Add uploads retained since the last refresh to the index; return how many."""
        added = 0
        while True:
            with self.store.engine.connect() as conn:
                rows = conn.execute(
                    sa.select(recent_uploads.c.id, recent_uploads.c.code)
                    .where(recent_uploads.c.id > self.loaded_upto, recent_uploads.c.algorithm == "pdq")
                    .order_by(recent_uploads.c.id)
                    .limit(LOAD_CHUNK)
                ).all()
            if not rows:
                return added
            ids = np.fromiter((r.id for r in rows), dtype=np.int64, count=len(rows))
            codes = np.frombuffer(b"".join(bytes(r.code) for r in rows), dtype=np.uint8).reshape(len(rows), 32)
            self.index.add(ids, codes)
            self.loaded_upto = int(ids[-1])
            added += len(rows)

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
        for row, (ids, distances) in zip(wanted, self.index.range_search(codes, radius), strict=True):
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
        with self.store.engine.begin() as conn:
            conn.execute(sa.delete(recent_uploads).where(recent_uploads.c.at < utcnow() - self.retention))
