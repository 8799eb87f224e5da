"""Scope `curate`: analyst tooling over the service modules (`service.search`, `service.transfer`).

`GET /v1/search` answers "which items hold this hash, or one near it?" from this process's live index.
`POST /v1/banks/<name>/items:import` is the idempotent, validating import (JSON lines, `dry_run=true` to only
count), so that remote `hashsvc import` behaves exactly like the local one.
"""

from __future__ import annotations

import io
from typing import Any

from flask import Blueprint, g, request

from hashsvc.api.auth import require
from hashsvc.api.context import service
from hashsvc.errors import ValidationError
from hashsvc.service import search, transfer

bp = Blueprint("search", __name__, url_prefix="/v1")


def _int_arg(name: str) -> int | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    if not raw.isdigit() or len(raw) > 6:
        raise ValidationError(f"query parameter '{name}' must be a non-negative integer")
    return int(raw)


@bp.get("/search")
@require("curate")
def search_hash() -> dict[str, Any]:
    svc = service()
    svc.require_current()
    limit = _int_arg("limit")
    return search.search_hash(
        svc.store,
        svc.live.search,
        request.args.get("algorithm", "pdq"),
        request.args.get("hash"),
        _int_arg("max_distance"),
        limit=search.DEFAULT_LIMIT if limit is None else limit,
    )


@bp.post("/banks/<name>/items:import")
@require("curate")
def import_items(name: str) -> dict[str, Any]:
    dry_run = request.args.get("dry_run", "false")
    if dry_run not in ("true", "false"):
        raise ValidationError("query parameter 'dry_run' must be 'true' or 'false'")
    lines = io.TextIOWrapper(request.stream, encoding="utf-8", errors="replace")
    records = transfer.read_records(lines, "jsonl")
    summary = transfer.import_records(service().store, name, records, g.actor, dry_run=dry_run == "true")
    return summary.to_dict()
