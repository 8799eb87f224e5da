"""The OpenAPI 3 document served at /openapi.json, kept next to the routes it describes.

tests/test_api_openapi.py checks that every route of the app is documented here and that real responses
validate against these schemas.
"""

from __future__ import annotations

from typing import Any

from hashsvc import __version__
from hashsvc.api import openapi_aftermatch
from hashsvc.store.schema import SCOPES

HEX = {"type": "string", "pattern": "^[0-9a-fA-F]+$"}
READINESS = {
    "type": "object",
    "required": ["ready"],
    "properties": {"ready": {"type": "boolean"}, "reason": {"type": "string"}},
    "additionalProperties": False,
}
ID = {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}  # ids are 64-bit in every store back end
ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}
PDQ_VALUE = {
    "type": "object",
    "required": ["value", "quality"],
    "properties": {"value": HEX, "quality": {"type": "integer", "minimum": 0, "maximum": 100}},
}
IMAGE_HASHES = {
    "type": "object",
    "required": ["pdq", "phash", "dhash", "md5", "sha256"],
    "properties": {"pdq": PDQ_VALUE, "phash": HEX, "dhash": HEX, "md5": HEX, "sha256": HEX},
}
HASH_SET = {
    "type": "object",
    "minProperties": 1,
    "description": "algorithm -> hex hash; PDQ may also be {value, quality}",
    "properties": {
        "pdq": {"oneOf": [HEX, {"type": "object", "required": ["value"], "properties": PDQ_VALUE["properties"]}]},
        "phash": HEX,
        "dhash": HEX,
        "md5": HEX,
        "sha256": HEX,
        "content_id": openapi_aftermatch.CONTENT_ID,  # recorded with the event (docs/workflow.md)
        "metadata": openapi_aftermatch.EVENT_METADATA,
    },
    "additionalProperties": False,
}
MATCH = {
    "type": "object",
    # item_id, distance, threshold and note are left out for decision-only keys and frozen probes (README Security).
    "required": ["bank", "reference", "category", "algorithm", "variant", "action"],
    "properties": {
        "bank": {"type": "string"},
        "item_id": {"type": "integer"},
        "reference": {"type": ["string", "null"]},
        "category": {"type": "string"},
        "algorithm": {"type": "string"},
        "distance": {"type": "integer", "minimum": 0},
        "threshold": {"type": "integer", "minimum": 0},
        "variant": {"type": "string"},
        "action": {"type": "string", "enum": ["block", "review", "log"]},
        "note": {"type": "string"},
        "partner": {
            "type": "object",
            "description": "Present for an item from a partner feed: whom to report the match to.",
            "properties": {
                "exchange": {"type": "string"},
                "entry_id": {"type": "string"},
                "labels": {"type": "array", "items": {"type": "string"}},
            },
        },
        # A local-feature match (algorithm "orb") has these instead of distance and threshold (full disclosure only).
        "inliers": {"type": "integer", "minimum": 0},
        "ratio": {"type": "number", "minimum": 0, "maximum": 1},
    },
}
INDEX_INFO = {"type": "object", "required": ["sequence"], "properties": {"sequence": {"type": "integer"}}}
MATCH_RESULT = {
    "type": "object",
    "required": ["decision", "hashes", "matches", "index"],
    "properties": {
        "decision": {"type": "string", "enum": ["block", "review", "allow"]},
        "hashes": {"type": "object"},
        "matches": {"type": "array", "items": MATCH},
        "index": INDEX_INFO,
        "took_ms": {"type": "number"},
    },
}
BANK = {
    "type": "object",
    "required": ["name", "category", "action", "enabled", "thresholds", "items"],
    "properties": {
        "name": {"type": "string"},
        "description": {"type": "string"},
        "category": {"type": "string", "enum": ["csam", "terror", "ncii", "other"]},
        "action": {"type": "string", "enum": ["block", "review", "log"]},
        "enabled": {"type": "boolean"},
        "thresholds": {"type": "object", "additionalProperties": {"type": "integer"}},
        "items": {"type": "integer"},
        "features": {"type": "boolean"},  # the local-feature stage looks at this bank's items
        "created_at": {"type": "string"},
        "updated_at": {"type": "string"},
    },
}
BANK_INPUT = {
    "type": "object",
    "properties": {k: v for k, v in BANK["properties"].items() if k not in ("items", "created_at", "updated_at")},
    "additionalProperties": False,
}
ITEM = {
    "type": "object",
    "required": ["id", "bank", "status", "hashes"],
    "properties": {
        "id": {"type": "integer"},
        "bank": {"type": "string"},
        "reference": {"type": ["string", "null"]},
        "source": {"type": ["string", "null"]},
        "note": {"type": ["string", "null"]},
        "status": {"type": "string", "enum": ["active", "disabled"]},
        "status_reason": {"type": ["string", "null"]},
        "status_by": {"type": ["string", "null"]},
        "status_at": {"type": ["string", "null"]},
        "created_by": {"type": "string"},
        "created_at": {"type": "string"},
        "metadata": {"type": "object"},
        "hashes": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "algorithm": {"type": "string"},
                    "value": HEX,
                    "view": {"type": "boolean", "description": "a hash of an edited view (crop), not exported"},
                },
            },
        },
        "already_present": {"type": "boolean", "description": "image uploads: these bytes were in the bank"},
    },
}
AUDIT_ENTRY = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "at": {"type": "string"},
        "actor": {"type": "string"},
        "action": {"type": "string"},
        "bank": {"type": ["string", "null"]},
        "item_id": {"type": ["integer", "null"]},
        "remote_addr": {"type": ["string", "null"]},
        "details": {"type": "object"},
    },
}
ITEM_INPUT = {
    "type": "object",
    "required": ["hashes"],
    "properties": {
        "hashes": HASH_SET,
        "reference": {"type": "string"},
        "source": {"type": "string"},
        "note": {"type": "string"},
        "metadata": {"type": "object"},
    },
    "additionalProperties": False,
}
KEY = {
    "type": "object",
    "required": ["id", "name", "scopes", "revoked"],
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "scopes": {"type": "array", "items": {"type": "string", "enum": list(SCOPES)}},
        "created_at": {"type": "string"},
        "last_used_at": {"type": ["string", "null"]},
        "revoked": {"type": "boolean"},
        "key": {"type": "string", "description": "the secret, returned once at creation"},
    },
}
# A key's disclosure and its overrides of the server's limits (null: the server's setting): listed, and accepted
# by create and update.
KEY_OPTIONS = {
    "disclosure": {"type": "string", "enum": ["full", "decision"]},
    "rate_per_s": {"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": 1_000_000},
    "burst": {"type": ["integer", "null"], "minimum": 1, "maximum": 1_000_000},
    "max_inflight": {"type": ["integer", "null"], "minimum": 1, "maximum": 1_000_000},
    "expires_at": {"type": ["string", "null"], "format": "date-time", "description": "null: never expires"},
}
KEY["properties"] |= KEY_OPTIONS
KEY["properties"]["previous_valid_until"] = {
    "type": ["string", "null"],
    "description": "after a rotation, until when the previous secret still works",
}
SEARCH_RESULT = {
    "type": "object",
    "required": ["algorithm", "hash", "max_distance", "matches"],
    "properties": {
        "algorithm": {"type": "string"},
        "hash": HEX,
        "max_distance": {"type": "integer"},
        "matches": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["item_id", "bank", "status", "algorithm", "hash", "distance"],
                "properties": {
                    "item_id": {"type": "integer"},
                    "bank": {"type": "string"},
                    "reference": {"type": ["string", "null"]},
                    "status": {"type": "string", "enum": ["active", "disabled"]},
                    "note": {"type": ["string", "null"]},
                    "algorithm": {"type": "string"},
                    "hash": HEX,
                    "distance": {"type": "integer", "minimum": 0},
                },
            },
        },
    },
}
IMPORT_SUMMARY = {
    "type": "object",
    "required": ["added", "present", "skipped_disabled", "bad", "bad_lines", "dry_run"],
    "properties": {
        "added": {"type": "integer"},
        "present": {"type": "integer"},
        "skipped_disabled": {"type": "integer"},
        "bad": {"type": "integer"},
        "bad_lines": {"type": "array", "items": {"type": "object"}},
        "dry_run": {"type": "boolean"},
    },
}
IMAGE_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["image"],
                "properties": {"image": {"type": "string", "format": "binary"}},
            }
        },
        "image/*": {"schema": {"type": "string", "format": "binary"}},
        "video/*": {"schema": {"type": "string", "format": "binary"}},
    },
}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _responses(ok: int, schema: dict[str, Any] | None, *errors: int) -> dict[str, Any]:
    out: dict[str, Any] = {str(ok): {"description": "success", **(_json(schema) if schema else {})}}
    for status in errors:
        out[str(status)] = {"description": "error", **_json(ERROR)}
    return out


