"""The store side of what happens after a match: events, the flood guard's quarantines, reviews.

One flush of the event recorder is one transaction: the events, their (event, item) rows, the reviews they open,
and the webhook outbox rows for all of them commit together, so a webhook can never announce an event the store
does not hold, and an event is never without its deliveries. The flood guard (`guard`) counts from those rows,
so it may run in the same transaction or later in one of its own, with its quarantine events and their outbox
rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from hashsvc import vocabulary
from hashsvc.errors import ConflictError, NotFoundError
from hashsvc.store import pruning
from hashsvc.store.bulk import insert_rows, json_text, timestamp_value
from hashsvc.store.onestep import OneStep
from hashsvc.store.schema import (
    event_counters,
    event_items,
    events,
    job_checkpoints,
    quarantines,
    reviews,
    webhook_outbox,
    webhooks,
)
from hashsvc.store.transactions import utcnow, write_connection

EVENT_COLUMNS = (
    "id",
    "at",
    "type",
    "key_name",
    "content_id",
    "content_bucket",
    "decision",
    "metadata",
    "hashes",
    "matches",
    "details",
)
# Events per bucket of the content_id index, which is on (content_bucket, content_id) with content_bucket = id //
# CONTENT_BUCKET. On content_id alone, every event's entry lands at a random place in an index that holds the
# whole retention period, so once it outgrows what one write touches, each event dirties a page of its own: the
# writer's CPU per event, in writes of 1,000, was 0.024 ms on an empty store and 0.080 ms after 300k events, 0.031
# ms of which this index (`bench_after_match.py writer --prefill`, docs/workflow.md). With the bucket first, new
# entries go to the newest bucket's few pages. A lookup by content_id probes every bucket instead (one per 16,384
# events kept), which an analyst's query can afford. Stored in each row: changing it needs a migration that
# recomputes the column.
CONTENT_BUCKET = 16_384
# Buckets per statement of a lookup by content_id (bound parameters stay far under SQLite's limit).
BUCKETS_PER_QUERY = 1_000
ITEM_COLUMNS = ("event_id", "item_id", "bank", "content_key", "at", "at_ms")
REVIEW_COLUMNS = ("id", "opened_at", "status", "bank", "category", "item_id", "outcome")
OUTBOX_COLUMNS = (
    "webhook_id",
    "idempotency_key",
    "event_type",
    "payload",
    "created_at",
    "status",
    "attempts",
    "next_attempt_at",
)
WEBHOOK_TYPES = vocabulary.WEBHOOK_TYPES
_CHUNK = 500
# The writer's rows go to SQLite in INSERTs of this many rows: one release of the GIL per statement instead of per
# row (see hashsvc.store.bulk.insert_rows), which the request threads of the writer's process paid for.
ROWS_PER_STATEMENT = 200


@dataclass
class NewEvent:
    """An event to record. `matches` are generic dicts (bank, item_id, algorithm, distance...), so that new match
    kinds (video, local features) fit without a schema change."""

    type: str  # match | suppression | quarantine | retrohunt | review_resolved
    at: dt.datetime
    content_key: str  # content_id, or a per-upload token: what the flood guard counts as distinct
    key_name: str | None = None
    content_id: str | None = None
    decision: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    hashes: dict[str, Any] = field(default_factory=dict)
    matches: list[dict[str, Any]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    webhook_type: str | None = None  # which webhook subscription it is announced to, if any
    opens_review: bool = False


@dataclass(frozen=True)
class FloodRule:
    """Quarantine an item matched by more than `max_contents` distinct contents within `window_s` seconds."""

    max_contents: int
    window_s: float


@dataclass
class Recorded:
    ids: list[int]
    quarantined: list[int]  # items the flood guard quarantined in this flush


def record(
    engine: sa.Engine,
    batch: Sequence[NewEvent],
    flood: FloodRule | None,
    *,
    checkpoint: tuple[str, int] | None = None,
) -> Recorded:
    """Record a batch of events in one transaction (see the module docstring), with a job's checkpoint if given.

    With a `flood` rule, the items the batch blocked on are checked in the same transaction (`guard`)."""
    with write_connection(engine) as conn:
        if checkpoint is not None:
            _set_checkpoint(conn, *checkpoint)
        hooks = _live_webhooks(conn)
        ids = _insert(conn, batch, hooks)
        quarantined: list[int] = []
        if flood is not None and flood.max_contents > 0:
            quarantined = _guard(conn, guarded_items(batch), flood, hooks)
        return Recorded(ids, quarantined)


def guarded_items(batch: Iterable[NewEvent]) -> dict[int, str]:
    """The items (id -> bank) these events matched with a `block`: what the flood guard counts."""
    return {
        m["item_id"]: m["bank"]
        for e in batch
        if e.type == "match"
        for m in e.matches
        if m.get("action") == "block" and "item_id" in m
    }


@dataclass
class CountBounds:
    """Upper bounds of items' flood counts, kept by one process from one check to the next, so that a check
    counts over the window only the items that might have crossed the rule.

    An item's count over the window is at most its last count (exact, or its rows in the window, which bound its
    distinct contents from above) plus the (event, item) rows written since, by any process: the window only
    moves forward, and a row counts at most one more distinct content. Event ids are handed out in commit order
    (the counter row is locked until commit), so "written since" is "event id above `upto`". A bound that stays
    under the rule decides the same as an exact count would (no quarantine); only an item whose bound crossed it
    is counted again, which also resets its bound."""

    upto: int = -1  # rows up to this event id are in the bounds; -1: nothing read yet
    bounds: dict[int, int] = field(default_factory=dict)


# More items than this in the bounds and they are dropped (each then gets one exact count again): a process that
# blocks on millions of items over its lifetime keeps no dict of all of them.
MAX_BOUNDS = 100_000


def guard(engine: sa.Engine, items: dict[int, str], flood: FloodRule, known: CountBounds | None = None) -> list[int]:
    """Check these items (id -> bank) against the flood rule over the recorded events, in a transaction of its
    own; quarantine those that crossed it (with their events and webhooks) and return their ids. With `known`
    (updated in place once the transaction committed), items whose bound is under the rule are not counted.

    The count is read from the store, so a check run after the events that tipped an item over, by any process,
    finds it: checking late delays a quarantine, it cannot miss one."""
    if not items or flood.max_contents <= 0:
        return []
    with write_connection(engine) as conn:
        bounds = _advance(conn, known) if known is not None else None
        quarantined = _guard(conn, items, flood, None, bounds)
    if known is not None and bounds is not None:
        known.upto, known.bounds = bounds.upto, bounds.bounds if len(bounds.bounds) <= MAX_BOUNDS else {}
    return quarantined


def _advance(conn: Connection, known: CountBounds) -> CountBounds:
    """The bounds with the rows written since `known.upto` added (a new object: the transaction may yet fail)."""
    if known.upto < 0:  # the first check: bounds start at exact counts, from rows up to the newest now
        newest = conn.execute(_NEWEST_EVENT_ITEM).scalar()
        return CountBounds(-1 if newest is None else int(newest), {})
    bounds = dict(known.bounds)
    upto = known.upto
    for item_id, rows, newest in _ROWS_SINCE.rows(conn, {"upto": known.upto}):
        upto = max(upto, int(newest))
        if item_id in bounds:
            bounds[item_id] += int(rows)
    return CountBounds(upto, bounds)


def _guard(
    conn: Connection,
    items: dict[int, str],
    flood: FloodRule,
    hooks: list[Any] | None,
    bounds: CountBounds | None = None,
) -> list[int]:
    if not items:
        return []
    guarded = sorted(items.items())
    if bounds is not None:
        limit = flood.max_contents
        guarded = [(item_id, bank) for item_id, bank in guarded if bounds.bounds.get(item_id, limit + 1) > limit]
    found = _flood(conn, guarded, flood, bounds)
    if found:
        _insert(conn, found, _live_webhooks(conn) if hooks is None else hooks)
    return [e.matches[0]["item_id"] for e in found]


def insert_events(engine: sa.Engine, batch: Sequence[NewEvent]) -> list[int]:
    """Record events that need no flood check (retro-hunt hits, review resolutions)."""
    return record(engine, batch, None).ids


def _insert(conn: Connection, batch: Sequence[NewEvent], hooks: list[Any]) -> list[int]:
    if not batch:
        return []
    last = conn.execute(_NEXT_EVENT_IDS, {"count": len(batch)}).scalar_one()
    first = last - len(batch) + 1
    rows, item_rows, review_rows, outbox_rows = [], [], [], []
    # The events and their item rows go to the driver as they are built: each timestamp formatted once (the
    # events of one request share theirs) and each JSON column encoded once, not per column in insert_rows.
    stamp, stamped, stamp_of, ms_of = timestamp_value(conn), None, None, 0
    for event_id, e in enumerate(batch, start=first):
        if e.at is not stamped:
            stamped, stamp_of, ms_of = e.at, stamp(e.at), epoch_ms(e.at)
        rows.append(
            (
                event_id,
                stamp_of,
                e.type,
                e.key_name,
                e.content_id,
                event_id // CONTENT_BUCKET,
                e.decision,
                json_text(e.metadata),
                json_text(e.hashes),
                json_text(e.matches),
                json_text(e.details),
            )
        )
        seen = set()
        for m in e.matches:
            if "item_id" in m and m["item_id"] not in seen:
                seen.add(m["item_id"])
                item_rows.append((event_id, m["item_id"], m["bank"], e.content_key, stamp_of, ms_of))
        if e.opens_review:
            fallback = e.matches[0] if e.matches else {}
            first_review = next((m for m in e.matches if m.get("action") == "review"), fallback)
            review_rows.append(
                (
                    event_id,
                    e.at,
                    "open",
                    first_review.get("bank"),
                    first_review.get("category"),
                    first_review.get("item_id"),
                    {},
                )
            )
        if e.webhook_type is not None and hooks:
            banks = {m["bank"] for m in e.matches if "bank" in m}
            payload = None  # built for the first subscriber only: most events have none
            for hook in hooks:
                if e.webhook_type in hook.event_types and (hook.banks is None or banks & set(hook.banks)):
                    payload = payload or event_dict_from(event_id, e)
                    outbox_rows.append(
                        (hook.id, f"evt-{event_id}-wh-{hook.id}", e.webhook_type, payload, e.at, "pending", 0, e.at)
                    )
    insert_rows(conn, events, EVENT_COLUMNS, rows, rows_per_statement=ROWS_PER_STATEMENT, prepared=True)
    insert_rows(conn, event_items, ITEM_COLUMNS, item_rows, rows_per_statement=ROWS_PER_STATEMENT, prepared=True)
    insert_rows(conn, reviews, REVIEW_COLUMNS, review_rows, rows_per_statement=ROWS_PER_STATEMENT)
    insert_rows(conn, webhook_outbox, OUTBOX_COLUMNS, outbox_rows, rows_per_statement=ROWS_PER_STATEMENT)
    return list(range(first, last + 1))


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def epoch_ms(at: dt.datetime) -> int:
    """`event_items.at_ms`: whole milliseconds since 1970 (UTC), exactly (no float on the way)."""
    return (at - _EPOCH) // dt.timedelta(milliseconds=1)


def get_checkpoint(engine: sa.Engine, name: str) -> int | None:
    with engine.connect() as conn:
        return conn.execute(sa.select(job_checkpoints.c.value).where(job_checkpoints.c.name == name)).scalar()


def _set_checkpoint(conn: Connection, name: str, value: int) -> None:
    if conn.execute(sa.update(job_checkpoints).where(job_checkpoints.c.name == name).values(value=value)).rowcount:
        return
    conn.execute(sa.insert(job_checkpoints).values(name=name, value=value))


# The writer's statements, built once: building a Core statement (and its cache key) costs more than SQLite takes
# to run it, on every batch of every process.
_LIVE_WEBHOOKS = sa.select(webhooks.c.id, webhooks.c.event_types, webhooks.c.banks).where(webhooks.c.deleted.is_(False))
_NEXT_EVENT_IDS = (
    sa.update(event_counters)
    .where(event_counters.c.id == 1)
    .values(last_event_id=event_counters.c.last_event_id + sa.bindparam("count"))
    .returning(event_counters.c.last_event_id)
)
_IN_WINDOW = sa.and_(
    event_items.c.item_id.in_(sa.bindparam("ids", expanding=True)), event_items.c.at_ms >= sa.bindparam("since_ms")
)
# Rows first: the (item_id, at_ms) index alone answers it. An item's rows in the window bound its distinct contents
# from above, so only the items with more rows than the rule allows need the distinct count, which reads every
# row's content_key from the table.
_COUNT_ROWS = OneStep(
    sa.select(event_items.c.item_id, sa.func.count()).where(_IN_WINDOW).group_by(event_items.c.item_id)
)
_COUNT_CONTENTS = OneStep(
    sa.select(event_items.c.item_id, sa.func.count(sa.distinct(event_items.c.content_key)))
    .where(_IN_WINDOW)
    .group_by(event_items.c.item_id)
)
# "+item_id": grouped on the bare column, SQLite's planner reads the whole (item_id, at_ms) index in item order to save
# the GROUP BY its sort, i.e. every (event, item) row still kept, on every check of every process (a check took
# 11 ms after 8,000 events and 76 ms after 96,000, growing with the table); the unary plus leaves it the
# event_id index, so a check reads only the rows written since `upto`.
_ROWS_SINCE = OneStep(
    sa.text(
        "SELECT +item_id AS item_id, count(*) AS rows_since, max(event_id) AS newest FROM event_items"
        " WHERE event_id > :upto GROUP BY +item_id"
    ).columns(sa.column("item_id"), sa.column("rows_since"), sa.column("newest"))
)
_NEWEST_EVENT_ITEM = sa.select(sa.func.max(event_items.c.event_id))
_QUARANTINE_STATES = sa.select(quarantines).where(quarantines.c.item_id.in_(sa.bindparam("ids", expanding=True)))


def _live_webhooks(conn: Connection) -> list[Any]:
    return list(conn.execute(_LIVE_WEBHOOKS))


def _flood(
    conn: Connection, guarded: list[tuple[int, str]], rule: FloodRule, bounds: CountBounds | None = None
) -> list[NewEvent]:
    """Quarantine events for the guarded items that crossed the rule and are not quarantined already (their
    counts become their `bounds`, if given: distinct contents for those over the limit, rows for the others)."""
    now = utcnow()
    since = now - dt.timedelta(seconds=rule.window_s)
    since_ms = epoch_ms(since)
    banks = dict(guarded)
    ids = list(banks)
    states: dict[int, Any] = {}
    counts: dict[int, int] = {}
    # One grouped count over the window per chunk of guarded items (a batch can match a thousand items): rows,
    # then distinct contents for the items with more rows than the limit; an item re-armed inside the window is
    # recounted from its re-arming below.
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        counted = _COUNT_ROWS.rows(conn, {"ids": chunk, "since_ms": since_ms})
        counts.update((int(item_id), int(rows)) for item_id, rows in counted)
    many = [item_id for item_id in ids if counts.get(item_id, 0) > rule.max_contents]
    for start in range(0, len(many), _CHUNK):
        counted = _COUNT_CONTENTS.rows(conn, {"ids": many[start : start + _CHUNK], "since_ms": since_ms})
        counts.update((int(item_id), int(count)) for item_id, count in counted)
    if bounds is not None:
        bounds.bounds.update((item_id, counts.get(item_id, 0)) for item_id in ids)
    # Only an item over the limit can be quarantined, and only its state can say it is not (already held, or
    # re-armed and recounted from then): almost every check reads no state at all.
    over = [item_id for item_id in ids if counts.get(item_id, 0) > rule.max_contents]
    for start in range(0, len(over), _CHUNK):
        for row in conn.execute(_QUARANTINE_STATES, {"ids": over[start : start + _CHUNK]}):
            states[row.item_id] = row
    found = []
    for item_id, bank in guarded:
        count = int(counts.get(item_id, 0))
        if count <= rule.max_contents:
            continue
        state = states.get(item_id)
        if state is not None and state.status in ("active", "disabled"):
            continue
        if state is not None and state.changed_at and state.changed_at > since:
            count = conn.execute(
                sa.select(sa.func.count(sa.distinct(event_items.c.content_key))).where(
                    event_items.c.item_id == item_id, event_items.c.at_ms >= epoch_ms(state.changed_at)
                )
            ).scalar_one()
        if count <= rule.max_contents:
            continue
        reason = f"matched {count} distinct contents within {rule.window_s:g} s (limit {rule.max_contents})"
        if state is None:
            insert = _insert_ignoring_conflict(conn).values(
                item_id=item_id, bank=bank, status="active", since=now, reason=reason
            )
            # RETURNING says whether this insert won (psycopg reports no rowcount for ON CONFLICT DO NOTHING).
            won = conn.execute(insert.on_conflict_do_nothing().returning(quarantines.c.item_id)).first()
            changed = 1 if won is not None else 0
        else:
            changed = conn.execute(
                sa.update(quarantines)
                .where(quarantines.c.item_id == item_id, quarantines.c.status == "rearmed")
                .values(status="active", since=now, reason=reason, changed_by="flood-guard", changed_at=now)
            ).rowcount
        if changed == 1:  # exactly one process quarantines it, whichever replica counted first
            found.append(
                NewEvent(
                    "quarantine",
                    now,
                    f"quarantine:{item_id}",
                    matches=[{"bank": bank, "item_id": item_id}],
                    details={"reason": reason, "distinct_contents": count, "window_s": rule.window_s},
                    webhook_type="quarantine",
                )
            )
    return found


def _insert_ignoring_conflict(conn: Connection) -> Any:
    module = postgresql if conn.dialect.name == "postgresql" else sqlite
    return module.insert(quarantines)


def event_dict_from(event_id: int, e: NewEvent) -> dict[str, Any]:
    return {
        "id": event_id,
        "type": e.type,
        "at": e.at.isoformat(),
        "key": e.key_name,
        "content_id": e.content_id,
        "decision": e.decision,
        "metadata": e.metadata,
        "hashes": e.hashes,
        "matches": e.matches,
        "details": e.details,
    }


def _event_dict(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "type": row.type,
        "at": row.at.isoformat(),
        "key": row.key_name,
        "content_id": row.content_id,
        "decision": row.decision,
        "metadata": row.metadata,
        "hashes": row.hashes,
        "matches": row.matches,
        "details": row.details,
    }


# -------------------------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class EventFilter:
    decision: str | None = None
    type: str | None = None
    bank: str | None = None
    item_id: int | None = None
    content_id: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    before_id: int | None = None


def list_events(engine: sa.Engine, where: EventFilter, limit: int) -> list[dict[str, Any]]:
    """Newest first; pass the last id seen as `before_id` for the next page."""
    query = sa.select(events).order_by(events.c.id.desc())
    if where.decision is not None:
        query = query.where(events.c.decision == where.decision)
    if where.type is not None:
        query = query.where(events.c.type == where.type)
    if where.since is not None:
        query = query.where(events.c.at >= where.since)
    if where.until is not None:
        query = query.where(events.c.at < where.until)
    if where.before_id is not None:
        query = query.where(events.c.id < where.before_id)
    if where.bank is not None or where.item_id is not None:
        sub = sa.select(event_items.c.event_id)
        if where.bank is not None:
            sub = sub.where(event_items.c.bank == where.bank)
        if where.item_id is not None:
            sub = sub.where(event_items.c.item_id == where.item_id)
        query = query.where(events.c.id.in_(sub))
    with engine.connect() as conn:
        if where.content_id is None:
            return [_event_dict(row) for row in conn.execute(query.limit(limit))]
        return _by_content_id(conn, query.where(events.c.content_id == where.content_id), where, limit)


def _by_content_id(conn: Connection, query: sa.Select[Any], where: EventFilter, limit: int) -> list[dict[str, Any]]:
    """The query's first `limit` rows, asked bucket by bucket of the content_id index (see CONTENT_BUCKET), from
    the newest bucket down: each statement covers a run of buckets below the previous one, so the pages come out
    newest first as they are."""
    oldest, newest = conn.execute(_ID_RANGE).one()
    if oldest is None:
        return []
    if where.before_id is not None:
        newest = min(newest, where.before_id - 1)
    found: list[dict[str, Any]] = []
    top, bottom = newest // CONTENT_BUCKET, oldest // CONTENT_BUCKET
    while top >= bottom and len(found) < limit:
        buckets = list(range(top, max(bottom, top - BUCKETS_PER_QUERY + 1) - 1, -1))
        rows = conn.execute(query.where(events.c.content_bucket.in_(buckets)).limit(limit - len(found)))
        found += [_event_dict(row) for row in rows]
        top = buckets[-1] - 1
    return found


# Two subqueries: SQLite reads min() or max() of a key from one end of its index only when it is alone in its
# SELECT; together in one, they read the whole table (0.21 s at 1M events).
_ID_RANGE = sa.select(
    sa.select(sa.func.min(events.c.id)).scalar_subquery(), sa.select(sa.func.max(events.c.id)).scalar_subquery()
)


def get_event(engine: sa.Engine, event_id: int) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(sa.select(events).where(events.c.id == event_id)).one_or_none()
    if row is None:
        raise NotFoundError(f"no event with id {event_id}")
    return _event_dict(row)


def count_events(engine: sa.Engine) -> dict[str, int]:
    """Events per type and decision, for the metrics."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(events.c.type, events.c.decision, sa.func.count()).group_by(events.c.type, events.c.decision)
        )
        return {f"{row[0]}:{row[1]}": int(row[2]) for row in rows}


