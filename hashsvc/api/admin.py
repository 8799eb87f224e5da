"""Scope `admin`: API keys."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, request

from hashsvc.api.auth import require
from hashsvc.api.body import json_body
from hashsvc.api.context import service
from hashsvc.errors import ValidationError

bp = Blueprint("admin", __name__, url_prefix="/v1")


@bp.get("/keys")
@require("admin")
def list_keys() -> dict[str, Any]:
    return {"keys": service().list_keys()}


@bp.post("/keys")
@require("admin")
def create_key() -> tuple[dict[str, Any], int]:
    body = json_body()
    if not isinstance(body, dict) or not isinstance(body.get("scopes"), list):
        raise ValidationError(
            "send {\"name\": \"...\", \"scopes\": [\"match\" | \"curate\" | \"admin\" | \"metrics\", ...]}, "
            "optionally with "
            "\"disclosure\" (\"full\" | \"decision\"), \"rate_per_s\", \"burst\", \"max_inflight\""
        )
    options = {k: v for k, v in body.items() if k not in ("name", "scopes")}
    return service().create_key(body.get("name"), body["scopes"], g.actor, options), 201


@bp.patch("/keys/<int:key_id>")
@require("admin")
def update_key(key_id: int) -> dict[str, Any]:
    """Change a key's disclosure or limits: {"disclosure", "rate_per_s", "burst", "max_inflight"} (null: default)."""
    return service().update_key(key_id, json_body(), g.actor)


@bp.get("/audit")
@require("admin")
def list_audit() -> dict[str, Any]:
    """Newest first; filters actor, action (exact or `item.*`), bank, item_id, since, until; paged by `before`."""
    return service().audit_page(request.args.to_dict())


@bp.post("/keys/<int:key_id>/rotate")
@require("admin")
def rotate_key(key_id: int) -> dict[str, Any]:
    """{"grace_s": seconds the old secret keeps working (default a day, at most 30 days)}; the new secret once."""
    body = json_body() if request.content_length else None
    return service().rotate_key(key_id, body, g.actor)


@bp.delete("/keys/<int:key_id>")
@require("admin")
def revoke_key(key_id: int) -> dict[str, Any]:
    return service().revoke_key(key_id, g.actor)
