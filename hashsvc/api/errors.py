"""One JSON error shape for every failure: `{"error": {"code": "...", "message": "..."}}`.

Registered on the app (not per blueprint), so that routing errors, oversized bodies and domain errors all look
the same to clients. Nothing a client sends should reach the last handler; if something does, the client gets
a generic message and the details go to the log, never into the response.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from hashsvc.api.metrics import record_decode_error
from hashsvc.errors import HashsvcError, MediaError

log = logging.getLogger(__name__)


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _http_code(exc: HTTPException) -> str:
    return (exc.name or "error").lower().replace(" ", "_")


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(HashsvcError)
    def domain_error(exc: HashsvcError) -> Response:
        if isinstance(exc, MediaError):
            record_decode_error(exc.code)
        headers = {"Retry-After": "1"} if exc.http_status == 503 else None
        return error_response(exc.http_status, exc.code, exc.message, headers)

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(exc: RequestEntityTooLarge) -> Response:
        limit = app.config.get("MAX_CONTENT_LENGTH")
        return error_response(413, "too_large", f"the request body is larger than the {limit}-byte limit")

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        headers: dict[str, Any] = {}
        if exc.code == 405 and exc.response is None:
            allowed = getattr(exc, "valid_methods", None)
            if allowed:
                headers["Allow"] = ", ".join(allowed)
        return error_response(exc.code or 500, _http_code(exc), exc.description or exc.name, headers)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        log.exception("unhandled error")
        return error_response(500, "internal_error", "an internal error occurred; it has been logged")
