"""The OpenAPI paths of the after-match routes (hashsvc.api.aftermatch), merged into `openapi.spec()`."""

from __future__ import annotations

from typing import Any

ID = {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}
ERROR = {"type": "object", "required": ["error"], "properties": {"error": {"type": "object"}}}
AUTH = (401, 403)
CONTENT_ID = {"type": "string", "minLength": 1, "maxLength": 255}
EVENT_METADATA = {"type": "object", "description": "at most 4 KiB as JSON"}
EVENT_TYPES = ["match", "suppression", "quarantine", "retrohunt", "review_resolved"]
WEBHOOK_TYPES = ["block", "review", "retrohunt_hit", "quarantine", "review_resolved"]
EVENT = {
    "type": "object",
    "required": ["id", "type", "at", "decision", "matches"],
    "properties": {
        "id": ID,
        "type": {"type": "string", "enum": EVENT_TYPES},
        "at": {"type": "string"},
        "key": {"type": ["string", "null"]},
        "content_id": {"type": ["string", "null"]},
        "decision": {"type": ["string", "null"]},
        "metadata": {"type": "object"},
        "hashes": {"type": "object"},
        "matches": {"type": "array", "items": {"type": "object"}},
        "details": {"type": "object"},
    },
}
REVIEW = {
    "type": "object",
    "required": ["id", "status", "opened_at"],
    "properties": {
        "id": ID,
        "event_id": ID,
        "status": {"type": "string", "enum": ["open", "resolved"]},
        "opened_at": {"type": "string"},
        "bank": {"type": ["string", "null"]},
        "category": {"type": ["string", "null"]},
        "item_id": {"type": ["integer", "null"]},
        "claimed_by": {"type": ["string", "null"]},
        "claim_expires_at": {"type": ["string", "null"]},
        "resolution": {"type": ["string", "null"]},
        "reason": {"type": ["string", "null"]},
        "resolved_by": {"type": ["string", "null"]},
        "resolved_at": {"type": ["string", "null"]},
        "outcome": {"type": "object"},
        "event": EVENT,
    },
}
QUARANTINE = {
    "type": "object",
    "required": ["item_id", "bank", "status"],
    "properties": {
        "item_id": ID,
        "bank": {"type": "string"},
        "status": {"type": "string", "enum": ["active", "rearmed", "disabled"]},
        "since": {"type": "string"},
        "reason": {"type": "string"},
        "changed_by": {"type": ["string", "null"]},
        "changed_at": {"type": ["string", "null"]},
    },
}
WEBHOOK = {
    "type": "object",
    "required": ["id", "url", "event_types"],
    "properties": {
        "id": ID,
        "url": {"type": "string"},
        "event_types": {"type": "array", "items": {"type": "string", "enum": WEBHOOK_TYPES}},
        "banks": {"type": ["array", "null"], "items": {"type": "string"}},
        "created_by": {"type": "string"},
        "created_at": {"type": "string"},
        "secret": {"type": "string", "description": "only in the answer to POST, once"},
    },
}
TEST_DELIVERY = {
    "type": "object",
    "required": ["webhook_id", "idempotency_key", "delivered", "status", "error", "duration_ms"],
    "properties": {
        "webhook_id": ID,
        "idempotency_key": {"type": "string"},
        "delivered": {"type": "boolean", "description": "the receiver answered 2xx"},
        "status": {"type": ["integer", "null"], "description": "the receiver's HTTP status, null if none"},
        "error": {"type": ["string", "null"]},
        "duration_ms": {"type": "number"},
    },
}
DELIVERY = {
    "type": "object",
    "required": ["id", "idempotency_key", "event_type", "status", "attempts", "history"],
    "properties": {
        "id": ID,
        "idempotency_key": {"type": "string"},
        "event_type": {"type": "string"},
        "event_id": {"type": ["integer", "null"]},
        "status": {"type": "string", "enum": ["pending", "delivered", "failed", "cancelled"]},
        "attempts": {"type": "integer"},
        "created_at": {"type": "string"},
        "next_attempt_at": {"type": ["string", "null"]},
        "delivered_at": {"type": ["string", "null"]},
        "history": {"type": "array", "items": {"type": "object"}},
    },
}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _op(summary: str, scope: str, ok: int, schema: dict[str, Any] | None, *errors: int, **extra: Any) -> dict[str, Any]:
    responses: dict[str, Any] = {str(ok): {"description": "success", **(_json(schema) if schema else {})}}
    for status in (*AUTH, *errors):
        responses[str(status)] = {"description": "error", **_json(ERROR)}
    return {"summary": summary, "responses": responses, "security": [{"bearer": []}], "x-scope": scope, **extra}


