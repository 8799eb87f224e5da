"""Migrations: `upgrade(url)` builds the schema from nothing, is idempotent, agrees with the models, and the same
scripts run from the `alembic` command line."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from hashsvc.store import SchemaOutOfDateError, Store, check_schema, current_revision, head_revision, upgrade
from hashsvc.store.engine import create_store_engine
from hashsvc.store.migrate import ALEMBIC_INI
from hashsvc.store.schema import metadata

pytest_plugins = ["store_fixtures"]

REPO = Path(__file__).resolve().parents[1]


def test_upgrade_creates_the_schema_on_an_empty_database(fresh_url: Callable[[str], str]) -> None:
    url = fresh_url("empty")
    assert current_revision(url) is None
    with pytest.raises(SchemaOutOfDateError):
        check_schema(url)
    upgrade(url)
    assert current_revision(url) == head_revision()
    check_schema(url)
    engine = create_store_engine(url)
    try:
        tables = set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert tables >= {"banks", "items", "item_hashes", "changes", "store_counters", "api_keys", "audit_log"}
    upgrade(url)  # idempotent: every start-up calls it
    with Store(url) as store:
        assert store.max_sequence() == 0


def test_a_store_without_a_schema_says_so(fresh_url: Callable[[str], str]) -> None:
    with Store(fresh_url("bare")) as store, pytest.raises(SchemaOutOfDateError):
        store.create_bank("b", category="csam", actor="a")


def test_the_models_and_the_migrations_agree(store_url: str) -> None:
    engine = create_store_engine(store_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            differences = compare_metadata(context, metadata)
    finally:
        engine.dispose()
    assert differences == []


def test_the_alembic_command_line_upgrades_to_head(fresh_url: Callable[[str], str]) -> None:
    url = fresh_url("cli")
    result = subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(ALEMBIC_INI), "-x", f"url={url}", "upgrade", "head"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert current_revision(url) == head_revision()


def test_the_default_database_url_from_the_settings_is_an_embedded_sqlite_file(tmp_path: Path) -> None:
    from hashsvc.config import load_settings

    url = load_settings({"data_dir": str(tmp_path / "data")}, environ={}).resolved_database_url
    upgrade(url)  # the data folder does not exist yet: the store creates it
    with Store(url) as store:
        assert store.backend == "sqlite"
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one() >= 5000
