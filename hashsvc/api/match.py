"""Scope `match`: what upload pipelines call. Never returns stored hashes, only the query's own."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from hashsvc.api import metrics
from hashsvc.api.auth import require
from hashsvc.api.body import json_body
from hashsvc.api.context import admission, service
from hashsvc.api.uploads import image_bytes

bp = Blueprint("match", __name__, url_prefix="/v1")


@bp.post("/match")
@require("match")
def match_image() -> dict[str, Any]:
    data = image_bytes()
    with admission().slot():
        result = service().match_image(data)
    metrics.record_match(result)
    return result


@bp.post("/match/hashes")
@require("match")
def match_hashes() -> dict[str, Any]:
    body = json_body()
    with admission().slot():
        result = service().match_hashes(body)
    for single in result.get("results", [result]):
        metrics.record_match(single)
    return result


@bp.post("/hash")
@require("match")
def hash_only() -> dict[str, Any]:
    data = image_bytes()
    with admission().slot():
        return service().hash_image(data)
