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

from hashsvc.hashes.codec import ALGORITHMS
from hashsvc.store import Change, Store, upgrade

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
def fresh_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str], str]:
    """A factory of empty-database URLs for the back end under test."""

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


# --------------------------------------------------------------------------------- what an index would do

HashKey = tuple[int, int, int, str, bytes]  # (hash id, item id, bank id, algorithm, code)


class ReplayedIndex:
    """The simplest possible index: built from `Store.active_hashes`, kept current with `Store.changes_since`.

    Tests compare it with the store's own state to check that the change log carries everything an index needs.
    """

    def __init__(self) -> None:
        self.rows: dict[int, HashKey] = {}
        self.sequence = 0
        self.seen: list[int] = []

    @classmethod
    def from_snapshot(cls, store: Store) -> ReplayedIndex:
        index = cls()
        sequences = set()
        for algorithm in ALGORITHMS:
            with store.active_hashes(algorithm, chunk_size=7) as snapshot:
                sequences.add(snapshot.sequence)
                for chunk in snapshot:
                    for hash_id, item_id, bank_id, code in zip(
                        chunk.ids, chunk.item_ids, chunk.bank_ids, chunk.codes, strict=True
                    ):
                        index.rows[int(hash_id)] = (int(hash_id), int(item_id), int(bank_id), algorithm, code.tobytes())
        assert len(sequences) == 1, "the store changed while the test snapshot was taken"
        index.sequence = sequences.pop()
        return index

    def apply(self, change: Change) -> None:
        assert change.sequence > self.sequence, "changes must arrive in increasing sequence order"
        if change.effect == "activate":
            for h in change.hashes:
                self.rows[h.hash_id] = (h.hash_id, h.item_id, h.bank_id, h.algorithm, h.code)
        elif change.effect == "deactivate":
            if change.item_id is not None:
                self.rows = {k: v for k, v in self.rows.items() if v[1] not in change.item_ids}
            else:
                self.rows = {k: v for k, v in self.rows.items() if v[2] != change.bank_id}
        self.sequence = change.sequence
        self.seen.append(change.sequence)

    def catch_up(self, store: Store, page: int = 50) -> int:
        """Apply every change after our sequence; return how many were applied."""
        applied = 0
        while changes := store.changes_since(self.sequence, limit=page):
            for change in changes:
                self.apply(change)
            applied += len(changes)
        return applied


def active_state(store: Store) -> set[HashKey]:
    """The store's matchable hashes, read straight from the tables (active item, enabled bank)."""
    state: set[HashKey] = set()
    for bank in store.list_banks():
        if not bank.enabled:
            continue
        after = 0
        while page := store.list_items(bank.name, after_id=after, limit=500, status="active"):
            for item in page:
                state.update((h.id, item.id, bank.id, h.algorithm, h.code) for h in item.hashes)
            after = page[-1].id
    return state


@pytest.fixture
def replayed_index() -> type[ReplayedIndex]:
    """The ReplayedIndex class (a fixture, so test modules need not import this plugin module directly)."""
    return ReplayedIndex


@pytest.fixture
def store_state() -> Callable[[Store], set[HashKey]]:
    return active_state
