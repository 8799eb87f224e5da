"""Scope `admin`: API keys."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g

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
        raise ValidationError("send {\"name\": \"...\", \"scopes\": [\"match\" | \"curate\" | \"admin\", ...]}")
    return service().create_key(body.get("name"), body["scopes"], g.actor), 201


@bp.delete("/keys/<int:key_id>")
@require("admin")
def revoke_key(key_id: int) -> dict[str, Any]:
    return service().revoke_key(key_id, g.actor)
