"""Scope `curate`: the video parts of banks and items (vPDQ match rules per bank; an item's vPDQ hash).

Uploading, matching and adding videos go through the ordinary endpoints (`/v1/match`, `/v1/hash`, items from
an upload or from `{"hashes": {"vpdq": [...]}}`): the service tells videos from images by content.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g

from hashsvc.api.auth import require
from hashsvc.api.body import json_body
from hashsvc.api.context import service

bp = Blueprint("video", __name__, url_prefix="/v1")


@bp.get("/banks/<name>/video-rules")
@require("curate")
def get_video_rules(name: str) -> dict[str, Any]:
    return service().video.get_rules(name)


@bp.put("/banks/<name>/video-rules")
@require("curate")
def set_video_rules(name: str) -> dict[str, Any]:
    return service().video.set_rules(name, json_body(), g.actor)


@bp.get("/items/<int:item_id>/vpdq")
@require("curate")
def item_vpdq(item_id: int) -> dict[str, Any]:
    return {"item_id": item_id, "vpdq": service().video.get_frames(item_id)}
