"""Scope `curate`: banks and items, for analysts and their scripts."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, request

from hashsvc.api.auth import require
from hashsvc.api.body import json_body
from hashsvc.api.context import service
from hashsvc.api.limits import key_slot
from hashsvc.api.uploads import image_bytes
from hashsvc.errors import ValidationError

bp = Blueprint("curate", __name__, url_prefix="/v1")


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ValidationError(f"query parameter '{name}' must be an integer from {low} to {high}")
    return int(raw)


@bp.get("/banks")
@require("curate")
def list_banks() -> dict[str, Any]:
    return {"banks": service().list_banks()}


@bp.post("/banks")
@require("curate")
def create_bank() -> tuple[dict[str, Any], int]:
    return service().create_bank(json_body(), g.actor), 201


@bp.get("/banks/<name>")
@require("curate")
def get_bank(name: str) -> dict[str, Any]:
    return service().get_bank(name)


@bp.patch("/banks/<name>")
@require("curate")
def update_bank(name: str) -> dict[str, Any]:
    return service().update_bank(name, json_body(), g.actor)


@bp.delete("/banks/<name>")
@require("curate")
def delete_bank(name: str) -> Response:
    service().delete_bank(name, g.actor)
    return Response(status=204)


@bp.post("/banks/<name>/items")
@require("curate")
def add_item(name: str) -> tuple[dict[str, Any], int]:
    if request.mimetype == "application/json":
        return service().add_item_from_hashes(name, json_body(), g.actor), 201
    fields: dict[str, Any] = {k: v for k, v in request.form.items()}
    data = image_bytes()
    with key_slot():  # curators' uploads share the slots fairly with the pipelines' (no rate limit: trusted)
        item = service().add_item_from_image(name, data, fields, g.actor)
    return item, 200 if item.get("already_present") else 201


@bp.post("/banks/<name>/items:bulk")
@require("curate")
def add_items_bulk(name: str) -> dict[str, Any]:
    return service().add_items_bulk(name, request.get_data(cache=False).splitlines(), g.actor)


@bp.get("/banks/<name>/items")
@require("curate")
def list_items(name: str) -> dict[str, Any]:
    status = request.args.get("status")
    if status not in (None, "active", "disabled"):
        raise ValidationError("query parameter 'status' must be 'active' or 'disabled'")
    after = _int_arg("after_id", 0, 0, 2**62)
    limit = _int_arg("limit", 100, 1, 1000)
    return service().list_items(name, after, limit, status)


@bp.get("/items/<int:item_id>")
@require("curate")
def get_item(item_id: int) -> dict[str, Any]:
    return service().get_item(item_id)


@bp.patch("/items/<int:item_id>")
@require("curate")
def update_item(item_id: int) -> dict[str, Any]:
    return service().update_item(item_id, json_body(), g.actor)


@bp.delete("/items/<int:item_id>")
@require("curate")
def delete_item(item_id: int) -> Response:
    service().delete_item(item_id, g.actor)
    return Response(status=204)