AUTH_ERRORS = (401, 403)
MEDIA_ERRORS = (400, 413, 415, 422, 503)


def _op(summary: str, scope: str | None, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    op = {"summary": summary, "responses": responses, **extra}
    if scope:
        op["security"] = [{"bearer": []}]
        op["x-scope"] = scope
    return op


def _name_param() -> dict[str, Any]:
    return {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}


def _id_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": ID}


def spec() -> dict[str, Any]:
    match_batch = {
        "type": "object",
        "required": ["results", "index"],
        "properties": {
            "results": {"type": "array", "items": MATCH_RESULT},
            "index": INDEX_INFO,
            "took_ms": {"type": "number"},
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "hashsvc",
            "version": __version__,
            "description": "Perceptual-hash matching of uploads against banks of known images.",
        },
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": {
            "/v1/match": {
                "post": _op(
                    "Match an uploaded image",
                    "match",
                    _responses(200, MATCH_RESULT, *AUTH_ERRORS, 429, *MEDIA_ERRORS),
                    requestBody=IMAGE_BODY,
                    parameters=openapi_aftermatch.match_parameters(),
                )
            },
            "/v1/match/hashes": {
                "post": _op(
                    "Match one hash set, or a batch of up to 1000 under 'items'",
                    "match",
                    _responses(200, {"oneOf": [MATCH_RESULT, match_batch]}, 400, *AUTH_ERRORS, 429, 503),
                    requestBody={
                        "required": True,
                        **_json(
                            {
                                "oneOf": [
                                    HASH_SET,
                                    {
                                        "type": "object",
                                        "required": ["items"],
                                        "additionalProperties": False,
                                        "properties": {
                                            "items": {
                                                "type": "array",
                                                "minItems": 1,
                                                "maxItems": 1000,
                                                "items": HASH_SET,
                                            }
                                        },
                                    },
                                ]
                            }
                        ),
                    },
                )
            },
            "/v1/hash": {
                "post": _op(
                    "Hash an uploaded image without lookup",
                    "match",
                    _responses(200, IMAGE_HASHES, *AUTH_ERRORS, 429, *MEDIA_ERRORS),
                    requestBody=IMAGE_BODY,
                )
            },
            "/v1/banks": {
                "get": _op(
                    "List banks",
                    "curate",
                    _responses(
                        200, {"type": "object", "properties": {"banks": {"type": "array", "items": BANK}}}, *AUTH_ERRORS
                    ),
                ),
                "post": _op(
                    "Create a bank",
                    "curate",
                    _responses(201, BANK, 400, *AUTH_ERRORS, 409),
                    requestBody={"required": True, **_json({**BANK_INPUT, "required": ["name", "category"]})},
                ),
            },
            "/v1/banks/{name}": {
                "parameters": [_name_param()],
                "get": _op("Show a bank", "curate", _responses(200, BANK, *AUTH_ERRORS, 404)),
                "patch": _op(
                    "Change a bank (enable/disable, action, thresholds...)",
                    "curate",
                    _responses(200, BANK, 400, *AUTH_ERRORS, 404),
                    requestBody={
                        "required": True,
                        **_json(
                            {
                                **BANK_INPUT,
                                "properties": {k: v for k, v in BANK_INPUT["properties"].items() if k != "name"},
                            }
                        ),
                    },
                ),
                "delete": _op(
                    "Delete a bank with its items",
                    "curate",
                    {"204": {"description": "deleted"}, **_responses(200, None, *AUTH_ERRORS, 404)},
                ),
            },
            "/v1/banks/{name}/items": {
                "parameters": [_name_param()],
                "get": _op(
                    "List a bank's items, paged by id",
                    "curate",
                    _responses(
                        200,
                        {
                            "type": "object",
                            "properties": {
                                "items": {"type": "array", "items": ITEM},
                                "next_after_id": {"type": ["integer", "null"]},
                            },
                        },
                        400,
                        *AUTH_ERRORS,
                        404,
                    ),
                    parameters=[
                        {"name": "after_id", "in": "query", "schema": ID},
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
                        {"name": "status", "in": "query", "schema": {"type": "string", "enum": ["active", "disabled"]}},
                    ],
                ),
                "post": _op(
                    "Add an item from hashes (JSON) or from an image (multipart)",
                    "curate",
                    {
                        **_responses(201, ITEM, 400, *AUTH_ERRORS, 404, 409, 413, 415, 422),
                        "200": {"description": "an image whose bytes the bank holds already: that item", **_json(ITEM)},
                    },
                    requestBody={
                        "required": True,
                        "content": {
                            "application/json": {"schema": ITEM_INPUT},
                            "multipart/form-data": {
                                "schema": {
                                    "type": "object",
                                    "required": ["image"],
                                    "properties": {
                                        "image": {"type": "string", "format": "binary"},
                                        "reference": {"type": "string"},
                                        "note": {"type": "string"},
                                        "source": {"type": "string"},
                                    },
                                }
                            },
                        },
                    },
                ),
            },
            "/v1/banks/{name}/items:bulk": {
                "parameters": [_name_param()],
                "post": _op(
                    "Add many items from JSON lines; each line accepted or rejected",
                    "curate",
                    _responses(
                        200,
                        {
                            "type": "object",
                            "properties": {"accepted": {"type": "array"}, "rejected": {"type": "array"}},
                        },
                        400,
                        *AUTH_ERRORS,
                        404,
                        409,
                    ),
                    requestBody={"required": True, "content": {"application/x-ndjson": {"schema": {"type": "string"}}}},
                ),
            },
            "/v1/items/{item_id}": {
                "parameters": [_id_param("item_id")],
                "get": _op("Show an item", "curate", _responses(200, ITEM, *AUTH_ERRORS, 404)),
                "patch": _op(
                    "Disable/enable (with a reason) or edit an item",
                    "curate",
                    _responses(200, ITEM, 400, *AUTH_ERRORS, 404),
                    requestBody={
                        "required": True,
                        **_json(
                            {
                                "type": "object",
                                "additionalProperties": False,
                                "properties": {
                                    "status": {"type": "string", "enum": ["active", "disabled"]},
                                    "reason": {"type": "string"},
                                    "note": {"type": "string"},
                                    "source": {"type": "string"},
                                    "metadata": {"type": "object"},
                                },
                            }
                        ),
                    },
                ),
                "delete": _op(
                    "Delete an item",
                    "curate",
                    {"204": {"description": "deleted"}, **_responses(200, None, *AUTH_ERRORS, 404)},
                ),
            },
            "/v1/search": {
                "get": _op(
                    "Items holding a hash or one within max_distance of it, nearest first",
                    "curate",
                    _responses(200, SEARCH_RESULT, 400, *AUTH_ERRORS, 503),
                    parameters=[
                        {"name": "algorithm", "in": "query", "schema": {"type": "string"}},
                        {"name": "hash", "in": "query", "required": True, "schema": HEX},
                        {"name": "max_distance", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
                    ],
                )
            },
            "/v1/banks/{name}/items:import": {
                "parameters": [_name_param()],
                "post": _op(
                    "Idempotent import of JSON lines: bad lines reported, items already in the bank skipped",
                    "curate",
                    _responses(200, IMPORT_SUMMARY, 400, *AUTH_ERRORS, 404, 409),
                    parameters=[
                        {"name": "dry_run", "in": "query", "schema": {"type": "string", "enum": ["true", "false"]}}
                    ],
                    requestBody={"required": True, "content": {"application/x-ndjson": {"schema": {"type": "string"}}}},
                ),
            },
            "/v1/keys": {
                "get": _op(
                    "List API keys",
                    "admin",
                    _responses(
                        200, {"type": "object", "properties": {"keys": {"type": "array", "items": KEY}}}, *AUTH_ERRORS
                    ),
                ),
                "post": _op(
                    "Create an API key (the secret is returned once)",
                    "admin",
                    _responses(201, KEY, 400, *AUTH_ERRORS, 409),
                    requestBody={
                        "required": True,
                        **_json(
                            {
                                "type": "object",
                                "required": ["name", "scopes"],
                                "properties": {
                                    "name": {"type": "string"},
                                    "scopes": KEY["properties"]["scopes"],
                                    **KEY_OPTIONS,
                                },
                                "additionalProperties": False,
                            }
                        ),
                    },
                ),
            },
            "/v1/keys/{key_id}": {
                "parameters": [_id_param("key_id")],
                "delete": _op("Revoke an API key", "admin", _responses(200, KEY, *AUTH_ERRORS, 404)),
                "patch": _op(
                    "Change a key's disclosure or limits (null: back to the server's setting)",
                    "admin",
                    _responses(200, KEY, 400, *AUTH_ERRORS, 404),
                    requestBody={
                        "required": True,
                        **_json({"type": "object", "properties": KEY_OPTIONS, "additionalProperties": False}),
                    },
                ),
            },
            "/v1/audit": {
                "get": _op(
                    "The audit log, newest first (paged by `before`: pass the previous page's next_before)",
                    "admin",
                    _responses(
                        200,
                        {
                            "type": "object",
                            "properties": {
                                "entries": {"type": "array", "items": AUDIT_ENTRY},
                                "next_before": {"type": ["integer", "null"]},
                            },
                        },
                        400,
                        *AUTH_ERRORS,
                    ),
                    parameters=[
                        {"name": "actor", "in": "query", "schema": {"type": "string"}},
                        {"name": "action", "in": "query", "schema": {"type": "string"}},
                        {"name": "bank", "in": "query", "schema": {"type": "string"}},
                        {"name": "item_id", "in": "query", "schema": ID},
                        {"name": "since", "in": "query", "schema": {"type": "string", "format": "date-time"}},
                        {"name": "until", "in": "query", "schema": {"type": "string", "format": "date-time"}},
                        {"name": "before", "in": "query", "schema": ID},
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
                    ],
                )
            },
            "/v1/keys/{key_id}/rotate": {
                "parameters": [_id_param("key_id")],
                "post": _op(
                    "Give a key a new secret (returned once); the old one works for grace_s more seconds",
                    "admin",
                    _responses(200, KEY, 400, *AUTH_ERRORS, 404),
                    requestBody={
                        "required": False,
                        **_json(
                            {
                                "type": "object",
                                "properties": {"grace_s": {"type": "integer", "minimum": 0, "maximum": 2_592_000}},
                                "additionalProperties": False,
                            }
                        ),
                    },
                ),
            },
            "/healthz": {"get": _op("Liveness", None, _responses(200, {"type": "object"}))},
            "/readyz": {
                "get": _op(
                    "Readiness: 503 with the reason until the index has loaded and caught up,"
                    " or while the store's schema is not this code's",
                    None,
                    {
                        "200": {"description": "ready", **_json(READINESS)},
                        "503": {"description": "not ready", **_json(READINESS)},
                    },
                )
            },
            "/metrics": {
                "get": _op(
                    "Prometheus metrics (they name banks, hence the scope)",
                    "metrics",
                    {
                        "200": {
                            "description": "text exposition",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        },
                        **{k: v for k, v in _responses(200, None, *AUTH_ERRORS).items() if k != "200"},
                    },
                )
            },
            "/openapi.json": {"get": _op("This document", None, _responses(200, {"type": "object"}))},
            **openapi_aftermatch.paths(),  # events, reviews, quarantines, webhooks
            **_exchange_paths(),
            **_video_paths(),
        },
    }


EXCHANGE = {
    "type": "object",
    "required": ["name", "type", "bank", "config", "credentials", "every_s", "paused", "feedback", "status"],
    "properties": {
        "name": {"type": "string"},
        "type": {"type": "string", "enum": ["ncmec", "stopncii", "tat", "threatexchange", "url"]},
        "bank": {"type": "string"},
        "config": {"type": "object"},
        "credentials": {"type": "string", "enum": ["set", "none"], "description": "never the credentials"},
        "every_s": {"type": "integer"},
        "paused": {"type": "boolean"},
        "feedback": {"type": "boolean"},
        "status": {"type": "object"},
        "totals": {"type": "object"},
    },
}


def _exchange_paths() -> dict[str, Any]:
    """Partner feeds (docs/exchanges.md): admin changes them, curate reads them."""
    body = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "type": EXCHANGE["properties"]["type"],  # type: ignore[index]
            "bank": {"type": "string"},
            "config": {"type": "object"},
            "credentials": {"type": "object", "additionalProperties": {"type": "string"}},
            "every": {"type": ["string", "integer"]},
            "feedback": {"type": "boolean"},
            "paused": {"type": "boolean"},
        },
    }
    one = _responses(200, EXCHANGE, *AUTH_ERRORS, 404)
    return {
        "/v1/exchanges": {
            "get": _op(
                "List partner feeds with their status",
                "curate",
                _responses(
                    200,
                    {"type": "object", "properties": {"exchanges": {"type": "array", "items": EXCHANGE}}},
                    *AUTH_ERRORS,
                ),
            ),
            "post": _op(
                "Add a partner feed into an existing bank (credentials are stored encrypted, never returned)",
                "admin",
                _responses(201, EXCHANGE, 400, *AUTH_ERRORS, 404, 409),
                requestBody={"required": True, **_json(body)},
            ),
        },
        "/v1/exchanges/{name}": {
            "parameters": [_name_param()],
            "get": _op("One partner feed and its status", "curate", one),
            "patch": _op(
                "Change a feed's schedule, feedback, pause, config or credentials",
                "admin",
                _responses(200, EXCHANGE, 400, *AUTH_ERRORS, 404, 409),
                requestBody={"required": True, **_json(body)},
            ),
            "delete": _op(
                "Remove a feed (its items stay in the bank)", "admin", _responses(204, None, *AUTH_ERRORS, 404)
            ),
        },
        "/v1/exchanges/{name}/pause": {
            "parameters": [_name_param()],
            "post": _op("Stop a feed's schedule", "admin", one),
        },
        "/v1/exchanges/{name}/resume": {
            "parameters": [_name_param()],
            "post": _op("Restart a feed's schedule (due at once)", "admin", one),
        },
        "/v1/exchanges/{name}/sync": {
            "parameters": [_name_param()],
            "post": _op(
                "Make a feed due now; the scheduler syncs it within seconds",
                "admin",
                _responses(202, EXCHANGE, *AUTH_ERRORS, 404),
            ),
        },
    }


