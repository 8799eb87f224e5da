"""Scope `match`: what upload pipelines call. Never returns stored hashes, only the query's own."""

from __future__ import annotations

from typing import Any

import orjson
from flask import Blueprint, Response, current_app

from hashsvc.api import metrics, request_log
from hashsvc.api.aftermatch import match_context
from hashsvc.api.auth import require
from hashsvc.api.body import json_body
from hashsvc.api.context import service
from hashsvc.api.limits import caller, charge, key_slot
from hashsvc.api.uploads import image_bytes
from hashsvc.service.service import MAX_BATCH

bp = Blueprint("match", __name__, url_prefix="/v1")


@bp.post("/match")
@require("match")
def match_image() -> dict[str, Any]:
    data = image_bytes()
    context = match_context()  # content_id, metadata: checked before any work
    charge(1)
    with key_slot():
        result = service().match_image(data, caller(), context)
    metrics.record_match(result)
    request_log.note_decisions([result["decision"]])
    return result


@bp.post("/match/hashes")
@require("match")
def match_hashes() -> Response:
    body = json_body()
    charge(_queries_in(body))
    with key_slot():
        result = service().match_hashes(body, caller())
    metrics.record_matches(result.get("results", [result]))
    request_log.note_decisions(single["decision"] for single in result.get("results", [result]))
    return _json_response(result)


# Types orjson would write its own way go to Flask's encoder instead, so the text means what Flask's would.
_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def _json_response(result: dict[str, Any]) -> Response:
    """The answer as JSON written by orjson: the same document Flask's encoder writes (UTF-8 rather than
    ASCII escapes), in ~0.2 ms instead of ~3 ms for a batch of 1,000 answers."""
    text = orjson.dumps(result, default=current_app.json.default, option=_ORJSON_OPTIONS)  # type: ignore[attr-defined]
    return current_app.response_class(text + b"\n", mimetype="application/json")


@bp.post("/hash")
@require("match")
def hash_only() -> dict[str, Any]:
    data = image_bytes()
    charge(1)
    with key_slot():
        return service().hash_image(data)


def _queries_in(body: Any) -> int:
    """What a match-by-hashes request costs: one per hash set, so a batch pays for each lookup it makes
    (the service refuses malformed batches; they cost one)."""
    if isinstance(body, dict) and isinstance(body.get("items"), list) and len(body["items"]) <= MAX_BATCH:
        return max(1, len(body["items"]))
    return 1
