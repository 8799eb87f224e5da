"""After a match: events and reviews (scope `curate`), quarantines (`curate`), webhooks (`admin`).

Nothing here is open to `match` keys: events hold the query hashes and content ids of uploads, reviews the
matched items, and an upload pipeline has no business reading what other uploads matched.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint, Response, g, request

from hashsvc.api.auth import require
from hashsvc.api.body import json_body
from hashsvc.api.context import service
from hashsvc.errors import NotFoundError, ValidationError
from hashsvc.service import floodguard
from hashsvc.service.events import MatchContext, context_from
from hashsvc.store import validation
from hashsvc.store.aftermatch import EventFilter

bp = Blueprint("aftermatch", __name__, url_prefix="/v1")
MAX_ID = 2**62


def match_context() -> MatchContext:
    """content_id and metadata of an upload: multipart form fields, or query parameters beside a raw body."""
    source = request.form if request.mimetype == "multipart/form-data" else request.args
    return context_from(source.get("content_id"), source.get("metadata"))


def _int(name: str, default: int | None, low: int, high: int) -> int | None:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ValidationError(f"query parameter '{name}' must be an integer from {low} to {high}")
    return int(raw)


def _text(name: str, choices: tuple[str, ...] | None = None) -> str | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    if choices is not None and raw not in choices:
        raise ValidationError(f"query parameter '{name}' must be one of {', '.join(choices)}")
    return validation.lookup(name, raw)


def _time(name: str) -> dt.datetime | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    try:
        value = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise ValidationError(f"query parameter '{name}' must be an ISO 8601 time, e.g. 2026-11-29T21:00:00Z") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


# ---------------------------------------------------------------------------------------------- events


@bp.get("/events")
@require("curate")
def list_events() -> dict[str, Any]:
    where = EventFilter(
        decision=_text("decision", ("block", "review", "allow")),
        type=_text("type", ("match", "suppression", "quarantine", "retrohunt", "review_resolved")),
        bank=_text("bank"),
        item_id=_int("item_id", None, 0, MAX_ID),
        content_id=_text("content_id"),
        since=_time("since"),
        until=_time("until"),
        before_id=_int("before_id", None, 1, MAX_ID),
    )
    limit = _int("limit", 100, 1, 1000)
    assert limit is not None
    return service().after.list_events(where, limit)


# --------------------------------------------------------------------------------------------- reviews


@bp.get("/reviews")
@require("curate")
def list_reviews() -> dict[str, Any]:
    status = request.args.get("status", "open")
    return service().after.reviews.list(
        status=None if status == "any" else _text("status", ("open", "resolved")) or "open",
        bank=_text("bank"),
        category=_text("category"),
        min_age_s=_int("min_age_s", None, 0, 10**9),
        after_id=_int("after_id", None, 0, MAX_ID),
        limit=_int("limit", 100, 1, 1000) or 100,
    )


@bp.get("/reviews/<int:review_id>")
@require("curate")
def get_review(review_id: int) -> dict[str, Any]:
    return service().after.reviews.get(review_id)


@bp.post("/reviews/<int:review_id>/claim")
@require("curate")
def claim_review(review_id: int) -> dict[str, Any]:
    return service().after.reviews.claim(review_id, g.actor)


@bp.post("/reviews/<int:review_id>/resolve")
@require("curate")
def resolve_review(review_id: int) -> dict[str, Any]:
    return service().after.reviews.resolve(review_id, json_body(), g.actor)


# ----------------------------------------------------------------------------------------- quarantines


@bp.get("/quarantines")
@require("curate")
def list_quarantines() -> dict[str, Any]:
    return {"quarantines": floodguard.list_quarantines(service().store, _text("status"))}


@bp.post("/quarantines/<int:item_id>/rearm")
@require("curate")
def rearm_quarantined(item_id: int) -> dict[str, Any]:
    return _release(item_id, "rearm")


@bp.post("/quarantines/<int:item_id>/disable")
@require("curate")
def disable_quarantined(item_id: int) -> dict[str, Any]:
    return _release(item_id, "disable")


def _release(item_id: int, action: str) -> dict[str, Any]:
    body = json_body() if request.content_length else {}
    if not isinstance(body, dict) or set(body) - {"reason"}:
        raise ValidationError('send {"reason": "..."} or nothing')
    if item_id > MAX_ID:
        raise NotFoundError(f"item {item_id} is not quarantined")
    reason = validation.text("reason", body.get("reason"))
    return floodguard.release(service().store, item_id, action, g.actor, reason)


# -------------------------------------------------------------------------------------------- webhooks


@bp.post("/webhooks")
@require("admin")
def create_webhook() -> tuple[dict[str, Any], int]:
    return service().after.webhooks.create(json_body(), g.actor), 201


@bp.get("/webhooks")
@require("admin")
def list_webhooks() -> dict[str, Any]:
    return {"webhooks": service().after.webhooks.list()}


@bp.get("/webhooks/<int:webhook_id>")
@require("admin")
def get_webhook(webhook_id: int) -> dict[str, Any]:
    return service().after.webhooks.get(webhook_id)


@bp.delete("/webhooks/<int:webhook_id>")
@require("admin")
def delete_webhook(webhook_id: int) -> Response:
    service().after.webhooks.delete(webhook_id, g.actor)
    return Response(status=204)


@bp.post("/webhooks/<int:webhook_id>/test")
@require("admin")
def test_webhook(webhook_id: int) -> dict[str, Any]:
    return service().after.webhooks.test(webhook_id, g.actor)


@bp.get("/webhooks/<int:webhook_id>/deliveries")
@require("admin")
def webhook_deliveries(webhook_id: int) -> dict[str, Any]:
    limit = _int("limit", 100, 1, 1000) or 100
    return service().after.webhooks.deliveries(webhook_id, limit, _int("before_id", None, 1, MAX_ID))
