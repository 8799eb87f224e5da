"""Reading the audit log: who changed what, when, and who exported or probed. Filters arrive as text (query
strings, command-line options) and are checked here once for the API, the CLI and the console."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from hashsvc.errors import ValidationError
from hashsvc.store import AuditEntry, Store

CSV_COLUMNS = ("id", "at", "actor", "action", "bank", "item_id", "remote_addr", "details")
FILTERS = ("actor", "action", "bank", "item_id", "since", "until", "before", "limit")
DEFAULT_PAGE = 100
MAX_PAGE = 1000  # the store's cap on one page


def audit_page(store: Store, params: Mapping[str, Any]) -> dict[str, Any]:
    """One page of the audit log, newest first, with `next_before` to ask for the next (None at the end)."""
    query = parse_filters(params)
    limit = query.pop("limit")
    entries = store.list_audit(limit=limit, **query)
    return {
        "entries": [entry_dict(entry) for entry in entries],
        "next_before": entries[-1].id if len(entries) == limit else None,
    }


def iter_audit(store: Store, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every entry matching the filters, newest first, a page at a time (constant memory, for exports)."""
    params = {**params, "limit": MAX_PAGE}
    while True:
        page = audit_page(store, params)
        yield from page["entries"]
        if page["next_before"] is None:
            return
        params["before"] = page["next_before"]


def csv_lines(entries: Iterable[dict[str, Any]]) -> Iterator[str]:
    """Audit entries as CSV text, a line at a time (the CLI's --export csv and the console's download)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for entry in entries:
        writer.writerow([_cell(entry[column]) for column in CSV_COLUMNS])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = json.dumps(value, sort_keys=True) if isinstance(value, dict) else str(value)
    # A cell that a spreadsheet would run as a formula is prefixed with a quote (CSV injection): actors and
    # details can carry text an outsider chose (a key name, a reference).
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def parse_filters(params: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(params) - set(FILTERS))
    if unknown:
        raise ValidationError(f"unknown audit filter {unknown[0]!r}; use {', '.join(FILTERS)}")
    given = {name: value for name, value in params.items() if value not in (None, "")}
    query: dict[str, Any] = {
        "actor": given.get("actor"),
        "action": given.get("action"),
        "bank": given.get("bank"),
        "item_id": _integer(given, "item_id", 1),
        "before_id": _integer(given, "before", 1),
        "since": _time(given, "since"),
        "until": _time(given, "until"),
        "limit": _integer(given, "limit", 1, MAX_PAGE) or DEFAULT_PAGE,
    }
    for name in ("actor", "action", "bank"):
        if query[name] is not None and not isinstance(query[name], str):
            raise ValidationError(f"{name} must be text")
    return query


def entry_dict(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "at": entry.at.isoformat(),
        "actor": entry.actor,
        "action": entry.action,
        "bank": entry.bank,
        "item_id": entry.item_id,
        "remote_addr": entry.remote_addr,
        "details": entry.details,
    }


def _integer(given: Mapping[str, Any], name: str, low: int, high: int = 2**63 - 1) -> int | None:
    value = given.get(name)
    if value is None:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValidationError(f"{name} must be a whole number") from None
    if isinstance(value, bool) or not low <= number <= high:
        raise ValidationError(f"{name} must be from {low} to {high}")
    return number


def _time(given: Mapping[str, Any], name: str) -> dt.datetime | None:
    """ISO 8601; a date alone means its midnight, and a time without an offset is taken as UTC."""
    value = given.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 40:
        raise ValidationError(f"{name} must be an ISO 8601 date or time, e.g. 2026-11-29 or 2026-11-29T08:00:00Z")
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(
            f"{name} must be an ISO 8601 date or time, e.g. 2026-11-29 or 2026-11-29T08:00:00Z"
        ) from None
    return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed
