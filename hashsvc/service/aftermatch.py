"""What happens after a match, composed: events, the flood guard, allowlists, reviews, webhooks, background work.

`Service` holds one `AfterMatch` and calls it at two points of the match path (`adjust` before deciding, `record`
after); everything else (the review queue, quarantines, webhooks) is reached through its attributes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from hashsvc.config import Settings
from hashsvc.service import allowlist, floodguard
from hashsvc.service.background import Background
from hashsvc.service.disclosure import Caller
from hashsvc.service.events import EventRecorder, MatchContext, match_event
from hashsvc.service.retrohunt import RetroHunter, UploadRetainer
from hashsvc.service.reviews import Reviews
from hashsvc.service.webhooks import Deliverer, Webhooks
from hashsvc.store import Store, aftermatch
from hashsvc.store import webhooks as webhook_table
from hashsvc.store.aftermatch import FloodRule
from hashsvc.store.owners import HashOwner
from hashsvc.store.transactions import utcnow

PRUNE_PERIOD_S = 60.0
DELIVERY_PERIOD_S = 0.1
RETROHUNT_PERIOD_S = 1.0


class AfterMatch:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        flood = FloodRule(settings.flood_max_contents, settings.flood_window_s) if settings.flood_max_contents else None
        self.events = EventRecorder(store, flush_s=settings.events_flush_s, buffer=settings.events_buffer, flood=flood)
        self.reviews = Reviews(store, settings.review_claim_s)
        self.webhooks = Webhooks(store, settings.webhook_allowed_networks, settings.webhook_timeout_s)
        self.deliverer = Deliverer(
            store,
            allowed_networks=settings.webhook_allowed_networks,
            timeout_s=settings.webhook_timeout_s,
            retry_for_s=settings.webhook_retry_for_s,
        )
        self.background = Background(store, settings.lease_ttl_s)
        self.background.add("webhook-deliverer", DELIVERY_PERIOD_S, self._deliver)
        self.background.add("pruner", PRUNE_PERIOD_S, self.prune)
        self.retainer: UploadRetainer | None = None
        self.hunter: RetroHunter | None = None
        if settings.retrohunt_days > 0:
            self.retainer = UploadRetainer(store)
            self.events.extra_writers.append(self.retainer.write)
            self.hunter = RetroHunter(store, settings.retrohunt_days)
            self.background.add("retrohunt", RETROHUNT_PERIOD_S, self.hunter.run)

    def _deliver(self) -> int:
        """The background pass: the deliverer renews the lease between its rounds, and stops if it was lost."""
        self.deliverer.still_mine = lambda: self.background.holds("webhook-deliverer")
        try:
            return self.deliverer.deliver_once()
        finally:
            self.deliverer.still_mine = lambda: True

    def start_background(self) -> None:
        self.background.start()

    def close(self) -> None:
        self.background.stop()
        self.events.close()
        self.deliverer.close()

    # ------------------------------------------------------------------------------------ the match path

    def adjust(
        self, candidates: list[dict[int, tuple[str, int, str]]], owners: dict[int, HashOwner]
    ) -> tuple[set[int], list[list[dict[str, Any]]]]:
        """Before deciding: quarantined items block no more (owners changed in place), and allowlists suppress
        (candidates changed in place). Returns the quarantined item ids and, per query, what was suppressed."""
        held = floodguard.apply(self.store, owners) if owners else set()
        suppressed = [allowlist.suppress(found, owners) for found in candidates]
        return held, suppressed

    def record(
        self, caller: Caller | None, context: MatchContext, hashes: dict[str, Any], result: dict[str, Any]
    ) -> None:
        """After deciding: buffer the event the result makes, if any (never blocks on the store unless the
        buffer is full)."""
        self.record_many(caller, [(context, hashes, result)])

    def record_many(
        self, caller: Caller | None, decided: Iterable[tuple[MatchContext, dict[str, Any], dict[str, Any]]]
    ) -> None:
        """`record` for each (context, hashes, result) of a batch, its events buffered in one go and in order."""
        if not self.settings.record_events:
            return
        key_name = caller.key.name if caller is not None else None
        sample = self.settings.events_allow_sample
        made = []
        retained = False
        at = utcnow()  # the sets of a batch were decided together; their events share the moment
        for context, hashes, result in decided:
            event = match_event(key_name, context, hashes, result, sample, at)
            if event is not None:
                made.append(event)
            if self.retainer is not None:
                pdq = hashes.get("pdq")
                value, quality = (pdq.get("value"), pdq.get("quality")) if isinstance(pdq, dict) else (pdq, None)
                if isinstance(value, str):
                    self.retainer.keep(caller, context, bytes.fromhex(value), quality)
                    retained = True
        if made:
            self.events.add_many(made)
        if retained:
            self.events.kick()

    # --------------------------------------------------------------------------------------- listing etc.

    def list_events(self, where: aftermatch.EventFilter, limit: int) -> dict[str, Any]:
        self.events.flush()  # this process's own recent events are visible at once
        found = aftermatch.list_events(self.store.engine, where, limit)
        return {"events": found, "next_before_id": found[-1]["id"] if len(found) == limit else None}

    def prune(self) -> int:
        retention = dt.timedelta(days=self.settings.events_retention_days)
        before = utcnow() - retention
        aftermatch.prune(self.store.engine, before)
        webhook_table.prune(self.store.engine, before)
        if self.hunter is not None:
            self.hunter.prune()
        return 0