def _query(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": schema}


def _path_id(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": ID}


def _list(key: str, items: dict[str, Any], cursor: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {key: {"type": "array", "items": items}, cursor: {"type": ["integer", "null"]}},
    }


def match_parameters() -> list[dict[str, Any]]:
    """content_id and metadata of an upload sent as a raw body (multipart sends them as form fields)."""
    return [_query("content_id", CONTENT_ID), _query("metadata", {"type": "string", "description": "a JSON object"})]


def paths() -> dict[str, Any]:
    reason_body = {
        "required": False,
        **_json({"type": "object", "properties": {"reason": {"type": "string"}}, "additionalProperties": False}),
    }
    return {
        "/v1/events": {
            "get": _op(
                "Match events, newest first",
                "curate",
                200,
                _list("events", EVENT, "next_before_id"),
                400,
                parameters=[
                    _query("decision", {"type": "string", "enum": ["block", "review", "allow"]}),
                    _query("type", {"type": "string", "enum": EVENT_TYPES}),
                    _query("bank", {"type": "string"}),
                    _query("item_id", {"type": "string", "pattern": "^[0-9]+$"}),
                    _query("content_id", {"type": "string"}),
                    _query("since", {"type": "string", "format": "date-time"}),
                    _query("until", {"type": "string", "format": "date-time"}),
                    _query("before_id", {"type": "string", "pattern": "^[0-9]+$"}),
                    _query("limit", {"type": "string", "pattern": "^[0-9]+$"}),
                ],
            )
        },
        "/v1/reviews": {
            "get": _op(
                "Reviews, oldest first",
                "curate",
                200,
                _list("reviews", REVIEW, "next_after_id"),
                400,
                parameters=[
                    _query("status", {"type": "string", "enum": ["open", "resolved", "any"]}),
                    _query("bank", {"type": "string"}),
                    _query("category", {"type": "string"}),
                    _query("min_age_s", {"type": "string", "pattern": "^[0-9]+$"}),
                    _query("after_id", {"type": "string", "pattern": "^[0-9]+$"}),
                    _query("limit", {"type": "string", "pattern": "^[0-9]+$"}),
                ],
            )
        },
        "/v1/reviews/{review_id}": {
            "parameters": [_path_id("review_id")],
            "get": _op("A review with its event", "curate", 200, REVIEW, 404),
        },
        "/v1/reviews/{review_id}/claim": {
            "parameters": [_path_id("review_id")],
            "post": _op("Claim a review (a lease that expires)", "curate", 200, REVIEW, 404, 409),
        },
        "/v1/reviews/{review_id}/resolve": {
            "parameters": [_path_id("review_id")],
            "post": _op(
                "Resolve a review",
                "curate",
                200,
                REVIEW,
                400,
                404,
                409,
                requestBody={
                    "required": True,
                    **_json(
                        {
                            "type": "object",
                            "required": ["resolution"],
                            "properties": {
                                "resolution": {"type": "string", "enum": ["confirmed", "false_positive", "dismissed"]},
                                "reason": {"type": "string"},
                                "add_to_bank": {"type": "string"},
                                "disable_item": {"type": "boolean"},
                                "allowlist_bank": {"type": "string"},
                            },
                        }
                    ),
                },
            ),
        },
        "/v1/quarantines": {
            "get": _op(
                "Items the flood guard quarantined",
                "curate",
                200,
                {"type": "object", "properties": {"quarantines": {"type": "array", "items": QUARANTINE}}},
                400,
                parameters=[_query("status", {"type": "string", "enum": ["active", "rearmed", "disabled"]})],
            )
        },
        "/v1/quarantines/{item_id}/rearm": {
            "parameters": [_path_id("item_id")],
            "post": _op("Re-arm a quarantined item", "curate", 200, QUARANTINE, 400, 404, 409, requestBody=reason_body),
        },
        "/v1/quarantines/{item_id}/disable": {
            "parameters": [_path_id("item_id")],
            "post": _op(
                "Disable a quarantined item", "curate", 200, QUARANTINE, 400, 404, 409, requestBody=reason_body
            ),
        },
        "/v1/webhooks": {
            "get": _op(
                "Webhooks",
                "admin",
                200,
                {"type": "object", "properties": {"webhooks": {"type": "array", "items": WEBHOOK}}},
            ),
            "post": _op(
                "Subscribe a URL (the signing secret is returned once)",
                "admin",
                201,
                WEBHOOK,
                400,
                404,
                requestBody={
                    "required": True,
                    **_json(
                        {
                            "type": "object",
                            "required": ["url", "events"],
                            "properties": {
                                "url": {"type": "string", "maxLength": 2048},
                                "events": {"type": "array", "items": {"type": "string", "enum": WEBHOOK_TYPES}},
                                "banks": {"type": "array", "items": {"type": "string"}},
                            },
                            "additionalProperties": False,
                        }
                    ),
                },
            ),
        },
        "/v1/webhooks/{webhook_id}": {
            "parameters": [_path_id("webhook_id")],
            "get": _op("A webhook", "admin", 200, WEBHOOK, 404),
            "delete": {**_op("Delete a webhook (pending deliveries are cancelled)", "admin", 204, None, 404)},
        },
        "/v1/webhooks/{webhook_id}/test": {
            "parameters": [_path_id("webhook_id")],
            "post": _op(
                "Send one signed `test` request now (not through the outbox) and report the receiver's answer",
                "admin",
                200,
                TEST_DELIVERY,
                404,
            ),
        },
        "/v1/webhooks/{webhook_id}/deliveries": {
            "parameters": [_path_id("webhook_id")],
            "get": _op(
                "A webhook's deliveries, newest first, with every attempt",
                "admin",
                200,
                _list("deliveries", DELIVERY, "next_before_id"),
                400,
                404,
                parameters=[
                    _query("limit", {"type": "string", "pattern": "^[0-9]+$"}),
                    _query("before_id", {"type": "string", "pattern": "^[0-9]+$"}),
                ],
            ),
        },
    }
