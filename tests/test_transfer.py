"""service.transfer: every format's reader and writer, bad lines, idempotent batched import, round trips.

Import runs against both store back ends (its duplicate checks are SQL of their own)."""

from __future__ import annotations

import json
import secrets

import pytest

from hashsvc.errors import NotFoundError, ValidationError
from hashsvc.service import transfer
from hashsvc.service.transfer import BadLine, Record
from hashsvc.store import Store

PDQ = ["%064x" % (n * 0x9E3779B97F4A7C15 + 1) for n in range(1, 8)]
MD5 = "d35c785545392755e7e4164457657269"


def parse(text: str, fmt: str, algorithm: str | None = None) -> list[Record | BadLine]:
    return list(transfer.read_records(text.splitlines(keepends=True), fmt, algorithm))


def good(rows: list[Record | BadLine]) -> list[Record]:
    return [r for r in rows if isinstance(r, Record)]


def bad(rows: list[Record | BadLine]) -> list[tuple[int, str]]:
    return [(r.line, r.code) for r in rows if isinstance(r, BadLine)]


def test_csv_reports_bad_lines_with_numbers_and_keeps_partner_columns() -> None:
    text = (
        "algorithm,hash,reference,note,category\n"
        f"pdq,{PDQ[0].upper()},R1,first,A1\n"
        "pdq,xyz,R2,,A1\n"
        "\n"
        f"sha1,{MD5},R3,,\n"
        f"pdq,{PDQ[1]},R4\n"
        f"md5, {MD5} ,R5,,B2\n"
    )
    rows = parse(text, "csv")
    assert bad(rows) == [(3, "invalid_hash"), (5, "invalid_hash"), (6, "invalid_row")]
    first, last = good(rows)
    assert first == Record(2, (("pdq", PDQ[0]),), "R1", None, "first", {"category": "A1"})
    assert (last.line, last.hashes, last.metadata) == (7, (("md5", MD5),), {"category": "B2"})


def test_csv_rows_sharing_a_reference_form_one_item() -> None:
    text = f"algorithm,hash,reference\npdq,{PDQ[0]},R1\nmd5,{MD5},R1\npdq,{PDQ[1]},R2\npdq,{PDQ[2]},\npdq,{PDQ[3]},\n"
    items = good(parse(text, "csv"))
    assert [(r.reference, len(r.hashes)) for r in items] == [("R1", 2), ("R2", 1), (None, 1), (None, 1)]


def test_csv_header_must_name_the_hash_and_algorithm() -> None:
    with pytest.raises(ValidationError, match="hash"):
        parse(f"reference\n{PDQ[0]}\n", "csv")
    assert len(good(parse(f"hash\n{PDQ[0]}\n", "csv", "pdq"))) == 1


def test_hex_needs_an_algorithm_and_skips_comments() -> None:
    with pytest.raises(ValidationError, match="--algorithm"):
        parse(PDQ[0], "hex")
    rows = parse(f"# GIFCT export\n{PDQ[0]}\n{PDQ[1][:10]}\n\n{PDQ[2]}\n", "hex", "pdq")
    assert bad(rows) == [(3, "invalid_hash")]
    assert [r.line for r in good(rows)] == [2, 5]


def test_threatexchange_lines_name_their_signal_type() -> None:
    rows = parse(f"pdq {PDQ[0]}\nvideo_md5 {MD5}\nraw_text hello world\n{PDQ[1]}\n", "threatexchange")
    assert bad(rows) == [(2, "invalid_request"), (3, "invalid_request"), (4, "invalid_request")]
    assert good(rows)[0].hashes == (("pdq", PDQ[0]),)
    assert len(good(parse(f"{PDQ[1]}\n", "threatexchange", "pdq"))) == 1


def test_jsonl_validates_fields_and_json() -> None:
    lines = [
        json.dumps({"hashes": {"pdq": PDQ[0], "md5": MD5}, "reference": "R1", "metadata": {"k": 1}}),
        "{not json",
        json.dumps({"hashes": {}}),
        json.dumps({"hashes": {"pdq": PDQ[1]}, "colour": "red"}),
        json.dumps([1, 2]),
        json.dumps({"hashes": {"pdq": [PDQ[2], PDQ[3]]}, "status": "disabled"}),
    ]
    rows = parse("\n".join(lines), "jsonl")
    assert bad(rows) == [(2, "invalid_json"), (3, "invalid_request"), (4, "invalid_request"), (5, "invalid_request")]
    first, last = good(rows)
    assert first.hashes == (("pdq", PDQ[0]), ("md5", MD5)) and first.metadata == {"k": 1}
    assert last.disabled and len(last.hashes) == 2


def test_unknown_format_or_algorithm() -> None:
    with pytest.raises(ValidationError, match="unknown format"):
        transfer.check_format("xml", None)
    with pytest.raises(ValidationError, match="unknown hash algorithm"):
        transfer.check_format("hex", "sha1")


@pytest.fixture
def bank_store(store: Store) -> Store:
    store.create_bank("partner", category="csam", actor="test")
    store.create_bank("other", category="csam", actor="test")
    return store


def run_import(store: Store, text: str, fmt: str = "csv", bank: str = "partner", **options: object):
    return transfer.import_records(store, bank, transfer.read_records(text.splitlines(), fmt), "test", **options)


CSV = (
    "algorithm,hash,reference\n"
    + "".join(f"pdq,{h},R{n}\n" for n, h in enumerate(PDQ))
    + f"md5,{MD5},\n"
    + "pdq,nothex,R99\n"
)