STRING = {"type": "string"}
VIDEO_RULES = {
    "type": "object",
    "properties": {
        "query_share": {"type": "number", "minimum": 0, "maximum": 100},
        "item_share": {"type": "number", "minimum": 0, "maximum": 100},
        "quality": {"type": "integer", "minimum": 0, "maximum": 100},
    },
}


def _video_paths() -> dict[str, Any]:
    """The video endpoints (docs/video.md); videos themselves go through /v1/match, /v1/hash and items."""
    rules = {**VIDEO_RULES, "properties": {"bank": {"type": "string"}, **VIDEO_RULES["properties"]}}
    return {
        "/v1/banks/{name}/video-rules": {
            "parameters": [_name_param()],
            "get": _op(
                "A bank's vPDQ match shares and frame quality", "curate", _responses(200, rules, *AUTH_ERRORS, 404)
            ),
            "put": _op(
                "Set a bank's vPDQ match shares (percent) and frame quality; absent fields take Meta's defaults",
                "curate",
                _responses(200, rules, 400, *AUTH_ERRORS, 404),
                requestBody={"required": True, **_json(VIDEO_RULES)},
            ),
        },
        "/v1/items/{item_id}/vpdq": {
            "parameters": [_id_param("item_id")],
            "get": _op(
                'A video item\'s vPDQ hash: "pdq,quality,timestamp" per sampled frame',
                "curate",
                _responses(
                    200,
                    {"type": "object", "properties": {"item_id": ID, "vpdq": {"type": "array", "items": STRING}}},
                    *AUTH_ERRORS,
                    404,
                ),
            ),
        },
    }