def activity(engine: sa.Engine, bounds: Sequence[dt.datetime]) -> list[dict[str, Any]]:
    """Match events and matched items per bank and decision in each period [bounds[i], bounds[i + 1]).

    One grouped query over the whole window: the period is a CASE over the bounds, which every back end reads
    the same way (date functions differ between SQLite and PostgreSQL)."""
    if len(bounds) < 2:
        return []
    period = sa.case(*((events.c.at < bound, n) for n, bound in enumerate(bounds[1:])), else_=None).label("period")
    query = (
        sa.select(
            period,
            event_items.c.bank,
            events.c.decision,
            sa.func.count(sa.distinct(events.c.id)).label("events"),
            sa.func.count().label("matches"),
        )
        .select_from(events.join(event_items, event_items.c.event_id == events.c.id))
        .where(events.c.type == "match", events.c.at >= bounds[0], events.c.at < bounds[-1])
        .group_by(period, event_items.c.bank, events.c.decision)
    )
    with engine.connect() as conn:
        return [
            {
                "period": int(row.period),
                "bank": row.bank,
                "decision": row.decision,
                "events": int(row.events),
                "matches": int(row.matches),
            }
            for row in conn.execute(query)
            if row.period is not None
        ]


def prune(engine: sa.Engine, before: dt.datetime) -> int:
    """Delete events older than `before`, except those an open review still points at; return how many.

    A chunk of events at a time (hashsvc.store.pruning), found by their time (the `at` index) and their item rows
    by event id: `event_items` has no index on its own `at`, and deleting by it read the whole table on every
    prune (a minute apart, for the retention period's worth of rows)."""
    still_open = sa.select(reviews.c.id).where(reviews.c.status == "open")
    old = sa.select(events.c.id).where(events.c.at < before, events.c.id.not_in(still_open)).limit(pruning.PRUNE_CHUNK)
    done = 0
    while True:
        with write_connection(engine) as conn:
            ids = list(conn.execute(old).scalars())
            if ids:
                conn.execute(_DELETE_EVENT_ITEMS, {"ids": ids})
                conn.execute(_DELETE_EVENTS, {"ids": ids})
        done += len(ids)
        if len(ids) < pruning.PRUNE_CHUNK:
            break
    pruning.delete_in_chunks(engine, reviews, reviews.c.status == "resolved", reviews.c.opened_at < before)
    return done


