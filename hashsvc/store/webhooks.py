"""The store side of webhooks: subscriptions, the durable outbox, and every delivery attempt."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from hashsvc.errors import NotFoundError
from hashsvc.store.pruning import delete_in_chunks
from hashsvc.store.schema import webhook_attempts, webhook_outbox, webhooks
from hashsvc.store.transactions import utcnow


@dataclass(frozen=True)
class Due:
    """An outbox row that is due for delivery, with what it takes to deliver it."""

    id: int
    webhook_id: int
    idempotency_key: str
    event_type: str
    payload: dict[str, Any]
    created_at: dt.datetime
    attempts: int
    url: str | None  # None: the webhook was deleted
    secret: str | None


@dataclass(frozen=True)
class Outcome:
    """What one attempt did: delivered, or when to try again (None: give up)."""

    outbox_id: int
    webhook_id: int
    at: dt.datetime
    status_code: int | None
    error: str | None
    duration_ms: float
    delivered: bool
    retry_at: dt.datetime | None


def create(engine: sa.Engine, url: str, secret: str, event_types: list[str], banks: list[str] | None, who: str) -> int:
    with engine.begin() as conn:
        return int(
            conn.execute(
                sa.insert(webhooks)
                .values(
                    url=url,
                    secret=secret,
                    event_types=event_types,
                    banks=banks,
                    created_by=who,
                    created_at=utcnow(),
                    deleted=False,
                )
                .returning(webhooks.c.id)
            ).scalar_one()
        )


def list_all(engine: sa.Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(webhooks).where(webhooks.c.deleted.is_(False)).order_by(webhooks.c.id))
        return [webhook_dict(row) for row in rows]


def get(engine: sa.Engine, webhook_id: int) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(webhooks).where(webhooks.c.id == webhook_id, webhooks.c.deleted.is_(False))
        ).one_or_none()
    if row is None:
        raise NotFoundError(f"no webhook with id {webhook_id}")
    return webhook_dict(row)


def target(engine: sa.Engine, webhook_id: int) -> tuple[str, str]:
    """A live webhook's URL and signing secret (for a test delivery)."""
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(webhooks.c.url, webhooks.c.secret).where(
                webhooks.c.id == webhook_id, webhooks.c.deleted.is_(False)
            )
        ).one_or_none()
    if row is None:
        raise NotFoundError(f"no webhook with id {webhook_id}")
    return str(row.url), str(row.secret)


def delete(engine: sa.Engine, webhook_id: int) -> None:
    """Stop a webhook: its pending deliveries are cancelled; its attempts stay visible."""
    get(engine, webhook_id)
    with engine.begin() as conn:
        conn.execute(sa.update(webhooks).where(webhooks.c.id == webhook_id).values(deleted=True))
        conn.execute(
            sa.update(webhook_outbox)
            .where(webhook_outbox.c.webhook_id == webhook_id, webhook_outbox.c.status == "pending")
            .values(status="cancelled")
        )


def webhook_dict(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "url": row.url,
        "event_types": list(row.event_types),
        "banks": None if row.banks is None else list(row.banks),
        "created_by": row.created_by,
        "created_at": row.created_at.isoformat(),
    }


def due(engine: sa.Engine, limit: int) -> list[Due]:
    """Pending deliveries whose time has come, oldest first."""
    query = (
        sa.select(webhook_outbox, webhooks.c.url, webhooks.c.secret, webhooks.c.deleted)
        .select_from(webhook_outbox.outerjoin(webhooks, webhooks.c.id == webhook_outbox.c.webhook_id))
        .where(webhook_outbox.c.status == "pending", webhook_outbox.c.next_attempt_at <= utcnow())
        .order_by(webhook_outbox.c.id)
        .limit(limit)
    )
    with engine.connect() as conn:
        return [
            Due(
                row.id,
                row.webhook_id,
                row.idempotency_key,
                row.event_type,
                row.payload,
                row.created_at,
                row.attempts,
                None if row.deleted else row.url,
                None if row.deleted else row.secret,
            )
            for row in conn.execute(query)
        ]


def claim(engine: sa.Engine, outbox_ids: Sequence[int], hold_s: float) -> set[int]:
    """Take these due rows for one delivery attempt: push their next attempt `hold_s` ahead, so that no other
    process picks them up meanwhile (even one that took the deliverer lease over). Returns the ids taken."""
    if not outbox_ids:
        return set()
    now = utcnow()
    with engine.begin() as conn:
        taken = conn.execute(
            sa.update(webhook_outbox)
            .where(
                webhook_outbox.c.id.in_(list(outbox_ids)),
                webhook_outbox.c.status == "pending",
                webhook_outbox.c.next_attempt_at <= now,
            )
            .values(next_attempt_at=now + dt.timedelta(seconds=hold_s))
            .returning(webhook_outbox.c.id)
        )
        return {int(row_id) for row_id in taken.scalars()}


