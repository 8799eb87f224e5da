"""Store fixtures: every store test runs against SQLite and PostgreSQL.

`store_url` is parametrized over the two back ends. SQLite gets a fresh file per test. PostgreSQL gets one fresh
database per test run (`hashsvc_test_<random>`, dropped at the end) and a fresh schema per test inside it, selected
through the connection's search_path, so tests never see each other's rows and nothing is left on the server.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from availability import POSTGRES_URL, skip_or_fail

from hashsvc.store import Store, upgrade

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[sa.URL]:
    """A throw-away database on the test server for this run; skips (or fails under CI) when unreachable."""
    server = sa.make_url(POSTGRES_URL)
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    name = f"hashsvc_test_{secrets.token_hex(4)}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        admin.dispose()
        skip_or_fail(f"PostgreSQL not reachable at {server.render_as_string()}: {exc.orig}")
    try:
        yield server.set(database=name)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str], str]:
    """A factory of empty-database URLs for the back end under test (`backend` is set by parametrization)."""
    backend: str = request.param if hasattr(request, "param") else request.getfixturevalue("backend")

    def make(label: str = "store") -> str:
        if backend == "sqlite":
            return f"sqlite:///{tmp_path / label}.db"
        database: sa.URL = request.getfixturevalue("postgres_database")
        schema = f"t_{secrets.token_hex(6)}"
        engine = sa.create_engine(database)
        with engine.begin() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
        engine.dispose()
        url = database.update_query_dict({"options": f"-csearch_path={schema}"})
        return url.render_as_string(hide_password=False)

    return make


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_url(fresh_url: Callable[[str], str]) -> str:
    """An upgraded, empty store of the back end under test."""
    url = fresh_url("store")
    upgrade(url)
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with Store(store_url) as opened:
        yield opened