_DELETE_EVENT_ITEMS = sa.delete(event_items).where(event_items.c.event_id.in_(sa.bindparam("ids", expanding=True)))
_DELETE_EVENTS = sa.delete(events).where(events.c.id.in_(sa.bindparam("ids", expanding=True)))


# ----------------------------------------------------------------------------------------- quarantines


def quarantined(engine: sa.Engine, item_ids: Iterable[int]) -> set[int]:
    """Which of these items are quarantined now (the match path asks only about items that matched)."""
    ids = sorted(set(item_ids))
    found: set[int] = set()
    with engine.connect() as conn:
        for start in range(0, len(ids), _CHUNK):
            found.update(
                conn.execute(
                    sa.select(quarantines.c.item_id).where(
                        quarantines.c.item_id.in_(ids[start : start + _CHUNK]), quarantines.c.status == "active"
                    )
                ).scalars()
            )
    return found


def list_quarantines(engine: sa.Engine, status: str | None) -> list[dict[str, Any]]:
    query = sa.select(quarantines).order_by(quarantines.c.since)
    if status is not None:
        query = query.where(quarantines.c.status == status)
    with engine.connect() as conn:
        return [_quarantine_dict(row) for row in conn.execute(query)]


def set_quarantine(engine: sa.Engine, item_id: int, status: str, who: str) -> dict[str, Any]:
    """Re-arm (`rearmed`: the item blocks again, its flood count restarts) or close (`disabled`) a quarantine."""
    now = utcnow()
    with engine.begin() as conn:
        done = conn.execute(
            sa.update(quarantines)
            .where(quarantines.c.item_id == item_id, quarantines.c.status == "active")
            .values(status=status, changed_by=who, changed_at=now)
        ).rowcount
        row = conn.execute(sa.select(quarantines).where(quarantines.c.item_id == item_id)).one_or_none()
    if row is None:
        raise NotFoundError(f"item {item_id} is not quarantined")
    if done != 1:
        raise ConflictError(f"the quarantine of item {item_id} is already {row.status}")
    return _quarantine_dict(row)


