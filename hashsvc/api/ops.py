"""Unauthenticated operations endpoints: liveness, readiness, metrics and the OpenAPI document."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from hashsvc.api import metrics
from hashsvc.api.context import service
from hashsvc.api.openapi import spec

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz() -> dict[str, Any]:
    """Cheap liveness: the process answers. Touches neither the store nor the index."""
    return {"status": "ok"}


@bp.get("/readyz")
def readyz() -> Response:
    """Ready once the index is loaded and has caught up with the store's change log."""
    status = service().status()
    ready = status["ready"] and status["lag"] == 0
    body = {"ready": ready, "sequence": status["sequence"], "lag": status["lag"], "hashes": status["sizes"]}
    if status["error"]:
        body["error"] = status["error"]
    response = jsonify(body)
    response.status_code = 200 if ready else 503
    if not ready:
        response.headers["Retry-After"] = "1"
    return response


@bp.get("/metrics")
def prometheus() -> Response:
    return metrics.exposition(service().status())


@bp.get("/openapi.json")
def openapi() -> dict[str, Any]:
    return spec()
