"""`hashsvc events`, `review list|claim|resolve`, `quarantine list|release`, `webhook add|list|remove|test`.

Locally they call the service's after-match modules on the store; remotely the API (scope curate; admin for
webhooks)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import click

from hashsvc.cli.app import main
from hashsvc.cli.backend import Backend, LocalBackend, RemoteBackend
from hashsvc.cli.options import backend_options, emit, json_option, table
from hashsvc.errors import ValidationError
from hashsvc.vocabulary import REVIEW_RESOLUTIONS as RESOLUTIONS
from hashsvc.vocabulary import WEBHOOK_TYPES

EVENT_TYPES = ["match", "suppression", "quarantine", "retrohunt", "review_resolved"]


def _remote(backend: Backend) -> RemoteBackend | None:
    return backend if isinstance(backend, RemoteBackend) else None


def _local(backend: Backend) -> LocalBackend:
    assert isinstance(backend, LocalBackend)
    return backend


def _time(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValidationError(f"not an ISO 8601 time: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _match_summary(matches: list[dict[str, Any]]) -> str:
    return ", ".join(
        f"{m.get('bank')}#{m.get('item_id')}" + (f" {m['algorithm']}={m['distance']}" if "distance" in m else "")
        for m in matches[:3]
    ) + (" ..." if len(matches) > 3 else "")


@main.command("events")
@click.option("--decision", type=click.Choice(["block", "review", "allow"]))
@click.option("--type", "kind", type=click.Choice(EVENT_TYPES))
@click.option("--bank", help="Only events with a match in this bank.")
@click.option("--item-id", type=int, help="Only events with a match on this item.")
@click.option("--content-id", help="Only events about this upload (the platform's id).")
@click.option("--since", help="ISO 8601 time (UTC unless given).")
@click.option("--until", help="ISO 8601 time (UTC unless given).")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@json_option
@backend_options
def events_command(
    backend: Backend,
    decision: str | None,
    kind: str | None,
    bank: str | None,
    item_id: int | None,
    content_id: str | None,
    since: str | None,
    until: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List match events, newest first (what matched, for which upload, and what was decided).

    \b
    Example:
        hashsvc events --decision review --since 2026-11-29T00:00:00
        hashsvc events --content-id post-8812 --json
    """
    remote = _remote(backend)
    if remote is not None:
        params = {
            "decision": decision,
            "type": kind,
            "bank": bank,
            "item_id": item_id,
            "content_id": content_id,
            "since": since,
            "until": until,
            "limit": limit,
        }
        found = remote.client.request("GET", "/v1/events", params=params)["events"]
    else:
        from hashsvc.store.aftermatch import EventFilter  # the store's SQLAlchemy: not for --help

        where = EventFilter(decision, kind, bank, item_id, content_id, _time(since), _time(until))
        found = _local(backend).service.after.list_events(where, limit)["events"]
    rows = [
        (e["id"], e["at"][:19], e["type"], e["decision"], e["content_id"], e["key"], _match_summary(e["matches"]))
        for e in found
    ]
    emit(as_json, found, table(rows, ["id", "at", "type", "decision", "content_id", "key", "matches"]))


@main.group("review")
def review_group() -> None:
    """Work through the review queue: list, claim (a lease that expires), resolve.

    \b
    Example:
        hashsvc review list --bank ncmec
        hashsvc review claim 1042
        hashsvc review resolve 1042 --resolution confirmed --add-to-bank ncmec-confirmed --reason "checked"
        hashsvc review resolve 1043 --resolution false_positive --allowlist-bank benign
    """


@review_group.command("list")
@click.option("--status", type=click.Choice(["open", "resolved", "any"]), default="open", show_default=True)
@click.option("--bank")
@click.option("--category")
@click.option("--min-age", "min_age_s", type=int, help="Only reviews open at least this many seconds.")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@json_option
@backend_options
def review_list(
    backend: Backend,
    status: str,
    bank: str | None,
    category: str | None,
    min_age_s: int | None,
    limit: int,
    as_json: bool,
) -> None:
    """List reviews, oldest first.

    \b
    Example:
        hashsvc review list --status open --min-age 3600
    """
    remote = _remote(backend)
    if remote is not None:
        params = {"status": status, "bank": bank, "category": category, "min_age_s": min_age_s, "limit": limit}
        found = remote.client.request("GET", "/v1/reviews", params=params)["reviews"]
    else:
        found = _local(backend).service.after.reviews.list(
            status=None if status == "any" else status,
            bank=bank,
            category=category,
            min_age_s=min_age_s,
            limit=limit,
        )["reviews"]
    rows = [
        (r["id"], r["opened_at"][:19], r["status"], r["bank"], r["item_id"], r["claimed_by"], r["resolution"])
        for r in found
    ]
    emit(as_json, found, table(rows, ["id", "opened", "status", "bank", "item", "claimed_by", "resolution"]))


@review_group.command("claim")
@click.argument("review_id", type=int)
@json_option
@backend_options
def review_claim(backend: Backend, review_id: int, as_json: bool) -> None:
    """Claim a review for yourself (HASHSVC_REVIEW_CLAIM_S, 15 minutes by default).

    \b
    Example:
        hashsvc review claim 1042
    """
    remote = _remote(backend)
    if remote is not None:
        review = remote.client.request("POST", f"/v1/reviews/{review_id}/claim")
    else:
        local = _local(backend)
        review = local.service.after.reviews.claim(review_id, local.actor)
    emit(as_json, review, f"review {review_id} claimed by {review['claimed_by']} until {review['claim_expires_at']}")


@review_group.command("resolve")
@click.argument("review_id", type=int)
@click.option("--resolution", type=click.Choice(RESOLUTIONS), required=True)
@click.option("--reason")
@click.option("--add-to-bank", help="confirmed: add the upload's hashes to this bank as a new item.")
@click.option("--disable-item", is_flag=True, help="false_positive: disable the item that matched.")
@click.option("--allowlist-bank", help="false_positive: add the upload's perceptual hashes to this allowlist bank.")
@json_option
@backend_options
def review_resolve(
    backend: Backend,
    review_id: int,
    resolution: str,
    reason: str | None,
    add_to_bank: str | None,
    disable_item: bool,
    allowlist_bank: str | None,
    as_json: bool,
) -> None:
    """Resolve a review: confirmed, false_positive or dismissed, with what follows from it.

    \b
    Example:
        hashsvc review resolve 1043 --resolution false_positive --disable-item --reason "a meme"
    """
    body: dict[str, Any] = {"resolution": resolution}
    for name, value in (("reason", reason), ("add_to_bank", add_to_bank), ("allowlist_bank", allowlist_bank)):
        if value is not None:
            body[name] = value
    if disable_item:
        body["disable_item"] = True
    remote = _remote(backend)
    if remote is not None:
        review = remote.client.request("POST", f"/v1/reviews/{review_id}/resolve", json_body=body)
    else:
        local = _local(backend)
        review = local.service.after.reviews.resolve(review_id, body, local.actor)
    outcome = "".join(f"; {k}: {v}" for k, v in review["outcome"].items())
    emit(as_json, review, f"review {review_id} resolved as {review['resolution']}{outcome}")


@main.group("quarantine")
def quarantine_group() -> None:
    """Items the flood guard quarantined: list them, re-arm (block again) or disable.

    \b
    Example:
        hashsvc quarantine list
        hashsvc quarantine release 4711 --action rearm --reason "checked: real content"
    """


@quarantine_group.command("list")
@click.option("--status", type=click.Choice(["active", "rearmed", "disabled"]), default="active", show_default=True)
@json_option
@backend_options
def quarantine_list(backend: Backend, status: str, as_json: bool) -> None:
    """List quarantines.

    \b
    Example:
        hashsvc quarantine list --status active
    """
    remote = _remote(backend)
    if remote is not None:
        found = remote.client.request("GET", "/v1/quarantines", params={"status": status})["quarantines"]
    else:
        from hashsvc.service import floodguard

        found = floodguard.list_quarantines(_local(backend).store, status)
    rows = [(q["item_id"], q["bank"], q["status"], q["since"][:19], q["reason"]) for q in found]
    emit(as_json, found, table(rows, ["item", "bank", "status", "since", "reason"]))


@quarantine_group.command("release")
@click.argument("item_id", type=int)
@click.option("--action", type=click.Choice(["rearm", "disable"]), required=True)
@click.option("--reason")
@json_option
@backend_options
def quarantine_release(backend: Backend, item_id: int, action: str, reason: str | None, as_json: bool) -> None:
    """Re-arm a quarantined item (it blocks again, its flood count restarts) or disable it.

    \b
    Example:
        hashsvc quarantine release 4711 --action rearm --reason "checked: real content"
    """
    remote = _remote(backend)
    if remote is not None:
        body = {"reason": reason} if reason else {}
        done = remote.client.request("POST", f"/v1/quarantines/{item_id}/{action}", json_body=body)
    else:
        local = _local(backend)
        from hashsvc.service import floodguard

        done = floodguard.release(local.store, item_id, action, local.actor, reason)
    emit(as_json, done, f"item {item_id}: quarantine {done['status']}")


