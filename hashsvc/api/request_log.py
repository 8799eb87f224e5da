"""One JSON line per request on the `hashsvc.request` logger, and a request id on every answer.

The line says who (the key's name), what (method, endpoint rule, status), the decision for match requests and
how long it took: enough to follow one upload from the platform's logs to ours (the id comes back in the
`X-Request-Id` header, and a caller's own id is kept when it is a plain token). It never carries the key
itself, the URL's query string, hashes or anything from the body: a log must not become a copy of the banks
or of the uploads.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from typing import Any

from flask import Flask, Response, g, request

log = logging.getLogger("hashsvc.request")
HEADER = "X-Request-Id"
# A caller's id is echoed into logs and headers: only a short token of safe characters is kept, anything else
# (spaces, quotes, control characters that could forge log lines) gets a fresh id instead.
_CALLER_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def init_app(app: Flask, *, enabled: bool) -> None:
    @app.before_request
    def assign_id() -> None:
        given = request.headers.get(HEADER, "")
        g.request_id = given if _CALLER_ID.fullmatch(given) else uuid.uuid4().hex
        g.request_started = time.perf_counter()

    @app.after_request
    def finish(response: Response) -> Response:
        response.headers[HEADER] = g.get("request_id", "")
        if enabled:
            log.info(json.dumps(_line(response), separators=(",", ":")))
        return response

    if enabled:
        _attach_handler()


def note_decisions(decisions: Iterable[str]) -> None:
    """Called by the match views: the decision (or, for a batch, the count of each) goes into the line."""
    g.decisions = Counter(decisions)


def _line(response: Response) -> dict[str, Any]:
    key = g.get("key")
    line: dict[str, Any] = {
        "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z",
        "request_id": g.get("request_id"),
        "remote_addr": request.remote_addr,
        "key": key.name if key is not None else None,
        "method": request.method,
        "endpoint": request.url_rule.rule if request.url_rule is not None else None,  # the rule, not the raw path
        "status": response.status_code,
        "duration_ms": round((time.perf_counter() - g.get("request_started", time.perf_counter())) * 1000, 1),
    }
    decisions = g.get("decisions")
    if decisions:
        line["decision"] = next(iter(decisions)) if len(decisions) == 1 and sum(decisions.values()) == 1 else None
        line["decisions"] = dict(decisions)
    if response.status_code >= 400 and response.is_json:
        error = (response.get_json(silent=True) or {}).get("error")
        if isinstance(error, dict):
            line["error"] = error.get("code")
    return line


def _attach_handler() -> None:
    """Lines go to stderr as they are (already JSON), once per process however many apps are built."""
    if any(getattr(handler, "_hashsvc", False) for handler in log.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler._hashsvc = True  # type: ignore[attr-defined]
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
