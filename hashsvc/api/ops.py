"""Operations endpoints: liveness, readiness and the OpenAPI document need no key; metrics need the `metrics`
scope, because they name banks and count their live matches.

Readiness says only whether this process can serve and, if not, why: no counts, sequence numbers or sizes,
which would tell an unauthenticated caller how big the hash lists are and how fast they change.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from hashsvc.api import aftermetrics, metrics
from hashsvc.api.auth import require
from hashsvc.api.context import service
from hashsvc.api.openapi import spec

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz() -> dict[str, Any]:
    """Cheap liveness: the process answers. Touches neither the store nor the index."""
    return {"status": "ok"}


@bp.get("/readyz")
def readyz() -> Response:
    """200 `{"ready": true}` once the index is loaded and caught up on a store whose schema is this code's; else
    503 with the reason and Retry-After."""
    reason = not_ready_reason(service().status())
    if reason is None:
        return jsonify({"ready": True})
    response = jsonify({"ready": False, "reason": reason})
    response.status_code = 503
    response.headers["Retry-After"] = "1"
    return response


def not_ready_reason(status: dict[str, Any]) -> str | None:
    """Why this process should not get traffic yet, in words for an operator; None when it is ready."""
    if status.get("schema"):  # before the store's errors: a schema this code does not know also makes them
        return f"the store has {status['schema']}"
    if status["error"]:
        # Only the exception's type: its text can name the database host and user, and this answer is public.
        kind = status["error"].partition(":")[0]
        return f"store unreachable: {kind} (details in the server log)"
    if not status["ready"]:
        return "loading index"
    if status["lag"] > 0:
        return "catching up with the change log"
    return None


@bp.get("/metrics")
@require("metrics")
def prometheus() -> Response:
    aftermetrics.refresh(service())
    return metrics.exposition(service().status())


@bp.get("/openapi.json")
def openapi() -> dict[str, Any]:
    return spec()
