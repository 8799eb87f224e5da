"""The console's overview: what happened in the banks lately, and whether the service is keeping up.

One read of several store-wide facts (events per bank and day, open reviews, quarantines, partner feeds) and of
this process's index, so that the console shows the same figures as /metrics and the API, computed once here.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from hashsvc.store import aftermatch
from hashsvc.store.transactions import utcnow

if TYPE_CHECKING:
    from hashsvc.service.service import Service

DEFAULT_DAYS = 14
MAX_DAYS = 90


def overview(svc: Service, days: int = DEFAULT_DAYS, now: dt.datetime | None = None) -> dict[str, Any]:
    """Per-day activity of the last `days` days (UTC, today included), index state, reviews, quarantines, feeds."""
    if not 1 <= days <= MAX_DAYS:
        days = DEFAULT_DAYS
    now = now or utcnow()
    first = (now - dt.timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    bounds = [first + dt.timedelta(days=n) for n in range(days + 1)]
    svc.after.events.flush()  # this process's own recent events count at once
    engine = svc.store.engine
    rows = aftermatch.activity(engine, bounds)
    banks = sorted({row["bank"] for row in rows})
    per_bank = {
        bank: [{"block": 0, "review": 0, "matches": 0} for _ in range(days)] for bank in banks
    }
    for row in rows:
        cell = per_bank[row["bank"]][row["period"]]
        cell["matches"] += row["matches"]
        if row["decision"] in ("block", "review"):
            cell[row["decision"]] += row["events"]
    open_reviews, oldest_s = aftermatch.open_review_stats(engine)
    status = svc.status()
    return {
        "days": [bound.date().isoformat() for bound in bounds[:-1]],
        "activity": per_bank,
        "index": {
            "ready": status["ready"],
            "sequence": status["sequence"],
            "lag": status["lag"],
            "sizes": status["sizes"],
            "error": status["error"],
        },
        "reviews": {"open": open_reviews, "oldest_age_s": round(oldest_s)},
        "quarantined": len(aftermatch.list_quarantines(engine, "active")),
        "exchanges": [
            {
                "name": e["name"],
                "bank": e["bank"],
                "state": e["status"]["state"],
                "last_error": e["status"]["last_error"],
                "last_success_at": e["status"]["last_success_at"],
            }
            for e in svc.exchanges.list()
        ],
    }