def settle(engine: sa.Engine, outcomes: Sequence[Outcome]) -> None:
    """Record attempts and move each outbox row on (delivered, retried later, or failed for good)."""
    if not outcomes:
        return
    with engine.begin() as conn:
        conn.execute(
            sa.insert(webhook_attempts),
            [
                {
                    "outbox_id": o.outbox_id,
                    "webhook_id": o.webhook_id,
                    "at": o.at,
                    "status_code": o.status_code,
                    "error": o.error,
                    "duration_ms": o.duration_ms,
                }
                for o in outcomes
            ],
        )
        # One executemany per kind of outcome (most rounds are all "delivered"), not one statement per row.
        pending = sa.and_(webhook_outbox.c.id == sa.bindparam("oid"), webhook_outbox.c.status == "pending")
        attempts = webhook_outbox.c.attempts + 1
        delivered = [{"oid": o.outbox_id, "when": o.at} for o in outcomes if o.delivered]
        failed = [{"oid": o.outbox_id} for o in outcomes if not o.delivered and o.retry_at is None]
        retried = [{"oid": o.outbox_id, "when": o.retry_at} for o in outcomes if not o.delivered and o.retry_at]
        update = sa.update(webhook_outbox).where(pending)
        if delivered:
            when = sa.bindparam("when", type_=webhook_outbox.c.delivered_at.type)
            conn.execute(update.values(attempts=attempts, status="delivered", delivered_at=when), delivered)
        if failed:
            conn.execute(update.values(attempts=attempts, status="failed"), failed)
        if retried:
            when = sa.bindparam("when", type_=webhook_outbox.c.next_attempt_at.type)
            conn.execute(update.values(attempts=attempts, next_attempt_at=when), retried)


def cancel(engine: sa.Engine, outbox_ids: Sequence[int]) -> None:
    if outbox_ids:
        with engine.begin() as conn:
            conn.execute(
                sa.update(webhook_outbox).where(webhook_outbox.c.id.in_(list(outbox_ids))).values(status="cancelled")
            )


def deliveries(engine: sa.Engine, webhook_id: int, limit: int, before_id: int | None) -> list[dict[str, Any]]:
    """A webhook's outbox rows, newest first, each with its attempts."""
    get(engine, webhook_id)
    query = (
        sa.select(webhook_outbox)
        .where(webhook_outbox.c.webhook_id == webhook_id)
        .order_by(webhook_outbox.c.id.desc())
        .limit(limit)
    )
    if before_id is not None:
        query = query.where(webhook_outbox.c.id < before_id)
    with engine.connect() as conn:
        rows = list(conn.execute(query))
        attempts: dict[int, list[dict[str, Any]]] = {}
        if rows:
            for a in conn.execute(
                sa.select(webhook_attempts)
                .where(webhook_attempts.c.outbox_id.in_([r.id for r in rows]))
                .order_by(webhook_attempts.c.id)
            ):
                attempts.setdefault(a.outbox_id, []).append(
                    {
                        "at": a.at.isoformat(),
                        "status_code": a.status_code,
                        "error": a.error,
                        "duration_ms": round(a.duration_ms, 2),
                    }
                )
    return [
        {
            "id": r.id,
            "idempotency_key": r.idempotency_key,
            "event_type": r.event_type,
            "event_id": r.payload.get("id"),
            "status": r.status,
            "attempts": r.attempts,
            "created_at": r.created_at.isoformat(),
            "next_attempt_at": r.next_attempt_at.isoformat() if r.status == "pending" else None,
            "delivered_at": r.delivered_at.isoformat() if r.delivered_at else None,
            "history": attempts.get(r.id, []),
        }
        for r in rows
    ]


def backlog(engine: sa.Engine) -> tuple[int, float]:
    """Pending deliveries and the age of the oldest in seconds (the delivery lag), for the metrics."""
    with engine.connect() as conn:
        count, oldest = conn.execute(
            sa.select(sa.func.count(), sa.func.min(webhook_outbox.c.created_at)).where(
                webhook_outbox.c.status == "pending"
            )
        ).one()
    if not count or oldest is None:
        return 0, 0.0
    if oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=dt.UTC)
    return int(count), (utcnow() - oldest).total_seconds()


def prune(engine: sa.Engine, before: dt.datetime) -> None:
    """Forget settled deliveries and attempts older than `before` (pending ones stay until they settle), a chunk
    at a time, found by their time's index (hashsvc.store.pruning)."""
    delete_in_chunks(engine, webhook_attempts, webhook_attempts.c.at < before)
    delete_in_chunks(engine, webhook_outbox, webhook_outbox.c.created_at < before, webhook_outbox.c.status != "pending")
