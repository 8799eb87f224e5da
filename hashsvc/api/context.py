"""Where the API finds its collaborators: bound to the app in `init_app`, never hung on globals."""

from __future__ import annotations

from flask import Flask, current_app

from hashsvc.api.admission import Admission
from hashsvc.service.ratelimit import RateLimiter
from hashsvc.service.service import Service

EXTENSION = "hashsvc"


def init_app(app: Flask, svc: Service) -> None:
    app.extensions[EXTENSION] = svc
    settings = svc.settings
    app.extensions[EXTENSION + ".admission"] = Admission(
        settings.max_inflight,
        settings.queue_timeout_s,
        key_cap=settings.key_max_inflight,
        active_window_s=settings.fair_share_window_s,
    )
    app.extensions[EXTENSION + ".rate_limiter"] = RateLimiter()


def service() -> Service:
    return current_app.extensions[EXTENSION]  # type: ignore[no-any-return]


def admission() -> Admission:
    return current_app.extensions[EXTENSION + ".admission"]  # type: ignore[no-any-return]


def rate_limiter() -> RateLimiter:
    return current_app.extensions[EXTENSION + ".rate_limiter"]  # type: ignore[no-any-return]
