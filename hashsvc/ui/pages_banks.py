"""Console pages for curation (scope `curate`): banks, a bank's items, one item.

Each handler calls the same Service use case as its /v1 twin in api/curate.py or api/search.py, with the
signed-in key as the actor, so the rules and the audit entries are the API's.
"""

from __future__ import annotations

import io
from typing import Any

from flask import g, request, url_for
from werkzeug.wrappers import Response

from hashsvc.api.context import service
from hashsvc.api.limits import key_slot
from hashsvc.errors import NotFoundError, NotReadyError, ValidationError
from hashsvc.hashes import ALGORITHMS
from hashsvc.service import search, transfer
from hashsvc.store.aftermatch import EventFilter
from hashsvc.ui import forms
from hashsvc.ui.blueprint import bp, done, page
from hashsvc.ui.session import requires
from hashsvc.vocabulary import ACTIONS, CATEGORIES, LIST_FORMATS

PAGE_SIZE = 50


# ---------------------------------------------------------------------------------------------------- banks


@bp.get("/banks")
@requires("curate")
def banks() -> tuple[str, int]:
    return page("banks.html", banks=service().list_banks(), actions=ACTIONS, categories=CATEGORIES, title="Banks")


@bp.post("/banks")
@requires("curate")
def create_bank() -> Response:
    fields: dict[str, Any] = forms.fields("name", "category", "action", "description")
    fields["thresholds"] = forms.thresholds()
    bank = service().create_bank(fields, g.actor)
    return done(f"Bank {bank['name']} created.", "ui.bank", name=bank["name"])


@bp.get("/banks/<name>/edit")
@requires("curate")
def edit_bank(name: str) -> tuple[str, int]:
    bank_now = service().get_bank(name)
    return page("bank_edit.html", bank=bank_now, actions=ACTIONS, categories=CATEGORIES, title=f"Edit bank {name}")


@bp.post("/banks/<name>/edit")
@requires("curate")
def update_bank(name: str) -> Response:
    fields: dict[str, Any] = forms.fields("category", "action")
    fields["description"] = forms.text("description", "")
    fields["thresholds"] = forms.thresholds()
    service().update_bank(name, fields, g.actor)
    return done("Bank settings saved.", "ui.bank", name=name)


@bp.post("/banks/<name>/enabled")
@requires("curate")
def set_bank_enabled(name: str) -> Response:
    enabled = request.form.get("enabled") == "true"
    service().update_bank(name, {"enabled": enabled}, g.actor)
    return done(f"Bank {'enabled' if enabled else 'disabled'}.", "ui.bank", name=name)


@bp.get("/banks/<name>/delete")
@requires("curate")
def confirm_delete_bank(name: str) -> tuple[str, int]:
    bank = service().get_bank(name)
    return page(
        "confirm.html",
        title=f"Delete bank {name}",
        question=f"Delete bank {name} and its {bank['items']} items? This cannot be undone; the audit log keeps "
        "a record of it.",
        action=url_for("ui.delete_bank", name=name),
        confirm_name=name,
        button="Delete bank",
        back=url_for("ui.bank", name=name),
    )


@bp.post("/banks/<name>/delete")
@requires("curate")
def delete_bank(name: str) -> Response:
    if request.form.get("confirm_name") != name:
        raise ValidationError(f"type the bank's name ({name}) to confirm")
    service().delete_bank(name, g.actor)
    return done(f"Bank {name} deleted.", "ui.banks")


# ---------------------------------------------------------------------------------------------------- items


@bp.get("/banks/<name>")
@requires("curate")
def bank(name: str) -> tuple[str, int]:
    svc = service()
    info = svc.get_bank(name)
    status = forms.text("status")
    if status not in (None, "active", "disabled"):
        raise ValidationError("status must be 'active' or 'disabled'")
    reference, value = forms.text("reference"), forms.text("hash")
    searched: dict[str, Any] | None = None
    if reference is not None:
        searched = {"kind": "reference", "items": _by_reference(name, reference)}
        listing: dict[str, Any] = {"items": [], "next_after_id": None}
    elif value is not None:
        searched = {"kind": "hash", "items": _by_hash(name, value)}
        listing = {"items": [], "next_after_id": None}
    else:
        after = forms.integer("after_id", 0, 2**62, 0) or 0
        listing = svc.list_items(name, after, PAGE_SIZE, status)
    return page(
        "bank.html",
        bank=info,
        items=listing["items"],
        next_after_id=listing["next_after_id"],
        status=status,
        searched=searched,
        algorithms=list(ALGORITHMS),
        formats=LIST_FORMATS,
        title=f"Bank {name}",
    )


def _by_reference(bank: str, reference: str) -> list[dict[str, Any]]:
    try:
        return [service().find_item(bank, reference)]
    except NotFoundError:
        return []


def _by_hash(bank: str, value: str) -> list[dict[str, Any]]:
    """Items of this bank holding the hash or one within the distance asked for (the live index, as /v1/search)."""
    svc = service()
    if not svc.live.ready:
        raise NotReadyError("the index is still loading; retry shortly")
    found = search.search_hash(
        svc.store, svc.live.search, forms.text("algorithm", "pdq"), value, forms.integer("distance", 0, 256)
    )
    return [match for match in found["matches"] if match["bank"] == bank]


@bp.post("/banks/<name>/items")
@requires("curate")
def add_image(name: str) -> Response:
    data = forms.upload("image")
    with key_slot():  # as the API: curators' uploads share the hashing slots fairly
        item = service().add_item_from_image(name, data, forms.fields("reference", "source", "note"), g.actor)
    del data  # the image is hashed in memory and goes no further
    verb = "was already in the bank as" if item.get("already_present") else "added as"
    return done(f"The image {verb} item {item['id']}.", "ui.item", item_id=item["id"])


@bp.post("/banks/<name>/import")
@requires("curate")
def import_list(name: str) -> tuple[str, int]:
    fmt = forms.text("format", "csv")
    algorithm = forms.text("algorithm")
    if fmt not in LIST_FORMATS:
        raise ValidationError(f"format must be one of {', '.join(LIST_FORMATS)}")
    data = forms.upload("file")
    lines = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="replace")
    records = transfer.read_records(lines, fmt, algorithm if fmt == "hex" else None)
    summary = transfer.import_records(service().store, name, records, g.actor, dry_run=False)
    return page("import_result.html", bank=name, summary=summary.to_dict(), title=f"Import into {name}")


# ----------------------------------------------------------------------------------------------------- item


@bp.get("/items/<int:item_id>")
@requires("curate")
def item(item_id: int) -> tuple[str, int]:
    svc = service()
    found = svc.get_item(item_id)
    history = svc.audit_page({"item_id": str(item_id), "limit": "50"})["entries"]
    matches = svc.after.list_events(EventFilter(item_id=item_id, type="match"), 20)["events"]
    return page("item.html", item=found, history=history, events=matches, title=f"Item {item_id}")


@bp.post("/items/<int:item_id>/status")
@requires("curate")
def set_item_status(item_id: int) -> Response:
    status = request.form.get("status")
    body = {"status": status, **forms.fields("reason")}
    service().update_item(item_id, body, g.actor)
    return done(f"Item {'disabled' if status == 'disabled' else 'enabled'}.", "ui.item", item_id=item_id)


@bp.get("/items/<int:item_id>/delete")
@requires("curate")
def confirm_delete_item(item_id: int) -> tuple[str, int]:
    found = service().get_item(item_id)
    return page(
        "confirm.html",
        title=f"Delete item {item_id}",
        question=f"Delete item {item_id} ({found['reference'] or 'no reference'}) from bank {found['bank']}? "
        "Disabling keeps it for the record; deleting cannot be undone.",
        action=url_for("ui.delete_item", item_id=item_id),
        confirm_name=None,
        button="Delete item",
        back=url_for("ui.item", item_id=item_id),
    )


@bp.post("/items/<int:item_id>/delete")
@requires("curate")
def delete_item(item_id: int) -> Response:
    bank_name = service().get_item(item_id)["bank"]
    service().delete_item(item_id, g.actor)
    return done(f"Item {item_id} deleted.", "ui.bank", name=bank_name)
