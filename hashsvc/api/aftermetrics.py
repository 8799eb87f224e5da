"""Metrics of what happens after a match: events per type and decision, open reviews and the oldest one's age,
quarantined items, retro-hunt hits, webhook deliveries, failures and lag.

Counters are counted where the work happens (the event writer, the deliverer); gauges of store-wide state are
read from the store when /metrics is scraped, so every replica reports the same values.
"""

from __future__ import annotations

import collections

from flask import Flask
from prometheus_client import Counter, Gauge, Histogram

from hashsvc.service.service import Service
from hashsvc.store import aftermatch
from hashsvc.store import webhooks as webhook_table
from hashsvc.store.aftermatch import NewEvent, Recorded
from hashsvc.store.webhooks import Outcome

EVENTS = Counter("hashsvc_events_total", "Match events recorded", ["type", "decision"])
QUARANTINES = Counter("hashsvc_quarantines_total", "Items quarantined by the flood guard")
RETROHUNT_HITS = Counter("hashsvc_retrohunt_hits_total", "Retained uploads matched by newly added items")
DELIVERIES = Counter("hashsvc_webhook_deliveries_total", "Webhook delivery attempts", ["outcome"])
DELIVERY_LAG = Histogram(
    "hashsvc_webhook_delivery_lag_seconds",
    "From the event to its delivery",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 60, 600, 3600),
)
OPEN_REVIEWS = Gauge("hashsvc_reviews_open", "Open reviews", multiprocess_mode="max")
OLDEST_REVIEW = Gauge("hashsvc_reviews_oldest_age_seconds", "Age of the oldest open review", multiprocess_mode="max")
QUARANTINED = Gauge("hashsvc_items_quarantined", "Items under quarantine now", multiprocess_mode="max")
BACKLOG = Gauge("hashsvc_webhook_backlog", "Webhook deliveries pending", multiprocess_mode="max")
BACKLOG_AGE = Gauge(
    "hashsvc_webhook_backlog_age_seconds", "Age of the oldest pending delivery", multiprocess_mode="max"
)


def _recorded(batch: list[NewEvent], recorded: Recorded) -> None:
    # One increment per kind of event, not per event: under `serve` each is a write to a memory-mapped file, and a
    # batch of 1,000 lookups writes 1,000 events of one kind.
    for (kind, decision), count in collections.Counter((event.type, event.decision or "") for event in batch).items():
        EVENTS.labels(kind, decision).inc(count)
        if kind == "retrohunt":
            RETROHUNT_HITS.inc(count)
    if recorded.quarantined:
        QUARANTINES.inc(len(recorded.quarantined))
        EVENTS.labels("quarantine", "").inc(len(recorded.quarantined))


def _delivered(outcomes: list[Outcome], lags: list[float]) -> None:
    for outcome in outcomes:
        DELIVERIES.labels("delivered" if outcome.delivered else "failed" if outcome.retry_at is None else "retry").inc()
    for lag in lags:
        DELIVERY_LAG.observe(lag)


def init_app(app: Flask, svc: Service) -> None:
    if _recorded not in svc.after.events.listeners:
        svc.after.events.listeners.append(_recorded)
        svc.after.deliverer.listeners.append(_delivered)


def refresh(svc: Service) -> None:
    engine = svc.store.engine
    count, age = aftermatch.open_review_stats(engine)
    OPEN_REVIEWS.set(count)
    OLDEST_REVIEW.set(age)
    QUARANTINED.set(len(aftermatch.list_quarantines(engine, "active")))
    pending, lag = webhook_table.backlog(engine)
    BACKLOG.set(pending)
    BACKLOG_AGE.set(lag)