@main.group("webhook")
def webhook_group() -> None:
    """Webhooks (signed POSTs of events to your systems): add, list, remove, test. Needs an admin key remotely.

    \b
    Example:
        hashsvc webhook add https://hooks.example.org/hashsvc --event block --event review
        hashsvc webhook test 1
        hashsvc webhook remove 1
    """


@webhook_group.command("add")
@click.argument("target")
@click.option(
    "--event", "events", multiple=True, required=True, type=click.Choice(WEBHOOK_TYPES), help="Repeat for several."
)
@click.option("--bank", "banks", multiple=True, help="Only events about these banks (repeat; default: all).")
@json_option
@backend_options
def webhook_add(
    backend: Backend, target: str, events: tuple[str, ...], banks: tuple[str, ...], as_json: bool
) -> None:
    """Subscribe the URL TARGET to event types; prints the signing secret, which is never shown again.

    \b
    Example:
        hashsvc webhook add https://hooks.example.org/hashsvc --event block --event retrohunt_hit --bank ncmec
    """
    body: dict[str, Any] = {"url": target, "events": list(events)}
    if banks:
        body["banks"] = list(banks)
    remote = _remote(backend)
    if remote is not None:
        hook = remote.client.request("POST", "/v1/webhooks", json_body=body)
    else:
        local = _local(backend)
        hook = local.service.after.webhooks.create(body, local.actor)
    emit(
        as_json,
        hook,
        f"created webhook {hook['id']} -> {hook['url']} ({', '.join(hook['event_types'])})\n"
        f"signing secret (shown once): {hook['secret']}",
    )


@webhook_group.command("list")
@json_option
@backend_options
def webhook_list(backend: Backend, as_json: bool) -> None:
    """List webhooks (never their secrets).

    \b
    Example:
        hashsvc webhook list --json
    """
    remote = _remote(backend)
    if remote is not None:
        found = remote.client.request("GET", "/v1/webhooks")["webhooks"]
    else:
        found = _local(backend).service.after.webhooks.list()
    rows = [
        (h["id"], h["url"], ",".join(h["event_types"]), ",".join(h["banks"] or ["(all)"]), h["created_by"])
        for h in found
    ]
    emit(as_json, found, table(rows, ["id", "url", "events", "banks", "created_by"]))


@webhook_group.command("remove")
@click.argument("webhook_id", type=int)
@json_option
@backend_options
def webhook_remove(backend: Backend, webhook_id: int, as_json: bool) -> None:
    """Remove a webhook: its pending deliveries are cancelled, its past attempts stay visible.

    \b
    Example:
        hashsvc webhook remove 3
    """
    remote = _remote(backend)
    if remote is not None:
        remote.client.request("DELETE", f"/v1/webhooks/{webhook_id}")
    else:
        local = _local(backend)
        local.service.after.webhooks.delete(webhook_id, local.actor)
    emit(as_json, {"id": webhook_id, "removed": True}, f"removed webhook {webhook_id}")


@webhook_group.command("test")
@click.argument("webhook_id", type=int)
@json_option
@backend_options
def webhook_test(backend: Backend, webhook_id: int, as_json: bool) -> None:
    """Send one signed `test` request to a webhook now and show the receiver's answer (exit 1 unless 2xx).

    \b
    Example:
        hashsvc webhook test 3
    """
    remote = _remote(backend)
    if remote is not None:
        outcome = remote.client.request("POST", f"/v1/webhooks/{webhook_id}/test")
    else:
        local = _local(backend)
        outcome = local.service.after.webhooks.test(webhook_id, local.actor)
    answer = f"HTTP {outcome['status']}" if outcome["status"] is not None else outcome["error"]
    verdict = "delivered" if outcome["delivered"] else "NOT delivered"
    emit(as_json, outcome, f"webhook {webhook_id}: test {verdict} ({answer}, {outcome['duration_ms']} ms)")
    if not outcome["delivered"]:
        raise SystemExit(1)
