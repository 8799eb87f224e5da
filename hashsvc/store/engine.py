"""Engines for the two back ends, configured so that the same Core code behaves the same on both.

SQLite: WAL (readers never block the writer and see a stable snapshot), foreign keys on, a busy timeout so that
concurrent writers queue instead of failing, and `BEGIN IMMEDIATE` for write transactions so that two writers
never both read and then deadlock upgrading to a write lock. Python's sqlite3 module manages transactions itself
(and badly: it does not emit BEGIN before a SELECT), so we switch that off and emit BEGIN ourselves, as the
SQLAlchemy documentation recommends.

PostgreSQL: psycopg 3, READ COMMITTED for writes (the counter-row lock serializes them, see `writes.py`) and
REPEATABLE READ for multi-statement reads that must see one snapshot.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url

from hashsvc.errors import ValidationError
from hashsvc.private_files import create_private_file, private_dir

SQLITE_BUSY_TIMEOUT_MS = 30_000
# Pages of the database file read through a memory map instead of read() into each connection's own cache. Every
# commit (the event writer's, a few times a second under matches) makes every other connection drop its page
# cache, so reads after it paid a system call and a copy per page; mapped, they are memory reads of the OS's
# page cache. Address space, not memory: the mapped pages are the kernel's file cache, shared by connections.
SQLITE_MMAP_BYTES = 256 * 1024 * 1024
# Execution option set on connections that will write: makes the SQLite BEGIN immediate.
WRITE_OPTION = "hashsvc_write"


def parse_url(url: str | URL) -> URL:
    try:
        parsed = make_url(url)
    except (sa.exc.ArgumentError, ValueError) as exc:  # ValueError: a bad port number
        raise ValidationError(f"invalid database URL {url!s:.80}: {exc}") from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ValidationError(f"unsupported database {parsed.get_backend_name()!r}; use sqlite or postgresql")
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() not in ("psycopg", "psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def create_store_engine(url: str | URL, **kwargs: Any) -> Engine:
    """Create an engine for `url` (sqlite:///path or postgresql+psycopg://...) with the store's settings."""
    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, **kwargs)
    return sa.create_engine(parsed, pool_pre_ping=True, **kwargs)


def _sqlite_engine(url: URL, **kwargs: Any) -> Engine:
    if not url.database or url.database == ":memory:":
        # Each pooled connection would get its own empty in-memory database; a file is the only sane choice.
        raise ValidationError("the store needs a SQLite file (sqlite:///path/to/hashsvc.db), not :memory:")
    # SQLite creates the -wal and -shm files with the database file's mode, so a 0600 file keeps all three
    # private; a file that exists already keeps whatever mode its owner gave it.
    private_dir(Path(url.database).parent)
    create_private_file(url.database)
    engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **kwargs)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a commit survives a crash of the process (what the SIGKILL test checks);
            # only an OS crash or power loss can roll back the last commits, never corrupt the file.
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA cache_size=-65536")  # 64 MiB page cache per connection
            cursor.execute("PRAGMA temp_store=MEMORY")
            cursor.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
        finally:
            cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        immediate = connection.get_execution_options().get(WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine
