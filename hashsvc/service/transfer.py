"""Hash-list import and export: the file formats analysts exchange with partners, streamed in constant memory.

Formats (see docs/analysts.md for examples):

* `jsonl`: one item per line, `{"hashes": {"pdq": "<hex>", "md5": "<hex>"}, "reference": ..., "source": ...,
  "note": ..., "metadata": {...}}` (the bulk API's line format; export adds `"status"`).
* `csv`: a header row naming the columns; `hash` is required, `algorithm` too unless `--algorithm` is given;
  `reference`, `source`, `note`, `status` and `metadata` (a JSON object) are optional; any other column (say
  `category`) is kept in the item's metadata. Consecutive rows with the same non-empty reference form one item,
  which is how an item with several hashes is exported.
* `hex`: one hash per line, of the algorithm given with `--algorithm`.
* `threatexchange`: python-threatexchange's `local_file` exchange layout (also how HMA's file exchange reads
  signals): `<signal_type> <signal>` per line, e.g. `pdq f8f8...`; a bare hash when `--algorithm` is given.
  Only PDQ is a signal type both sides share, so an export writes only PDQ hashes.

Import validates every line, reports bad ones with their line number and reason, and adds the good ones in
batches, each with `Store.add_items` in one transaction. It is idempotent: an item whose reference already
exists in the bank, or (without a reference) whose every hash is already in the bank, is counted as present
and not added again. Rows marked disabled are not imported: re-importing an export must never re-activate a
false positive.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from hashsvc import json_input
from hashsvc.errors import InvalidHashError, ValidationError
from hashsvc.hashes import ALGORITHMS, get_algorithm, normalize_hex
from hashsvc.store import Actor, Item, NewItem, Store, validation
from hashsvc.store.schema import item_hashes, items
from hashsvc.vocabulary import LIST_FORMATS

FORMATS = LIST_FORMATS
BATCH = 10_000
MAX_REPORTED = 1000  # bad lines kept in a summary; the rest are counted (constant memory on huge bad files)
_IN_CHUNK = 500  # SQLite caps bound parameters per statement
CSV_COLUMNS = ("algorithm", "hash", "reference", "source", "note", "metadata")
JSONL_FIELDS = {"hashes", "reference", "source", "note", "metadata", "status", "id", "bank"}
# python-threatexchange signal type names -> ours. Only PDQ is an image hash both compute the same way
# (their `video_md5` hashes video files).
TE_SIGNAL_TYPES = {"pdq": "pdq"}
_MAX_LENGTHS = {"reference": validation.MAX_REF, "source": validation.MAX_REF, "note": validation.MAX_TEXT}


@dataclass(frozen=True)
class Record:
    """One item read from a file: normalized hashes and metadata, with the line it started on."""

    line: int
    hashes: tuple[tuple[str, str], ...]
    reference: str | None = None
    source: str | None = None
    note: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    disabled: bool = False


@dataclass(frozen=True)
class BadLine:
    line: int
    code: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "code": self.code, "message": self.message}


@dataclass
class ImportSummary:
    added: int = 0
    present: int = 0
    skipped_disabled: int = 0
    bad: int = 0
    bad_lines: list[dict[str, Any]] = field(default_factory=list)
    dry_run: bool = False

    def reject(self, bad: BadLine) -> None:
        self.bad += 1
        if len(self.bad_lines) < MAX_REPORTED:
            self.bad_lines.append(bad.to_dict())

    def merge(self, other: dict[str, Any], line_map: Sequence[int] | None = None) -> None:
        """Add a (remote) batch's summary; `line_map[i]` is the file line of the batch's line i + 1."""
        self.added += other["added"]
        self.present += other["present"]
        self.skipped_disabled += other.get("skipped_disabled", 0)
        for bad in other["bad_lines"]:
            line = line_map[bad["line"] - 1] if line_map else bad["line"]
            self.reject(BadLine(line, bad["code"], bad["message"]))
        self.bad += other["bad"] - len(other["bad_lines"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "present": self.present,
            "skipped_disabled": self.skipped_disabled,
            "bad": self.bad,
            "bad_lines": self.bad_lines,
            "dry_run": self.dry_run,
        }


def check_format(fmt: str, algorithm: str | None) -> str | None:
    """Validate a format/algorithm pair; return the normalized algorithm. Raises ValidationError."""
    if fmt not in FORMATS:
        raise ValidationError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    if algorithm is not None:
        try:
            algorithm = get_algorithm(algorithm).name
        except InvalidHashError as exc:
            raise ValidationError(exc.message) from None
    if fmt == "hex" and algorithm is None:
        raise ValidationError("the hex format needs --algorithm (the file does not say which hash it holds)")
    return algorithm


# ------------------------------------------------------------------------------------------------- reading


def read_records(lines: Iterable[str], fmt: str, algorithm: str | None = None) -> Iterator[Record | BadLine]:
    """Parse a file's lines (with or without line endings) into records and bad lines, lazily."""
    algorithm = check_format(fmt, algorithm)
    if fmt == "csv":
        yield from _group_by_reference(_read_csv(lines, algorithm))
        return
    parse = {"jsonl": _jsonl_line, "hex": _hex_line, "threatexchange": _te_line}[fmt]
    for number, raw in enumerate(lines, start=1):
        text = raw.strip()
        if not text or (fmt != "jsonl" and text.startswith("#")):
            continue
        try:
            yield parse(number, text, algorithm)
        except (ValidationError, InvalidHashError) as exc:
            yield BadLine(number, exc.code, exc.message)


def _hash(algorithm: Any, value: Any) -> tuple[str, str]:
    name = get_algorithm(algorithm).name
    return name, normalize_hex(name, value)


def _hex_line(number: int, text: str, algorithm: str | None) -> Record:
    assert algorithm is not None
    return Record(number, (_hash(algorithm, text),))


def _te_line(number: int, text: str, algorithm: str | None) -> Record:
    signal_type, _, signal = text.partition(" ")
    if not signal.strip():
        if algorithm is None:
            raise ValidationError("expected '<signal_type> <hash>' (or pass --algorithm for bare hashes)")
        return Record(number, (_hash(algorithm, signal_type),))
    name = TE_SIGNAL_TYPES.get(signal_type.lower()) or (
        signal_type.lower() if signal_type.lower() in ALGORITHMS else None
    )
    if name is None:
        raise ValidationError(f"signal type {signal_type!r:.40} is not an image hash hashsvc stores")
    return Record(number, (_hash(name, signal.strip()),))


def _text(value: Any, name: str) -> str | None:
    """A text field checked as the store will check it, so that a dry run finds the lines a real run rejects."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValidationError(f"'{name}' must be a string")
    return validation.text(name, value, max_length=_MAX_LENGTHS[name])


def _status(value: Any) -> bool:
    if value in (None, "", "active"):
        return False
    if value == "disabled":
        return True
    raise ValidationError(f"'status' must be 'active' or 'disabled', got {value!r:.40}")


def _jsonl_line(number: int, text: str, algorithm: str | None) -> Record:
    body = json_input.loads(text, code="invalid_json", what="the line")
    if not isinstance(body, dict):
        raise ValidationError("each line must be a JSON object")
    unknown = sorted(set(body) - JSONL_FIELDS)
    if unknown:
        raise ValidationError(f"unknown field(s): {', '.join(unknown)}")
    hashes = body.get("hashes")
    if not isinstance(hashes, dict) or not hashes:
        raise ValidationError('\'hashes\' must be a non-empty object such as {"pdq": "<64 hex>"}')
    pairs = []
    for name, values in hashes.items():
        for value in values if isinstance(values, list) else [values]:
            pairs.append(_hash(name, value))
    metadata = body.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise ValidationError("'metadata' must be a JSON object")
    return Record(
        number,
        tuple(dict.fromkeys(pairs)),
        _text(body.get("reference"), "reference"),
        _text(body.get("source"), "source"),
        _text(body.get("note"), "note"),
        validation.metadata(metadata) if metadata else metadata,
        _status(body.get("status")),
    )


def _read_csv(lines: Iterable[str], algorithm: str | None) -> Iterator[Record | BadLine]:
    reader = csv.reader(line.rstrip("\r\n") for line in lines)
    layout: _CsvLayout | None = None
    for row in reader:
        number = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if layout is None:
            layout = _CsvLayout([cell.strip().lower() for cell in row], algorithm)
            continue
        if len(row) != layout.width:
            yield BadLine(number, "invalid_row", f"expected {layout.width} columns, got {len(row)}")
            continue
        try:
            yield layout.record(number, row)
        except (ValidationError, InvalidHashError) as exc:
            yield BadLine(number, exc.code, exc.message)


class _CsvLayout:
    """Where each known column sits, worked out once from the header (rows are then read by position: this is
    the hot loop of a million-line import)."""

    def __init__(self, header: list[str], algorithm: str | None) -> None:
        if "hash" not in header or ("algorithm" not in header and algorithm is None):
            raise ValidationError(
                "the CSV header must name a 'hash' column and an 'algorithm' column (or pass --algorithm); "
                f"got {','.join(header)[:200]!r}"
            )
        self.width = len(header)
        self.algorithm = algorithm
        position = {name: n for n, name in enumerate(header)}
        self.hash = position["hash"]
        self.columns = {name: position.get(name) for name in ("algorithm", *CSV_COLUMNS[2:], "status")}
        # partner columns such as category travel along as metadata
        self.extra = [(n, name) for n, name in enumerate(header) if name not in CSV_COLUMNS and name != "status"]

    def _cell(self, row: list[str], name: str) -> str | None:
        n = self.columns[name]
        return (row[n].strip() or None) if n is not None else None

    def record(self, number: int, row: list[str]) -> Record:
        metadata: dict[str, Any] = {}
        raw = self._cell(row, "metadata")
        if raw:
            metadata = json_input.loads(raw, what="the 'metadata' column")
            if not isinstance(metadata, dict):
                raise ValidationError("the 'metadata' column must hold a JSON object")
        for n, name in self.extra:
            value = row[n].strip()
            if value:
                metadata[name] = value
        return Record(
            number,
            (_hash(self._cell(row, "algorithm") or self.algorithm, row[self.hash].strip()),),
            _text(self._cell(row, "reference"), "reference"),
            _text(self._cell(row, "source"), "source"),
            _text(self._cell(row, "note"), "note"),
            validation.metadata(metadata) if metadata else metadata,
            _status(self._cell(row, "status")),
        )


def _group_by_reference(rows: Iterator[Record | BadLine]) -> Iterator[Record | BadLine]:
    """Merge consecutive CSV rows sharing a non-empty reference into one item (one row per hash)."""
    pending: Record | None = None
    for row in rows:
        if isinstance(row, Record) and pending is not None and row.reference and row.reference == pending.reference:
            pending = Record(
                pending.line,
                tuple(dict.fromkeys(pending.hashes + row.hashes)),
                pending.reference,
                pending.source,
                pending.note,
                pending.metadata,
                pending.disabled or row.disabled,
            )
            continue
        if pending is not None:
            yield pending
            pending = None
        if isinstance(row, Record):
            pending = row
        else:
            yield row
    if pending is not None:
        yield pending


# ----------------------------------------------------------------------------------------------- importing


def batches(records: Iterable[Record | BadLine], size: int = BATCH) -> Iterator[tuple[list[Record], list[BadLine]]]:
    """Group a record stream into batches of up to `size` good records (with the bad lines met on the way)."""
    good: list[Record] = []
    bad: list[BadLine] = []
    for record in records:
        if isinstance(record, BadLine):
            bad.append(record)
            continue
        good.append(record)
        if len(good) >= size:
            yield good, bad
            good, bad = [], []
    if good or bad:
        yield good, bad


def import_records(
    store: Store,
    bank: str,
    records: Iterable[Record | BadLine],
    actor: Actor | str,
    *,
    dry_run: bool = False,
    batch_size: int = BATCH,
    progress: Callable[[int], None] | None = None,
) -> ImportSummary:
    """Add the good records to `bank` batch by batch (one transaction each), skipping those already present.

    Raises NotFoundError for an unknown bank (before reading anything). `progress(n)` is called with the
    number of records handled after each batch.
    """
    bank_id = store.get_bank(bank).id
    summary = ImportSummary(dry_run=dry_run)
    for good, bad in batches(records, batch_size):
        for line in bad:
            summary.reject(line)
        fresh, present, disabled = _new_records(store, bank_id, good)
        summary.present += present
        summary.skipped_disabled += disabled
        if fresh and not dry_run:
            try:
                store.add_items(bank, [_new_item(r) for r in fresh], actor=actor)
            except (ValidationError, InvalidHashError) as exc:
                # Lines were validated above, so this is a store limit (say an over-long note): find the
                # culprits one by one rather than losing the whole batch.
                fresh = _add_one_by_one(store, bank, fresh, actor, summary, exc)
        summary.added += len(fresh)
        if progress is not None:
            progress(len(good) + len(bad))
    return summary


def _new_item(record: Record) -> NewItem:
    return NewItem(
        list(record.hashes),
        external_ref=record.reference,
        source=record.source,
        note=record.note,
        metadata=record.metadata or None,
    )


def _add_one_by_one(
    store: Store, bank: str, fresh: list[Record], actor: Actor | str, summary: ImportSummary, first: Exception
) -> list[Record]:
    added = []
    for record in fresh:
        try:
            store.add_items(bank, [_new_item(record)], actor=actor)
            added.append(record)
        except (ValidationError, InvalidHashError) as exc:
            summary.reject(BadLine(record.line, exc.code, exc.message))
    return added


def _new_records(store: Store, bank_id: int, batch: list[Record]) -> tuple[list[Record], int, int]:
    """The records of a batch not yet in the bank (nor earlier in the batch); and how many were present/disabled."""
    disabled = sum(r.disabled for r in batch)
    batch = [r for r in batch if not r.disabled]
    refs = existing_refs(store, bank_id, [r.reference for r in batch if r.reference])
    unreferenced = [r for r in batch if not r.reference]
    known = existing_hashes(store, bank_id, [h for r in unreferenced for h in r.hashes]) if unreferenced else set()
    fresh: list[Record] = []
    for record in batch:
        key: Any = record.reference or frozenset(record.hashes)
        if record.reference:
            if key in refs:
                continue
            refs.add(key)
        else:
            if all(h in known for h in record.hashes):
                continue
            known.update(record.hashes)
        fresh.append(record)
    return fresh, len(batch) - len(fresh), disabled


# These two read-only lookups belong in Store (`Store.existing_refs` / `Store.existing_hashes`); they live here
# until the store grows them, and use only its indexed columns: (bank_id, external_ref) and (algorithm, code).


def existing_refs(store: Store, bank_id: int, refs: Sequence[str]) -> set[str]:
    found: set[str] = set()
    unique = sorted(set(refs))
    with store.engine.connect() as conn:
        for start in range(0, len(unique), _IN_CHUNK):
            query = sa.select(items.c.external_ref).where(
                items.c.bank_id == bank_id, items.c.external_ref.in_(unique[start : start + _IN_CHUNK])
            )
            found.update(conn.execute(query).scalars())
    return found


def existing_hashes(store: Store, bank_id: int, pairs: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    by_algorithm: dict[str, set[bytes]] = {}
    for algorithm, value in pairs:
        by_algorithm.setdefault(algorithm, set()).add(bytes.fromhex(value))
    with store.engine.connect() as conn:
        for algorithm, codes in by_algorithm.items():
            ordered = sorted(codes)
            for start in range(0, len(ordered), _IN_CHUNK):
                query = (
                    sa.select(item_hashes.c.code)
                    .select_from(item_hashes.join(items, items.c.id == item_hashes.c.item_id))
                    .where(
                        item_hashes.c.algorithm == algorithm,
                        item_hashes.c.code.in_(ordered[start : start + _IN_CHUNK]),
                        items.c.bank_id == bank_id,
                    )
                )
                found.update((algorithm, bytes(code).hex()) for code in conn.execute(query).scalars())
    return found


# ----------------------------------------------------------------------------------------------- exporting


def item_record(item: Item) -> dict[str, Any]:
    """An item in the API's shape (the fields export needs), so local and remote exports share the writers."""
    return {
        "id": item.id,
        "reference": item.external_ref,
        "source": item.source,
        "note": item.note,
        "status": item.status,
        "metadata": item.metadata,
        "hashes": [{"algorithm": h.algorithm, "value": h.hex, "view": h.view} for h in item.hashes],
    }


def iter_bank_items(store: Store, bank: str, *, include_disabled: bool = False, page: int = 1000) -> Iterator[Item]:
    """Every item of a bank in id order, a page at a time (constant memory)."""
    after = 0
    while True:
        chunk = store.list_items(bank, after_id=after, limit=page, status=None if include_disabled else "active")
        yield from chunk
        if len(chunk) < page:
            return
        after = chunk[-1].id


def check_export(fmt: str, algorithm: str | None, include_status: bool) -> str | None:
    """Validate export options; return the algorithm to export (None: all). Raises ValidationError."""
    algorithm = check_format(fmt, algorithm)
    if include_status and fmt in ("hex", "threatexchange"):
        # these formats cannot mark an item disabled: a false positive would travel on as a live hash
        raise ValidationError(f"the {fmt} format cannot mark disabled items; use csv or jsonl with --include-disabled")
    if fmt == "threatexchange":
        if algorithm not in (None, "pdq"):
            raise ValidationError("the threatexchange format carries only PDQ hashes")
        algorithm = "pdq"
    return algorithm


def write_records(
    records: Iterable[dict[str, Any]],
    fmt: str,
    algorithm: str | None = None,
    *,
    include_status: bool = False,
    include_views: bool = False,
) -> Iterator[str]:
    """Lines (with newlines) of an export in `fmt`; `records` are items in the API's shape.

    `algorithm` restricts the export to one hash algorithm (required for hex; threatexchange means pdq). The
    hashes of edited views (crops, trimmed picture) stay out unless `include_views`: they are how this service
    matches edits, not signals of the item a partner should match on.
    """
    algorithm = check_export(fmt, algorithm, include_status)

    def wanted(record: dict[str, Any]) -> list[dict[str, str]]:
        return [
            h
            for h in record["hashes"]
            if (algorithm is None or h["algorithm"] == algorithm) and (include_views or not h.get("view", False))
        ]

    if fmt == "jsonl":
        for record in records:
            hashes: dict[str, Any] = {}
            for h in wanted(record):
                hashes.setdefault(h["algorithm"], []).append(h["value"])
            if not hashes:
                continue
            line: dict[str, Any] = {"hashes": {k: v[0] if len(v) == 1 else v for k, v in hashes.items()}}
            for name in ("reference", "source", "note"):
                if record.get(name):
                    line[name] = record[name]
            if record.get("metadata"):
                line["metadata"] = record["metadata"]
            line["status"] = record["status"]
            yield json.dumps(line) + "\n"
    elif fmt == "csv":
        yield from _write_csv(records, wanted, include_status)
    else:
        for record in records:
            for h in wanted(record):
                yield (h["value"] if fmt == "hex" else f"pdq {h['value']}") + "\n"


