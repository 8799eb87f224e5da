"""The review queue: what happens after a `review` decision.

Each `review` event opens a review (its id is the event's). An analyst claims it (a lease of
`review_claim_s`, decided by one conditional UPDATE in the store, so two analysts on two replicas never work one
review), then resolves it:

* `confirmed`: the upload is what the bank holds. With `add_to_bank`, the upload's hashes become a new item there.
* `false_positive`: the match was wrong. With `disable_item`, the matched item stops matching everywhere; with
  `allowlist_bank`, the upload's perceptual hashes go into that allowlist bank (action `allow`), so that this image
  and its near-duplicates stop being held by the listed item while the item keeps matching everything else.
* `dismissed`: nothing to do (a duplicate report, a test).

Every claim and resolution is in the audit log; a resolution is also an event (`review_resolved`) for webhooks.
`on_resolve` is where follow-ups hook in: each callable gets the resolved review and its event (the lead wires
partner-feed feedback, "report this false positive to the partner", here).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from hashsvc.errors import ValidationError
from hashsvc.service.allowlist import ALLOW
from hashsvc.store import Actor, Store, aftermatch, validation
from hashsvc.store.aftermatch import NewEvent, ReviewFilter
from hashsvc.store.transactions import utcnow
from hashsvc.vocabulary import REVIEW_RESOLUTIONS

RESOLUTIONS = REVIEW_RESOLUTIONS
OPTIONS = {"confirmed": {"add_to_bank"}, "false_positive": {"disable_item", "allowlist_bank"}, "dismissed": set()}
PERCEPTUAL = ("pdq", "phash", "dhash")
MAX_PAGE = 1000

OnResolve = Callable[[dict[str, Any], dict[str, Any]], None]


class Reviews:
    def __init__(self, store: Store, claim_s: float) -> None:
        self.store = store
        self.claim_s = claim_s
        self.on_resolve: list[OnResolve] = []

    def list(
        self,
        *,
        status: str | None = "open",
        bank: str | None = None,
        category: str | None = None,
        min_age_s: float | None = None,
        after_id: int | None = None,
        limit: int = 100,
    ) -> dict[str, Any]:
        if status not in (None, "open", "resolved"):
            raise ValidationError("status must be 'open' or 'resolved'")
        if not 1 <= limit <= MAX_PAGE:
            raise ValidationError(f"limit must be from 1 to {MAX_PAGE}")
        older = utcnow() - timedelta(seconds=min_age_s) if min_age_s else None
        found = aftermatch.list_reviews(self.store.engine, ReviewFilter(status, bank, category, older, after_id), limit)
        return {"reviews": found, "next_after_id": found[-1]["id"] if len(found) == limit else None}

    def get(self, review_id: int) -> dict[str, Any]:
        review = aftermatch.get_review(self.store.engine, review_id)
        return {**review, "event": aftermatch.get_event(self.store.engine, review_id)}

    def claim(self, review_id: int, actor: Actor) -> dict[str, Any]:
        review = aftermatch.claim_review(self.store.engine, review_id, actor.name, self.claim_s)
        self.store.record_audit(
            actor,
            "review.claim",
            bank=review["bank"],
            item_id=review["item_id"],
            details={"review_id": review_id, "until": review["claim_expires_at"]},
        )
        return review

    def resolve(self, review_id: int, body: Mapping[str, Any], actor: Actor) -> dict[str, Any]:
        """Resolve a review (see the module docstring). Raises ValidationError, NotFoundError, ConflictError."""
        if not isinstance(body, Mapping):
            raise ValidationError('send {"resolution": "confirmed" | "false_positive" | "dismissed", "reason": "..."}')
        resolution = body.get("resolution")
        if resolution not in RESOLUTIONS:
            raise ValidationError(f"resolution must be one of {', '.join(RESOLUTIONS)}")
        allowed = OPTIONS[resolution] | {"resolution", "reason"}
        unknown = sorted(str(k) for k in set(body) - allowed)
        if unknown:
            raise ValidationError(f"unknown field(s) for {resolution}: {', '.join(unknown)}")
        reason = validation.text("reason", body.get("reason"))
        self._check_options(body)
        # Claim first (or renew one's own claim): the follow-up below then runs for one analyst only.
        review = aftermatch.claim_review(self.store.engine, review_id, actor.name, self.claim_s)
        event = aftermatch.get_event(self.store.engine, review_id)
        outcome = self._follow_up(review, event, body, actor, reason)
        resolved = aftermatch.resolve_review(self.store.engine, review_id, actor.name, resolution, reason, outcome)
        self.store.record_audit(
            actor,
            "review.resolve",
            bank=review["bank"],
            item_id=review["item_id"],
            details={"review_id": review_id, "resolution": resolution, "reason": reason, **outcome},
        )
        aftermatch.insert_events(
            self.store.engine,
            [
                NewEvent(
                    "review_resolved",
                    utcnow(),
                    f"review:{review_id}",
                    key_name=actor.name,
                    content_id=event["content_id"],
                    decision=event["decision"],
                    metadata=event["metadata"],
                    matches=event["matches"],
                    details={"review_id": review_id, "resolution": resolution, "reason": reason, **outcome},
                    webhook_type="review_resolved",
                )
            ],
        )
        for callback in self.on_resolve:
            callback(resolved, event)
        return resolved

    def _check_options(self, body: Mapping[str, Any]) -> None:
        for name in ("add_to_bank", "allowlist_bank"):
            if name in body:
                bank = self.store.get_bank(validation.lookup(name, body[name]))
                if name == "allowlist_bank" and bank.action != ALLOW:
                    raise ValidationError(f"bank {bank.name!r} is not an allowlist (its action is {bank.action!r})")
                if name == "add_to_bank" and bank.action == ALLOW:
                    raise ValidationError(f"bank {bank.name!r} is an allowlist; confirmed content goes elsewhere")
        if "disable_item" in body and not isinstance(body["disable_item"], bool):
            raise ValidationError("disable_item must be true or false")

    def _follow_up(
        self, review: dict[str, Any], event: dict[str, Any], body: Mapping[str, Any], actor: Actor, reason: str | None
    ) -> dict[str, Any]:
        outcome: dict[str, Any] = {}
        note = f"from review {review['id']}" + (f": {reason}" if reason else "")
        if "add_to_bank" in body:
            hashes = _upload_hashes(event["hashes"], perceptual_only=False)
            item = self.store.add_item(
                body["add_to_bank"],
                hashes,
                actor=actor,
                source="review",
                note=note,
                metadata={"review_id": review["id"], "content_id": event["content_id"]},
            )
            outcome["added_item"] = {"bank": item.bank, "item_id": item.id}
        if body.get("disable_item") and review["item_id"] is not None:
            self.store.disable_item(review["item_id"], reason=f"false positive ({note})", actor=actor)
            outcome["disabled_item"] = review["item_id"]
        if "allowlist_bank" in body:
            hashes = _upload_hashes(event["hashes"], perceptual_only=True)
            if not hashes:
                raise ValidationError("the upload has no perceptual hash to allowlist")
            item = self.store.add_item(
                body["allowlist_bank"],
                hashes,
                actor=actor,
                source="review",
                note=note,
                metadata={"review_id": review["id"], "content_id": event["content_id"]},
            )
            outcome["allowlisted_item"] = {"bank": item.bank, "item_id": item.id}
        return outcome


def _upload_hashes(hashes: Mapping[str, Any], *, perceptual_only: bool) -> list[tuple[str, str]]:
    """The event's query hashes as an item's: a low-quality PDQ is left out (it would match unrelated flat images)."""
    found = []
    for algorithm, value in hashes.items():
        if perceptual_only and algorithm not in PERCEPTUAL:
            continue
        if isinstance(value, dict):
            quality = value.get("quality")
            if algorithm == "pdq" and quality is not None and quality < 50:
                continue
            value = value.get("value")
        if isinstance(value, str):
            found.append((algorithm, value))
    return found
