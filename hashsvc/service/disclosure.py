"""What a match answer may show a caller whose key discloses decisions only (or whose query looks like probing).

A decision-only answer says what to do and why at the level of bank and item: the decision, and per match the
bank, category, reference, algorithm, variant and action. It drops everything numeric that is derived from the
stored hashes (distance, threshold), the item id, and the policy's `note`, whose text names thresholds and
distance bands ("PDQ above 31...", "over 3 bits away"). With them gone, each answer tells at most which side of
the decision boundary a query fell on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hashsvc.store.records import Actor, ApiKey

DECISION_FIELDS = ("bank", "category", "reference", "algorithm", "variant", "action")


def redact(result: dict[str, Any]) -> dict[str, Any]:
    """A match result (`decision`, `matches`, `index`...) with each match cut down to DECISION_FIELDS.

    Matches that differ only in the dropped fields (two crops of one item, both in the same bank) collapse into
    one, so that their count says nothing either."""
    matches = []
    for match in result["matches"]:
        shown = {name: match[name] for name in DECISION_FIELDS}
        if "partner" in match:  # a feed's entry id and labels: whom to report the match to, nothing numeric
            shown["partner"] = match["partner"]
        if shown not in matches:
            matches.append(shown)
    return {**result, "matches": matches}


@dataclass(frozen=True)
class Caller:
    """Who asks for a match: the API key (its disclosure and name) and the client's address, for the audit log."""

    key: ApiKey
    remote_addr: str | None = None

    @property
    def actor(self) -> Actor:
        return Actor(self.key.name, self.remote_addr)