class _LineBuffer:
    """A file-like sink for csv.writer that hands back each row's text."""

    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> int:
        self.text += text
        return len(text)

    def take(self) -> str:
        text, self.text = self.text, ""
        return text


def _write_csv(
    records: Iterable[dict[str, Any]], wanted: Callable[[dict[str, Any]], list[dict[str, str]]], include_status: bool
) -> Iterator[str]:
    buffer = _LineBuffer()
    writer = csv.writer(buffer, lineterminator="\n")
    columns = [*CSV_COLUMNS, "status"] if include_status else list(CSV_COLUMNS)
    writer.writerow(columns)
    yield buffer.take()
    for record in records:
        metadata = json.dumps(record["metadata"]) if record.get("metadata") else ""
        for h in wanted(record):
            row = [h["algorithm"], h["value"], record.get("reference") or "", record.get("source") or ""]
            row += [record.get("note") or "", metadata]
            if include_status:
                row.append(record["status"])
            writer.writerow(row)
            yield buffer.take()


def records_to_jsonl(records: Iterable[Record]) -> Iterator[str]:
    """Records as the import endpoint's JSON lines (what the client sends in remote mode)."""
    for record in records:
        hashes: dict[str, Any] = {}
        for algorithm, value in record.hashes:
            hashes.setdefault(algorithm, []).append(value)
        line: dict[str, Any] = {"hashes": {k: v[0] if len(v) == 1 else v for k, v in hashes.items()}}
        for name in ("reference", "source", "note"):
            if getattr(record, name):
                line[name] = getattr(record, name)
        if record.metadata:
            line["metadata"] = record.metadata
        if record.disabled:
            line["status"] = "disabled"
        yield json.dumps(line) + "\n"
