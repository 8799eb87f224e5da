"""The analyst console: server-rendered pages under /ui/ over the same `Service` use cases as the API.

`init_app` binds the session machinery (ui/session.py), registers the blueprint and its pages, and sets the
security headers on every /ui/ response. Pages never show an image: hashes, decisions and metadata only.
"""

from __future__ import annotations

from flask import Flask, Response, request

from hashsvc.config import Settings
from hashsvc.ui import pages_banks, pages_ops, pages_test  # noqa: F401 - registers the pages on the blueprint
from hashsvc.ui import session as console_session
from hashsvc.ui.blueprint import bp

# No inline script or style anywhere (the pages have none), no framing, forms only to ourselves.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
    "form-action 'self'; base-uri 'none'"
)


def init_app(app: Flask, settings: Settings) -> None:
    console_session.init_app(app, settings)
    app.register_blueprint(bp)
    app.after_request(_security_headers)


def _security_headers(response: Response) -> Response:
    if request.path == "/ui" or request.path.startswith("/ui/"):
        response.headers["Content-Security-Policy"] = CSP
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
        if request.endpoint != "ui.static":
            response.headers["Cache-Control"] = "no-store"  # pages show hashes, reviews and keys
    return response
