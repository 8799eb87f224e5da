"""Schema migrations: `upgrade(url)` at start-up, and the same Alembic scripts from the command line.

Command line (from the repository root, or anywhere with the package installed):
    alembic -c hashsvc/store/migrations/alembic.ini upgrade head
The URL comes from `-x url=...`, else from the service settings (HASHSVC_DATABASE_URL / HASHSVC_DATA_DIR).
"""

from __future__ import annotations

import functools
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from hashsvc.store.engine import create_store_engine
from hashsvc.store.errors import SchemaOutOfDateError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
ALEMBIC_INI = MIGRATIONS_DIR / "alembic.ini"


def alembic_config(connection: sa.Connection | None = None) -> Config:
    config = Config(str(ALEMBIC_INI))
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@functools.cache  # the scripts do not change under a running process, which asks every few seconds
def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


@functools.cache
def _known_revisions() -> frozenset[str]:
    """Every revision this code's migrations know (read once: the scripts do not change under a running process)."""
    return frozenset(script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions())


def upgrade(url: str | sa.URL, revision: str = "head") -> None:
    """Create or migrate the schema at `url` to `revision` (idempotent; safe to call on every start-up)."""
    engine = create_store_engine(url)
    try:
        with engine.begin() as connection:
            # One migrator at a time: several server workers may start at once against one PostgreSQL.
            if connection.dialect.name == "postgresql":
                connection.exec_driver_sql("SELECT pg_advisory_xact_lock(4242424242)")
            command.upgrade(alembic_config(connection), revision)
    finally:
        engine.dispose()


def current_revision(url: str | sa.URL) -> str | None:
    engine = create_store_engine(url)
    try:
        return revision_of(engine)
    finally:
        engine.dispose()


def check_schema(url: str | sa.URL) -> None:
    """Raise SchemaOutOfDateError unless the database is at the head revision (for start-up and readiness).

    A SQLite file that does not exist is reported as missing and is not created: a command run from the wrong
    folder must not leave an empty `index/hashsvc.db` behind.
    """
    missing = _missing_sqlite_file(url)
    if missing is not None:
        raise SchemaOutOfDateError(
            f"no store at {missing}: run `hashsvc init` to create one there, or point HASHSVC_DATA_DIR "
            "(or --database-url) at an existing store"
        )
    current = current_revision(url)
    problem = schema_problem(current)
    if problem is not None:
        versions = f" (the store is at {current}, this code at {head_revision()})" if current is not None else ""
        raise SchemaOutOfDateError(f"the store at {_shown(url)} has {problem}{versions}")


def schema_problem(current: str | None) -> str | None:
    """What a store at revision `current` has that this code was not written for, and what to do ("the store
    has ..."); None at this code's head. Names no revision: readiness shows it to anyone."""
    if current == head_revision():
        return None
    if current is None:
        return "no schema: run `hashsvc init`"
    if current in _known_revisions():
        return "a schema older than this code's: run `hashsvc migrate`"
    # Migrated by a newer version: this code may write rows the new schema no longer describes fully (after
    # 0010, item rows without at_ms, which the flood guard does not count).
    return "a schema newer than this code's: restart this process on the version that migrated it"


def revision_of(engine: sa.Engine) -> str | None:
    """The store's schema revision, read through an existing engine (cheap enough to ask every few seconds)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def _missing_sqlite_file(url: str | sa.URL) -> Path | None:
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    path = Path(parsed.database).resolve()
    return None if path.exists() else path


def _shown(url: str | sa.URL) -> str:
    return sa.make_url(url).render_as_string(hide_password=True)
