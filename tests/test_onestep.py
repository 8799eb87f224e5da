"""hashsvc.store.onestep: a query's rows from SQLite in one step, the same rows as the query gives itself."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from hashsvc.store import Store, onestep, upgrade
from hashsvc.store.aftermatch import NewEvent, record
from hashsvc.store.onestep import OneStep
from hashsvc.store.schema import banks, event_items
from hashsvc.store.transactions import utcnow

PER_ITEM = (
    sa.select(event_items.c.item_id, sa.func.count(), sa.func.max(event_items.c.content_key))
    .where(event_items.c.item_id.in_(sa.bindparam("ids", expanding=True)))
    .group_by(event_items.c.item_id)
    .order_by(event_items.c.item_id)
)


def blocks(content_key: str, item_id: int) -> NewEvent:
    matches = [{"bank": "known", "item_id": item_id, "action": "block"}]
    return NewEvent("match", utcnow(), content_key, decision="block", matches=matches)


def test_the_rows_are_the_querys_own_in_its_column_order(store: Store) -> None:
    record(store.engine, [blocks(f"upload-{n}", n % 7 + 1) for n in range(300)], None)
    with store.engine.connect() as conn:
        plain = [tuple(row) for row in conn.execute(PER_ITEM, {"ids": [1, 3, 5, 99]})]
        packed = OneStep(PER_ITEM).rows(conn, {"ids": [1, 3, 5, 99]})
    assert packed == plain
    assert packed[0] == (1, 43, "upload-98")  # integers stay integers, text stays text


def test_no_rows_is_an_empty_list(store: Store) -> None:
    with store.engine.connect() as conn:
        assert OneStep(PER_ITEM).rows(conn, {"ids": [1]}) == []


def test_on_sqlite_the_rows_come_back_as_one_row_of_the_statement(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/store.db"
    upgrade(url)
    with Store(url) as store:
        record(store.engine, [blocks(f"upload-{n}", n % 7 + 1) for n in range(300)], None)
        with store.engine.connect() as conn:
            stepped = conn.execute(OneStep(PER_ITEM).packed, {"ids": list(range(1, 8))}).all()
    assert len(stepped) == 1


def test_a_json_column_comes_back_parsed_as_the_query_gives_it(store: Store) -> None:
    store.create_bank("known", category="csam", actor="test", thresholds={"pdq": 31})
    store.create_bank("plain", category="csam", actor="test")
    query = sa.select(banks.c.name, banks.c.thresholds).order_by(banks.c.name)
    with store.engine.connect() as conn:
        plain = [tuple(row) for row in conn.execute(query)]
        packed = OneStep(query).rows(conn)
    assert packed == plain
    assert ("known", {"pdq": 31}) in packed


def test_a_sqlite_without_json_functions_gets_the_plain_query(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path}/store.db"
    upgrade(url)
    with Store(url) as store:
        record(store.engine, [blocks(f"upload-{n}", n % 7 + 1) for n in range(50)], None)
        statements: list[str] = []
        sa.event.listen(store.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
        with store.engine.connect() as conn:
            packed = OneStep(PER_ITEM).rows(conn, {"ids": [2, 4]})
            monkeypatch.setattr(onestep, "SQLITE_HAS_JSON", False)
            plain = OneStep(PER_ITEM).rows(conn, {"ids": [2, 4]})
    assert plain == packed and len(plain) == 2
    assert "json_group_array" in statements[-2] and "json_group_array" not in statements[-1]
