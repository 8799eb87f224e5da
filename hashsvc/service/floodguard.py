"""The flood guard: an item that suddenly matches far more distinct uploads than known content does is more likely
a bad hash (a blank frame, a meme, a logo added by mistake) than a wave of abuse, and blocking on it would take
down legitimate posts by the thousand. Such an item is quarantined: its `block` matches drop to `review`, an
event says why, and an analyst re-arms it (it blocks again, its count restarts) or disables it.

The count (distinct content_ids, or uploads without one, within the window) and the quarantine live in the store
(hashsvc.store.aftermatch), decided when events are written; the match path asks the store about the items it
matched, so a quarantine decided on one replica holds on every replica from its next match on.

Defaults (HASHSVC_FLOOD_MAX_CONTENTS=100 per HASHSVC_FLOOD_WINDOW_S=3600): a hash of known illegal content is
re-posted on one platform a handful of times an hour even in bad incidents, while a mistaken hash of something
common matches hundreds to thousands of uploads within minutes. A quarantined item still sends matches to
review, so a true flood of real content is slowed to human speed, never waved through.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hashsvc.errors import ValidationError
from hashsvc.store import Actor, Store, aftermatch
from hashsvc.store.owners import HashOwner

NOTE = "item quarantined by the flood guard: blocks drop to review until an analyst re-arms it"


def apply(store: Store, owners: dict[int, HashOwner]) -> set[int]:
    """Downgrade the owners of quarantined items from block to review, in place; return their item ids."""
    blocking = {owner.item_id for owner in owners.values() if owner.action == "block"}
    if not blocking:
        return set()
    held = aftermatch.quarantined(store.engine, blocking)
    if held:
        for hash_id, owner in owners.items():
            if owner.item_id in held and owner.action == "block":
                owners[hash_id] = replace(owner, action="review")
    return held


def mark(matches: list[dict[str, Any]], held: set[int]) -> None:
    for match in matches:
        if match["item_id"] in held:
            match["note"] = NOTE


def list_quarantines(store: Store, status: str | None) -> list[dict[str, Any]]:
    if status not in (None, "active", "rearmed", "disabled"):
        raise ValidationError("status must be 'active', 'rearmed' or 'disabled'")
    return aftermatch.list_quarantines(store.engine, status)


def release(store: Store, item_id: int, action: str, actor: Actor, reason: str | None) -> dict[str, Any]:
    """`rearm` an item (it blocks again) or `disable` it (it stops matching); both audited."""
    if action == "rearm":
        done = aftermatch.set_quarantine(store.engine, item_id, "rearmed", actor.name)
    elif action == "disable":
        done = aftermatch.set_quarantine(store.engine, item_id, "disabled", actor.name)
        store.disable_item(item_id, reason=reason or "disabled after a flood-guard quarantine", actor=actor)
    else:
        raise ValidationError("action must be 'rearm' or 'disable'")
    store.record_audit(actor, f"quarantine.{action}", bank=done["bank"], item_id=item_id, details={"reason": reason})
    return done