def _quarantine_dict(row: Any) -> dict[str, Any]:
    return {
        "item_id": row.item_id,
        "bank": row.bank,
        "status": row.status,
        "since": row.since.isoformat(),
        "reason": row.reason,
        "changed_by": row.changed_by,
        "changed_at": row.changed_at.isoformat() if row.changed_at else None,
    }


# --------------------------------------------------------------------------------------------- reviews


@dataclass(frozen=True)
class ReviewFilter:
    status: str | None = "open"
    bank: str | None = None
    category: str | None = None
    older_than: dt.datetime | None = None
    after_id: int | None = None


def list_reviews(engine: sa.Engine, where: ReviewFilter, limit: int) -> list[dict[str, Any]]:
    """Oldest first (the queue's order); pass the last id seen as `after_id` for the next page."""
    query = sa.select(reviews).order_by(reviews.c.opened_at, reviews.c.id).limit(limit)
    if where.status is not None:
        query = query.where(reviews.c.status == where.status)
    if where.bank is not None:
        query = query.where(reviews.c.bank == where.bank)
    if where.category is not None:
        query = query.where(reviews.c.category == where.category)
    if where.older_than is not None:
        query = query.where(reviews.c.opened_at < where.older_than)
    if where.after_id is not None:
        query = query.where(reviews.c.id > where.after_id)
    with engine.connect() as conn:
        return [review_dict(row) for row in conn.execute(query)]


