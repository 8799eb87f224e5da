"""The store's API contract: banks, items, hashes, API keys and audit, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import datetime as dt

import pytest

from hashsvc.errors import ConflictError, InvalidHashError, NotFoundError, ValidationError
from hashsvc.store import Actor, NewItem, Store

pytest_plugins = ["store_fixtures"]

PDQ = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
PDQ_2 = "0" * 63 + "1"
MD5 = "d41d8cd98f00b204e9800998ecf8427e"


@pytest.fixture
def bank(store: Store) -> str:
    store.create_bank("csam-ncmec", category="csam", actor="alice", thresholds={"pdq": 31})
    return "csam-ncmec"


# ------------------------------------------------------------------------------------------------- banks


def test_a_bank_is_created_with_its_settings_and_timestamps(store: Store) -> None:
    before = dt.datetime.now(dt.UTC)
    bank = store.create_bank(
        "terror-gifct",
        category="terror",
        action="review",
        description="GIFCT list",
        thresholds={"pdq": 20},
        actor="alice",
    )
    assert (bank.name, bank.category, bank.action, bank.description) == (
        "terror-gifct",
        "terror",
        "review",
        "GIFCT list",
    )
    assert bank.enabled and bank.thresholds == {"pdq": 20}
    assert bank.created_at >= before - dt.timedelta(seconds=1) and bank.created_at.tzinfo is not None
    assert store.get_bank("terror-gifct") == bank
    assert store.get_bank_by_id(bank.id) == bank


@pytest.mark.parametrize("name", ["", "Upper", "has space", "-lead", "trail-", "a--b", "x" * 65, "é", None])
def test_bank_names_must_be_lower_case_slugs(store: Store, name: object) -> None:
    with pytest.raises(ValidationError):
        store.create_bank(name, category="csam", actor="alice")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("category", "spam"),
        ("action", "delete"),
        ("thresholds", {"pdq": 300}),
        ("thresholds", {"nope": 3}),
        ("thresholds", {"md5": 2}),
        ("thresholds", {"pdq": True}),
    ],
)
def test_bank_fields_are_validated(store: Store, field: str, value: object) -> None:
    fields: dict[str, object] = {"category": "csam", field: value}
    with pytest.raises(ValidationError):
        store.create_bank("b", actor="alice", **fields)  # type: ignore[arg-type]
    assert store.list_banks() == []


def test_bank_names_are_unique(store: Store, bank: str) -> None:
    with pytest.raises(ConflictError):
        store.create_bank(bank, category="other", actor="alice")


def test_banks_are_listed_by_name_and_updated_in_place(store: Store) -> None:
    for name in ("zeta", "alpha"):
        store.create_bank(name, category="other", actor="alice")
    assert [b.name for b in store.list_banks()] == ["alpha", "zeta"]
    updated = store.update_bank("zeta", description="new", action="log", thresholds={"pdq": 10}, actor="bob")
    assert (updated.description, updated.action, updated.thresholds) == ("new", "log", {"pdq": 10})
    assert updated.updated_at >= updated.created_at
    assert store.disable_bank("zeta", actor="bob").enabled is False
    assert store.enable_bank("zeta", actor="bob").enabled is True


def test_unknown_banks_are_not_found(store: Store) -> None:
    for call in (
        lambda: store.get_bank("nope"),
        lambda: store.update_bank("nope", description="x", actor="a"),
        lambda: store.delete_bank("nope", actor="a"),
        lambda: store.add_item("nope", {"pdq": PDQ}, actor="a"),
        lambda: store.list_items("nope"),
    ):
        with pytest.raises(NotFoundError):
            call()


def test_deleting_a_bank_deletes_its_items_and_hashes(store: Store, bank: str) -> None:
    item = store.add_item(bank, {"pdq": PDQ}, actor="alice")
    store.delete_bank(bank, actor="alice")
    assert store.list_banks() == []
    with pytest.raises(NotFoundError):
        store.get_item(item.id)
    assert store.find_items_by_hash("pdq", PDQ) == []


# ------------------------------------------------------------------------------------------------- items


def test_an_item_round_trips_with_all_its_fields(store: Store, bank: str) -> None:
    item = store.add_item(
        bank,
        [("pdq", PDQ.upper()), ("pdq", PDQ_2), ("md5", f"  {MD5} ")],
        actor=Actor("alice", "10.0.0.1"),
        external_ref="NCMEC:123",
        source="ncmec-2026-11",
        note="first",
        metadata={"case": [1, 2]},
    )
    assert item == store.get_item(item.id)
    assert (item.bank, item.external_ref, item.source, item.note, item.metadata) == (
        bank,
        "NCMEC:123",
        "ncmec-2026-11",
        "first",
        {"case": [1, 2]},
    )
    assert item.active and item.created_by == "alice" and item.status_reason is None
    assert [(h.algorithm, h.hex) for h in item.hashes] == [("pdq", PDQ), ("pdq", PDQ_2), ("md5", MD5)]
    assert all(isinstance(h.code, bytes) for h in item.hashes) and len(item.hashes[0].code) == 32


def test_items_are_found_by_reference_and_by_exact_hash(store: Store, bank: str) -> None:
    store.create_bank("other-list", category="other", actor="alice")
    first = store.add_item(bank, {"pdq": PDQ, "md5": MD5}, actor="a", external_ref="R1")
    second = store.add_item("other-list", {"md5": MD5}, actor="a", external_ref="R1")
    assert store.find_item(bank, "R1").id == first.id
    assert store.find_item("other-list", "R1").id == second.id
    assert [i.id for i in store.find_items_by_hash("md5", MD5.upper())] == [first.id, second.id]
    assert [i.id for i in store.find_items_by_hash("pdq", bytes.fromhex(PDQ))] == [first.id]
    assert store.find_items_by_hash("pdq", PDQ_2) == []
    with pytest.raises(NotFoundError):
        store.find_item(bank, "R2")


@pytest.mark.parametrize(
    "hashes",
    [{"pdq": "xyz"}, {"pdq": PDQ[:-1]}, {"sha1": MD5}, [("pdq", 42)], {"md5": b"short"}],
)
def test_malformed_hashes_are_rejected_and_nothing_is_stored(store: Store, bank: str, hashes: object) -> None:
    with pytest.raises(InvalidHashError):
        store.add_item(bank, hashes, actor="a")  # type: ignore[arg-type]
    assert store.count_items(bank) == 0 and store.max_sequence() == 1  # only the bank's creation


@pytest.mark.parametrize(
    "fields",
    [
        {"hashes": {}},
        {"hashes": "pdq"},
        {"external_ref": "r" * 256},
        {"metadata": {"x": object()}},
        {"metadata": {"big": "x" * 20_000}},
        {"note": 5},
    ],
)
def test_item_fields_are_validated(store: Store, bank: str, fields: dict[str, object]) -> None:
    arguments: dict[str, object] = {"hashes": {"pdq": PDQ}, **fields}
    with pytest.raises(ValidationError):
        store.add_item(bank, actor="a", **arguments)  # type: ignore[arg-type]


def test_an_external_reference_is_unique_within_a_bank(store: Store, bank: str) -> None:
    store.add_item(bank, {"pdq": PDQ}, actor="a", external_ref="R1")
    with pytest.raises(ConflictError):
        store.add_item(bank, {"pdq": PDQ_2}, actor="a", external_ref="R1")
    with pytest.raises(ConflictError):
        store.add_items(
            bank, [NewItem({"pdq": PDQ_2}, external_ref="R9"), NewItem({"pdq": PDQ}, external_ref="R1")], actor="a"
        )
    with pytest.raises(ConflictError):
        store.add_items(bank, [NewItem({"pdq": PDQ_2}, external_ref="R9")] * 2, actor="a")
    assert store.count_items(bank) == 1


def test_a_bulk_add_is_all_or_nothing_and_returns_ids_in_order(store: Store, bank: str) -> None:
    good = [NewItem({"pdq": f"{i:064x}", "md5": f"{i:032x}"}, external_ref=f"R{i}") for i in range(300)]
    ids = store.add_items(bank, good, actor="importer")
    assert len(ids) == 300 and ids == sorted(ids)
    assert [store.get_item(i).external_ref for i in (ids[0], ids[-1])] == ["R0", "R299"]
    with pytest.raises(InvalidHashError):
        store.add_items(bank, [NewItem({"pdq": "ab" * 32}), NewItem({"pdq": "bad"})], actor="importer")
    assert store.count_items(bank) == 300
    assert store.add_items(bank, [], actor="importer") == []


def test_items_are_listed_page_by_page(store: Store, bank: str) -> None:
    ids = store.add_items(bank, [NewItem({"pdq": f"{i:064x}"}) for i in range(25)], actor="a")
    store.disable_item(ids[3], reason="dup", actor="a")
    seen, after = [], 0
    while page := store.list_items(bank, after_id=after, limit=10):
        seen.extend(i.id for i in page)
        after = page[-1].id
    assert seen == ids
    assert [i.id for i in store.list_items(bank, status="disabled")] == [ids[3]]
    assert store.count_items(bank, status="active") == 24
    with pytest.raises(ValidationError):
        store.list_items(bank, limit=0)


def test_disabling_and_enabling_an_item_records_reason_actor_and_time(store: Store, bank: str) -> None:
    item = store.add_item(bank, {"pdq": PDQ}, actor="alice")
    disabled = store.disable_item(item.id, reason="false positive", actor="bob")
    assert (disabled.status, disabled.status_reason, disabled.status_by) == ("disabled", "false positive", "bob")
    assert disabled.status_at is not None
    with pytest.raises(ValidationError):
        store.disable_item(item.id, reason=" ", actor="bob")
    enabled = store.enable_item(item.id, actor="carol", reason="reviewed")
    assert (enabled.status, enabled.status_reason, enabled.status_by) == ("active", "reviewed", "carol")


def test_item_notes_and_metadata_can_be_edited_and_items_deleted(store: Store, bank: str) -> None:
    item = store.add_item(bank, {"pdq": PDQ}, actor="alice", note="old", metadata={"a": 1})
    edited = store.update_item(item.id, note="new", metadata={"b": 2}, actor="bob")
    assert (edited.note, edited.metadata, edited.hashes) == ("new", {"b": 2}, item.hashes)
    store.delete_item(item.id, actor="bob")
    for call in (
        lambda: store.get_item(item.id),
        lambda: store.delete_item(item.id, actor="bob"),
        lambda: store.disable_item(item.id, reason="x", actor="bob"),
    ):
        with pytest.raises(NotFoundError):
            call()


def test_ids_are_never_reused_after_a_delete(store: Store, bank: str) -> None:
    first = store.add_item(bank, {"pdq": PDQ}, actor="a")
    store.delete_item(first.id, actor="a")
    second = store.add_item(bank, {"pdq": PDQ}, actor="a")
    assert second.id > first.id and second.hashes[0].id > first.hashes[0].id


# ---------------------------------------------------------------------------------------- keys and audit


def test_an_api_key_is_stored_only_as_a_hash_and_verifies(store: Store) -> None:
    key, token = store.create_api_key("uploader", ["match"], actor="root")
    assert token.startswith("hsk_") and len(token) > 40 and key.scopes == ("match",)
    with store.engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT key_hash FROM api_keys").scalar_one()
    assert token not in stored and len(stored) == 64
    verified = store.verify_api_key(token)
    assert verified is not None and verified.name == "uploader" and verified.allows("match")
    assert not verified.allows("curate")
    assert verified.last_used_at is not None
    for wrong in (token[:-1], token + "x", "", "hsk_" + "A" * 43, None):
        assert store.verify_api_key(wrong) is None  # type: ignore[arg-type]


def test_a_revoked_key_no_longer_verifies(store: Store) -> None:
    _, token = store.create_api_key("curator", ["curate", "match"], actor="root")
    revoked = store.revoke_api_key("curator", actor="root")
    assert revoked.revoked and revoked.revoked_at is not None
    assert store.verify_api_key(token) is None
    assert [k.name for k in store.list_api_keys()] == ["curator"]
    with pytest.raises(NotFoundError):
        store.revoke_api_key("nobody", actor="root")


def test_api_key_names_and_scopes_are_validated(store: Store) -> None:
    store.create_api_key("dup", ["admin"], actor="root")
    with pytest.raises(ConflictError):
        store.create_api_key("dup", ["admin"], actor="root")
    for scopes in ([], ["superuser"], "match"):
        with pytest.raises(ValidationError):
            store.create_api_key("k", scopes, actor="root")


def test_every_curation_change_is_audited_with_who_and_where(store: Store) -> None:
    who = Actor("curator-key", "203.0.113.9")
    store.create_bank("b", category="ncii", actor=who)
    item = store.add_item("b", {"pdq": PDQ}, actor=who, external_ref="r")
    store.add_items("b", [NewItem({"pdq": PDQ_2})], actor=who)
    store.disable_item(item.id, reason="appeal", actor=who)
    store.enable_item(item.id, actor=who)
    store.update_item(item.id, note="n", actor=who)
    store.delete_item(item.id, actor=who)
    store.update_bank("b", enabled=False, actor=who)
    store.delete_bank("b", actor=who)
    store.record_audit(who, "bank.export", bank="b", details={"rows": 0})
    entries = store.list_audit(limit=100)
    assert [e.action for e in reversed(entries)] == [
        "bank.create",
        "item.add",
        "items.import",
        "item.disable",
        "item.enable",
        "item.update",
        "item.delete",
        "bank.update",
        "bank.delete",
        "bank.export",
    ]
    assert {(e.actor, e.remote_addr, e.bank) for e in entries} == {("curator-key", "203.0.113.9", "b")}
    assert entries[6].details == {"reason": "appeal"} and entries[6].item_id == item.id
    assert [e.id for e in store.list_audit(limit=3, before_id=entries[0].id)] == [e.id for e in entries[1:4]]
    assert store.list_audit(actor="someone-else") == []


def test_a_failed_change_leaves_no_audit_row(store: Store, bank: str) -> None:
    before = store.list_audit()
    with pytest.raises(InvalidHashError):
        store.add_item(bank, {"pdq": "nope"}, actor="a")
    with pytest.raises(ConflictError):
        store.create_bank(bank, category="csam", actor="a")
    assert store.list_audit() == before


def test_the_actor_is_required(store: Store) -> None:
    with pytest.raises(ValidationError):
        store.create_bank("b", category="csam", actor="")


def test_a_store_url_must_name_a_supported_database(tmp_path: object) -> None:
    for url in ("mysql://x/y", "sqlite:///:memory:", "not a url"):
        with pytest.raises(ValidationError):
            Store(url)
