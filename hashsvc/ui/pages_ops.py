"""Console pages: sign-in and sign-out, the overview, reviews and exchanges (scope `curate`), the audit log and
keys (scope `admin`). Each calls the Service use case its /v1 twin calls (api/aftermatch.py, api/admin.py,
api/exchanges.py)."""

from __future__ import annotations

from typing import Any

from flask import g, redirect, request, stream_with_context, url_for
from werkzeug.wrappers import Response

from hashsvc.api.context import service
from hashsvc.errors import NotFoundError, ValidationError
from hashsvc.service import audit as audit_log
from hashsvc.ui import chart, forms
from hashsvc.ui import session as console_session
from hashsvc.ui.blueprint import NAVIGATION, bp, done, page
from hashsvc.ui.session import requires
from hashsvc.vocabulary import REVIEW_RESOLUTIONS, SCOPES

AUDIT_FILTERS = ("actor", "action", "bank", "since", "until")
AUDIT_PAGE = 100


# ------------------------------------------------------------------------------------------------ sign-in


@bp.get("/")
def home() -> Response:
    """The first page the key may see (a `match` key has only "Test an image")."""
    if g.key is None:
        return redirect(url_for("ui.login"))
    for endpoint, _label, scope in NAVIGATION:
        if g.key.allows(scope):
            return redirect(url_for(endpoint))
    return redirect(url_for("ui.login", why="scopes"))


@bp.route("/login", methods=["GET", "POST"])
def login() -> tuple[str, int] | Response:
    if request.method == "POST":
        key = console_session.sign_in(request.form.get("key", ""))
        if key is None:
            return page("login.html", 401, error="That key is unknown, revoked or expired.", title="Sign in")
        wanted = request.form.get("next", "")
        # Only our own pages: never an absolute or protocol-relative URL (an open redirect).
        if wanted.startswith("/ui/") and not wanted.startswith("//") and "\\" not in wanted:
            return redirect(wanted, 303)
        return redirect(url_for("ui.home"), 303)
    console_session.csrf_token()  # the sign-in form is a form too
    return page("login.html", why=request.args.get("why"), next=request.args.get("next", ""), title="Sign in")


@bp.post("/logout")
def logout() -> Response:
    console_session.sign_out()
    return redirect(url_for("ui.login", why="signed_out"), 303)


# ----------------------------------------------------------------------------------------------- overview


@bp.get("/overview")
@requires("curate")
def overview() -> tuple[str, int]:
    facts = service().overview(forms.integer("days", 1, 90, 14) or 14)
    return page(
        "overview.html",
        facts=facts,
        chart=chart.bars(facts["days"], facts["activity"]),
        rows=chart.rows(facts["days"], facts["activity"]),
        title="Overview",
    )


# ------------------------------------------------------------------------------------------------ reviews


@bp.get("/reviews")
@requires("curate")
def reviews() -> tuple[str, int]:
    status = forms.text("status", "open")
    if status not in ("open", "resolved"):
        raise ValidationError("status must be 'open' or 'resolved'")
    listing = service().after.reviews.list(
        status=status, bank=forms.text("bank"), after_id=forms.integer("after_id", 0, 2**62), limit=50
    )
    return page("reviews.html", listing=listing, status=status, title="Reviews")


@bp.get("/reviews/<int:review_id>")
@requires("curate")
def review(review_id: int) -> tuple[str, int]:
    found = service().after.reviews.get(review_id)
    return page("review.html", review=found, resolutions=REVIEW_RESOLUTIONS, title=f"Review {review_id}")


@bp.post("/reviews/<int:review_id>/claim")
@requires("curate")
def claim_review(review_id: int) -> Response:
    service().after.reviews.claim(review_id, g.actor)
    return done(f"You hold review {review_id}.", "ui.review", review_id=review_id)


@bp.post("/reviews/<int:review_id>/resolve")
@requires("curate")
def resolve_review(review_id: int) -> Response:
    body: dict[str, Any] = forms.fields("resolution", "reason")
    if body.get("resolution") == "false_positive" and request.form.get("disable_item") == "true":
        body["disable_item"] = True
    service().after.reviews.resolve(review_id, body, g.actor)
    return done(f"Review {review_id} resolved.", "ui.reviews")


# ---------------------------------------------------------------------------------------------- exchanges


@bp.get("/exchanges")
@requires("curate")
def exchanges() -> tuple[str, int]:
    return page("exchanges.html", exchanges=service().exchanges.list(), title="Exchanges")


# -------------------------------------------------------------------------------------------------- audit


def _audit_filters() -> dict[str, str]:
    return {name: value for name in AUDIT_FILTERS if (value := forms.text(name)) is not None}


@bp.get("/audit")
@requires("admin")
def audit() -> tuple[str, int]:
    filters = _audit_filters()
    before = forms.text("before")
    listing = service().audit_page({**filters, "limit": str(AUDIT_PAGE), **({"before": before} if before else {})})
    return page("audit.html", listing=listing, filters=filters, title="Audit log")


@bp.get("/audit.csv")
@requires("admin")
def audit_csv() -> Response:
    filters = _audit_filters()
    audit_log.parse_filters(filters)  # a bad filter is a 400 page now, not a broken download later
    entries = audit_log.iter_audit(service().store, filters)
    response = Response(stream_with_context(audit_log.csv_lines(entries)), mimetype="text/csv")
    response.headers["Content-Disposition"] = 'attachment; filename="audit.csv"'
    return response


# --------------------------------------------------------------------------------------------------- keys


@bp.get("/keys")
@requires("admin")
def keys() -> tuple[str, int]:
    return page("keys.html", keys=service().list_keys(), scopes=SCOPES, created=None, title="Keys")


@bp.post("/keys")
@requires("admin")
def create_key() -> tuple[str, int]:
    scopes = [scope for scope in SCOPES if request.form.get(f"scope_{scope}") == "on"]
    options = forms.fields("disclosure", "expires_at")
    created = service().create_key(forms.text("name") or "", scopes, g.actor, options)
    # The secret is on this one response (Cache-Control: no-store), never stored in clear, never shown again.
    return page("keys.html", 201, keys=service().list_keys(), scopes=SCOPES, created=created, title="Keys")


@bp.get("/keys/<int:key_id>/revoke")
@requires("admin")
def confirm_revoke_key(key_id: int) -> tuple[str, int]:
    name = next((k["name"] for k in service().list_keys() if k["id"] == key_id), None)
    if name is None:
        raise NotFoundError(f"no API key with id {key_id}")
    return page(
        "confirm.html",
        title=f"Revoke key {name}",
        question=f"Revoke key {name}? Every client and console session using it stops working at once.",
        action=url_for("ui.revoke_key", key_id=key_id),
        confirm_name=None,
        button="Revoke key",
        back=url_for("ui.keys"),
    )


@bp.post("/keys/<int:key_id>/revoke")
@requires("admin")
def revoke_key(key_id: int) -> Response:
    revoked = service().revoke_key(key_id, g.actor)
    return done(f"Key {revoked['name']} revoked.", "ui.keys")