def get_review(engine: sa.Engine, review_id: int) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(sa.select(reviews).where(reviews.c.id == review_id)).one_or_none()
    if row is None:
        raise NotFoundError(f"no review with id {review_id}")
    return review_dict(row)


def claim_review(engine: sa.Engine, review_id: int, who: str, lease_s: float) -> dict[str, Any]:
    """Claim an open review for `lease_s` seconds (renewing one's own claim). Raises ConflictError while another
    analyst's claim is live, or when it is resolved: one conditional UPDATE, so two replicas cannot both win."""
    now = utcnow()
    with engine.begin() as conn:
        done = conn.execute(
            sa.update(reviews)
            .where(reviews.c.id == review_id, reviews.c.status == "open", _claimable(who, now))
            .values(claimed_by=who, claim_expires_at=now + dt.timedelta(seconds=lease_s))
        ).rowcount
    review = get_review(engine, review_id)
    if done != 1:
        if review["status"] != "open":
            raise ConflictError(f"review {review_id} is already resolved")
        until = review["claim_expires_at"]
        raise ConflictError(f"review {review_id} is claimed by {review['claimed_by']} until {until}")
    return review


def resolve_review(
    engine: sa.Engine, review_id: int, who: str, resolution: str, reason: str | None, outcome: dict[str, Any]
) -> dict[str, Any]:
    """Close a review that is unclaimed, or claimed by `who`, or whose claim expired. Raises ConflictError."""
    now = utcnow()
    with engine.begin() as conn:
        done = conn.execute(
            sa.update(reviews)
            .where(reviews.c.id == review_id, reviews.c.status == "open", _claimable(who, now))
            .values(
                status="resolved",
                resolution=resolution,
                reason=reason,
                resolved_by=who,
                resolved_at=now,
                outcome=outcome,
                claimed_by=who,
                claim_expires_at=None,
            )
        ).rowcount
    review = get_review(engine, review_id)
    if done != 1:
        if review["status"] != "open":
            raise ConflictError(f"review {review_id} is already resolved")
        raise ConflictError(f"review {review_id} is claimed by {review['claimed_by']}")
    return review


