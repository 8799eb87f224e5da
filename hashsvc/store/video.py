"""Video items in the store: their vPDQ frame lists and the banks' vPDQ match rules.

A video item is an ordinary item (its distinct frame PDQs are its `pdq` hashes, which the index holds, plus the
file's MD5 and SHA-256) with its frame list in `video_frames`. Match-path reads here are only for items an
index hit already named, a few at a time, by primary key.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from hashsvc.errors import NotFoundError, ValidationError
from hashsvc.hashes import vpdq
from hashsvc.store.bulk import insert_rows
from hashsvc.store.schema import bank_video_rules, banks, items, video_frames
from hashsvc.store.transactions import read_snapshot, write_connection

_CHUNK = 500  # SQLite caps bound parameters per statement
FRAME_COLUMNS = ("item_id", "position", "frame", "timestamp", "quality", "code")


@dataclass(frozen=True)
class VideoRules:
    """A bank's vPDQ rule: shares in percent, frames below `quality` ignored (Meta's defaults)."""

    query_share: float = vpdq.QUERY_SHARE
    item_share: float = vpdq.ITEM_SHARE
    quality: int = vpdq.QUALITY_THRESHOLD

    def to_dict(self) -> dict[str, float | int]:
        return {"query_share": self.query_share, "item_share": self.item_share, "quality": self.quality}


def frame_writer(features: Sequence[vpdq.Feature]) -> Callable[[Connection, int], None]:
    """A `Store.add_item(with_rows=...)` callback that stores the item's frame list."""

    def write(conn: Connection, item_id: int) -> None:
        rows = [(item_id, n, f.frame, f.timestamp, f.quality, f.code) for n, f in enumerate(features)]
        if rows:
            insert_rows(conn, video_frames, FRAME_COLUMNS, rows)

    return write


def frames_of(engine: Engine, item_ids: Sequence[int]) -> dict[int, list[vpdq.Feature]]:
    """The frame lists of those items that have one, in their stored order."""
    found: dict[int, list[vpdq.Feature]] = {}
    ids = sorted({int(i) for i in item_ids})
    query = sa.select(
        video_frames.c.item_id, video_frames.c.frame, video_frames.c.timestamp, video_frames.c.quality,
        video_frames.c.code,
    ).order_by(video_frames.c.item_id, video_frames.c.position)  # fmt: skip
    with read_snapshot(engine, lookups=True) as conn:
        for start in range(0, len(ids), _CHUNK):
            for row in conn.execute(query.where(video_frames.c.item_id.in_(ids[start : start + _CHUNK]))):
                found.setdefault(row.item_id, []).append(
                    vpdq.Feature(bytes(row.code), int(row.quality), float(row.timestamp), int(row.frame))
                )
    return found


def video_item_ids(engine: Engine, item_ids: Sequence[int] | None = None) -> set[int]:
    """Which of these items (every item when None) are video items, i.e. hold a frame list.

    The serving process keeps video frames in an index of their own (service/live_index.py) and asks this
    when it builds it and when it applies a page of the change log."""
    first_frame = sa.select(video_frames.c.item_id).where(video_frames.c.position == 0)
    found: set[int] = set()
    with read_snapshot(engine, lookups=item_ids is not None) as conn:
        if item_ids is None:
            return {int(row.item_id) for row in conn.execute(first_frame)}
        ids = sorted({int(i) for i in item_ids})
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            found.update(int(row.item_id) for row in conn.execute(first_frame.where(video_frames.c.item_id.in_(chunk))))
    return found


def video_items_of_bank(engine: Engine, bank: str, *, page: int = 500) -> Iterator[tuple[int, str | None]]:
    """(item id, reference) of the bank's active video items, in id order, read page by page."""
    after = 0
    has_frames = sa.exists().where(video_frames.c.item_id == items.c.id)
    while True:
        query = (
            sa.select(items.c.id, items.c.external_ref)
            .select_from(items.join(banks, banks.c.id == items.c.bank_id))
            .where(banks.c.name == bank, items.c.status == "active", items.c.id > after, has_frames)
            .order_by(items.c.id)
            .limit(page)
        )
        with read_snapshot(engine) as conn:
            rows = list(conn.execute(query))
        yield from ((row.id, row.external_ref) for row in rows)
        if len(rows) < page:
            return
        after = rows[-1].id


def all_rules(engine: Engine) -> dict[str, VideoRules]:
    """Bank name -> its own rules, for the banks that set them."""
    query = sa.select(banks.c.name, bank_video_rules).join(banks, banks.c.id == bank_video_rules.c.bank_id)
    with read_snapshot(engine) as conn:
        return {row.name: VideoRules(row.query_share, row.item_share, row.quality) for row in conn.execute(query)}


def set_rules(engine: Engine, bank: str, rules: VideoRules) -> None:
    """Store a bank's rules (replacing any). Raises ValidationError for values out of range."""
    if not (0 <= rules.query_share <= 100 and 0 <= rules.item_share <= 100):
        raise ValidationError("query_share and item_share are percentages from 0 to 100")
    if not 0 <= rules.quality <= 100:
        raise ValidationError("quality must be from 0 to 100")
    with write_connection(engine) as conn:  # reads the bank, then writes: the lock from the start
        bank_id = conn.execute(sa.select(banks.c.id).where(banks.c.name == bank)).scalar_one_or_none()
        if bank_id is None:
            raise NotFoundError(f"no bank named {bank!r}")
        conn.execute(sa.delete(bank_video_rules).where(bank_video_rules.c.bank_id == bank_id))
        conn.execute(
            sa.insert(bank_video_rules).values(
                bank_id=bank_id, query_share=rules.query_share, item_share=rules.item_share, quality=rules.quality
            )
        )