def test_import_adds_good_lines_reports_bad_ones_and_is_idempotent(bank_store: Store) -> None:
    first = run_import(bank_store, CSV, batch_size=3)  # several batches, one transaction each
    assert (first.added, first.present, first.bad) == (8, 0, 1)
    assert first.bad_lines == [{"line": 10, "code": "invalid_hash", "message": first.bad_lines[0]["message"]}]
    again = run_import(bank_store, CSV, batch_size=3)
    assert (again.added, again.present, again.bad) == (0, 8, 1)
    assert bank_store.count_items("partner") == 8
    # another bank is another list: the same file imports in full
    assert run_import(bank_store, CSV, bank="other").added == 8


def test_duplicates_inside_one_file_are_added_once(bank_store: Store) -> None:
    text = f"{PDQ[0]}\n{PDQ[0]}\n{PDQ[1]}\n"
    summary = transfer.import_records(
        bank_store, "partner", transfer.read_records(text.splitlines(), "hex", "pdq"), "t"
    )
    assert (summary.added, summary.present) == (2, 1)


def test_dry_run_counts_but_changes_nothing(bank_store: Store) -> None:
    summary = run_import(bank_store, CSV, dry_run=True)
    assert (summary.added, summary.bad, summary.dry_run) == (8, 1, True)
    assert bank_store.count_items("partner") == 0


def test_disabled_rows_are_never_imported(bank_store: Store) -> None:
    text = json.dumps({"hashes": {"pdq": PDQ[0]}, "reference": "FP", "status": "disabled"})
    summary = run_import(bank_store, text, "jsonl")
    assert (summary.added, summary.skipped_disabled) == (0, 1)


def test_unknown_bank_fails_before_reading(bank_store: Store) -> None:
    def never() -> list[str]:
        raise AssertionError("read the file")

    with pytest.raises(NotFoundError):
        transfer.import_records(bank_store, "nope", iter(never, None), "test")


def test_store_limits_fail_only_their_own_lines(bank_store: Store) -> None:
    long_note = "x" * 20_000  # the store caps notes at 10,000 characters
    text = f"algorithm,hash,reference,note\npdq,{PDQ[0]},R1,ok\npdq,{PDQ[1]},R2,{long_note}\n"
    summary = run_import(bank_store, text)
    assert summary.added == 1 and [b["line"] for b in summary.bad_lines] == [3]


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "hex", "threatexchange"])
def test_export_then_import_into_a_new_bank_round_trips(bank_store: Store, fmt: str) -> None:
    bank_store.add_item("partner", {"pdq": PDQ[5], "md5": MD5}, actor="t", external_ref="multi", note='a, "quoted"')
    bank_store.add_item("partner", {"pdq": PDQ[6], "md5": "0" * 32}, actor="t")  # no reference, two hashes
    run_import(bank_store, CSV)
    disabled = bank_store.find_item("partner", "R0")
    bank_store.disable_item(disabled.id, reason="false positive", actor="t")
    algorithm = "pdq" if fmt in ("hex", "threatexchange") else None

    def rows(bank: str) -> set[tuple[str, str, str | None]]:
        return {
            (h.algorithm, h.hex, item.external_ref)
            for item in transfer.iter_bank_items(bank_store, bank, page=2)
            for h in item.hashes
            if algorithm is None or h.algorithm == algorithm
        }

    records = (transfer.item_record(i) for i in transfer.iter_bank_items(bank_store, "partner", page=2))
    exported = "".join(transfer.write_records(records, fmt, algorithm))
    bank_store.create_bank("copy", category="csam", actor="t")
    summary = transfer.import_records(
        bank_store, "copy", transfer.read_records(exported.splitlines(), fmt, algorithm), "t"
    )
    assert summary.bad == 0
    expected = rows("partner")
    if fmt in ("hex", "threatexchange"):  # these formats carry no references
        expected = {(a, h, None) for a, h, _ in expected}
    assert rows("copy") == expected
    assert not any(ref == "R0" for _, _, ref in rows("copy"))  # disabled items stay out by default


def test_export_with_disabled_items_marks_them(bank_store: Store) -> None:
    item = bank_store.add_item("partner", {"pdq": PDQ[0]}, actor="t", external_ref="FP")
    bank_store.disable_item(item.id, reason="fp", actor="t")
    records = [transfer.item_record(i) for i in transfer.iter_bank_items(bank_store, "partner", include_disabled=True)]
    lines = list(transfer.write_records(records, "csv", include_status=True))
    assert lines[0].strip().endswith(",status") and lines[1].strip().endswith(",disabled")
    # re-importing that export keeps the false positive out
    assert run_import(bank_store, "".join(lines), bank="other").skipped_disabled == 1


def test_threatexchange_export_is_pdq_only() -> None:
    record = {"hashes": [{"algorithm": "pdq", "value": PDQ[0]}, {"algorithm": "md5", "value": MD5}], "status": "active"}
    assert list(transfer.write_records([record], "threatexchange")) == [f"pdq {PDQ[0]}\n"]
    with pytest.raises(ValidationError):
        list(transfer.write_records([record], "threatexchange", "md5"))
    with pytest.raises(ValidationError, match="cannot mark disabled"):
        list(transfer.write_records([record], "threatexchange", include_status=True))


def test_large_file_streams_in_batches(bank_store: Store) -> None:
    seen = []
    text = "".join(f"{secrets.token_hex(32)}\n" for _ in range(2500))
    summary = transfer.import_records(
        bank_store,
        "partner",
        transfer.read_records(text.splitlines(), "hex", "pdq"),
        "t",
        batch_size=1000,
        progress=seen.append,
    )
    assert summary.added == 2500 and seen == [1000, 1000, 500]