def _claimable(who: str, now: dt.datetime) -> sa.ColumnElement[bool]:
    return sa.or_(reviews.c.claimed_by.is_(None), reviews.c.claimed_by == who, reviews.c.claim_expires_at < now)


def open_review_stats(engine: sa.Engine) -> tuple[int, float]:
    """How many reviews are open, and the age in seconds of the oldest (0 when none), for the metrics."""
    with engine.connect() as conn:
        count, oldest = conn.execute(
            sa.select(sa.func.count(), sa.func.min(reviews.c.opened_at)).where(reviews.c.status == "open")
        ).one()
    if not count or oldest is None:
        return 0, 0.0
    if oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=dt.UTC)
    return int(count), (utcnow() - oldest).total_seconds()


def review_dict(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "event_id": row.id,
        "opened_at": row.opened_at.isoformat(),
        "status": row.status,
        "bank": row.bank,
        "category": row.category,
        "item_id": row.item_id,
        "claimed_by": row.claimed_by,
        "claim_expires_at": row.claim_expires_at.isoformat() if row.claim_expires_at else None,
        "resolution": row.resolution,
        "reason": row.reason,
        "resolved_by": row.resolved_by,
        "resolved_at": row.resolved_at.isoformat() if row.resolved_at else None,
        "outcome": row.outcome,
    }
