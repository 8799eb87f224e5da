"""Leases: background work that exactly one process across every replica does at a time.

A lease is a row (name, holder, expires_at). A process takes it when it is free or expired, and keeps it by
renewing before it expires; a process that dies simply stops renewing, and another takes over after the TTL.
Both back ends decide in one serialized write (BEGIN IMMEDIATE on SQLite, a row lock or the primary key's
uniqueness on PostgreSQL), so two processes can never both believe they hold it.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from hashsvc.store.schema import leases
from hashsvc.store.transactions import utcnow, write_connection


def acquire(engine: sa.Engine, name: str, holder: str, ttl_s: float) -> bool:
    """Take or renew the lease `name` for `holder` for `ttl_s` seconds; False when another live holder has it."""
    now = utcnow()
    expires = now + dt.timedelta(seconds=ttl_s)
    try:
        with write_connection(engine) as conn:
            row = conn.execute(
                sa.select(leases.c.holder, leases.c.expires_at).where(leases.c.name == name).with_for_update()
            ).one_or_none()
            if row is None:
                conn.execute(sa.insert(leases).values(name=name, holder=holder, expires_at=expires))
                return True
            if row.holder != holder and row.expires_at > now:
                return False
            conn.execute(sa.update(leases).where(leases.c.name == name).values(holder=holder, expires_at=expires))
            return True
    except sa.exc.IntegrityError:  # another process inserted the first row at the same moment: it holds it
        return False


def release(engine: sa.Engine, name: str, holder: str) -> None:
    """Give the lease up at once (a clean shutdown), so another process need not wait for the TTL."""
    with engine.begin() as conn:
        conn.execute(sa.delete(leases).where(leases.c.name == name, leases.c.holder == holder))
