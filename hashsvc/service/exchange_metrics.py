"""Prometheus metrics of partner feeds. Time since the last success is `time() -
hashsvc_exchange_last_success_timestamp_seconds` in PromQL (a gauge of "seconds since" would be stale
between scrapes of a process that does not sync)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

SYNCS = Counter("hashsvc_exchange_syncs_total", "Exchange syncs by outcome", ["exchange", "outcome"])
ENTRIES = Counter(
    "hashsvc_exchange_entries_total",
    "Partner entries fetched, by what the sync did with them (added, updated, retracted, restored, "
    "unchanged, unknown, bad, fetched)",
    ["exchange", "result"],
)
ERRORS = Counter("hashsvc_exchange_errors_total", "Exchange errors by kind", ["exchange", "kind"])
FEEDBACK = Counter("hashsvc_exchange_feedback_total", "False positives reported to partners", ["exchange"])
LAST_SUCCESS = Gauge(
    "hashsvc_exchange_last_success_timestamp_seconds",
    "Unix time of the exchange's last successful sync (this process)",
    ["exchange"],
    multiprocess_mode="max",
)
