"""The console's blueprint, its error pages and the helpers every page uses. Views live in pages_*.py."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from hashsvc.errors import HashsvcError
from hashsvc.hashes import ALGORITHMS
from hashsvc.ui import session as console_session
from hashsvc.ui.forms import THRESHOLD_ALGORITHMS

bp = Blueprint("ui", __name__, url_prefix="/ui", template_folder="templates", static_folder="static")

# Pages in the navigation: (endpoint, label, scope). A key sees only those its scopes allow.
NAVIGATION = (
    ("ui.overview", "Overview", "curate"),
    ("ui.banks", "Banks", "curate"),
    ("ui.test_image", "Test an image", "match"),
    ("ui.reviews", "Reviews", "curate"),
    ("ui.exchanges", "Exchanges", "curate"),
    ("ui.audit", "Audit log", "admin"),
    ("ui.keys", "Keys", "admin"),
)


@bp.before_request
def _load_session() -> None:
    if request.endpoint != "ui.static":
        console_session.load()


@bp.app_context_processor
def _page_helpers() -> dict[str, Any]:
    return {
        "csrf_token": console_session.csrf_token,
        "can": console_session.can,
        "navigation": [entry for entry in NAVIGATION if console_session.can(entry[2])],
        "key": g.get("key"),
        "threshold_defaults": [(name, ALGORITHMS[name].default_threshold) for name in THRESHOLD_ALGORITHMS],
    }


def page(template: str, http_status: int = 200, /, **values: Any) -> tuple[str, int]:
    """A rendered page and its status (positional, so that a page may have a value named `status`)."""
    return render_template(template, **values), http_status


@bp.errorhandler(HashsvcError)
def _domain_error(exc: HashsvcError) -> tuple[str, int]:
    return page("error.html", exc.http_status, title=_title(exc.http_status), message=exc.message, code=exc.code)


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> tuple[str, int] | Response:
    status = exc.code or 500
    code = "csrf" if isinstance(exc, console_session.CsrfError) else (exc.name or "error").lower().replace(" ", "_")
    return page("error.html", status, title=_title(status), message=exc.description or exc.name, code=code)


def _title(status: int) -> str:
    return {400: "Not accepted", 401: "Not signed in", 403: "Not allowed", 404: "Not found", 409: "Conflict",
            413: "Too large", 415: "Not an image", 422: "Not readable", 429: "Slow down",
            503: "Not ready"}.get(status, "Something went wrong")


def done(message: str, endpoint: str, **values: Any) -> Response:
    """After a change: say what happened on the next page (a flash in the session, never in the URL) and go
    there with 303, so that reloading it repeats nothing."""
    flash(message)
    return redirect(url_for(endpoint, **values), 303)
