"""The local-feature stage of an image match: after the hash stage, for uploads it did not block.

Flow: the upload's features were extracted in the sandbox job that hashed it (`hash_image(features=...)`); the
feature index proposes the stored items with the most descriptor correspondences (`FeatureIndex.candidates`);
the store says which of them may match now (active item, enabled bank, the bank's feature stage on); each is
verified geometrically (`features.verify_pairs`) until the latency budget is spent, and `feature_policy` decides
what a verified match is worth. Feature matches join the hash matches in the response (algorithm "orb", with
`inliers` and `ratio` where the hash matches have `distance`), and the decision becomes the most severe action
over both.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy.engine import Engine

from hashsvc.features import ALGORITHM, Features, Verification, verify_pairs
from hashsvc.features.index import FeatureIndex
from hashsvc.service import feature_policy, policy
from hashsvc.store.features import FeatureOwner, feature_owners

log = logging.getLogger(__name__)


def wanted(result: dict[str, Any], features: Features | None) -> bool:
    """Whether the stage runs: the upload has features and the hash stage did not already block."""
    return features is not None and len(features) > 0 and result["decision"] != "block"


def find(index: FeatureIndex, engine: Engine, query: Features, budget_s: float) -> list[dict[str, Any]]:
    """The counted feature matches of one upload, most inliers first."""
    started = time.perf_counter()
    candidates = index.candidates(query, min_pairs=feature_policy.MIN_INLIERS)  # fewer pairs cannot count
    if not candidates:
        return []
    owners = feature_owners(engine, [c.item_id for c in candidates])
    matches = []
    for checked, candidate in enumerate(candidates):
        # The best candidate is always verified (one RANSAC, about a millisecond): a slow moment of the machine
        # must not let the most likely match through. The budget bounds the others.
        if checked and time.perf_counter() - started > budget_s:
            log.info("feature stage over its %.0f ms budget: %d of %d candidates left unverified",
                     budget_s * 1000, len(candidates) - checked, len(candidates))
            break
        owner = owners.get(candidate.item_id)
        if owner is None:  # disabled, deleted, its bank disabled or its bank's feature stage off
            continue
        verification = verify_pairs(candidate.query_xy, candidate.stored_xy)
        verdict = feature_policy.judge(verification, owner.action)
        if verdict.counted:
            matches.append({**described(owner, "original", verification), "action": verdict.action})
    matches.sort(key=lambda m: (-policy.SEVERITY[m["action"]], -m["inliers"], m["item_id"]))
    return matches


def described(owner: FeatureOwner, variant: str, verification: Verification) -> dict[str, Any]:
    """The fields every local-feature match (of an image or of a video) starts with, in the answer's order."""
    return {
        "bank": owner.bank,
        "item_id": owner.item_id,
        "reference": owner.external_ref,
        "category": owner.category,
        "algorithm": ALGORITHM,
        "variant": variant,
        "inliers": verification.inliers,
        "ratio": round(verification.ratio, 3),
    }


def combine(result: dict[str, Any], matches: list[dict[str, Any]]) -> dict[str, Any]:
    """The hash stage's result with the feature matches added after its own, and the decision re-taken."""
    if not matches:
        return result
    worst = max(policy.SEVERITY[result["decision"]], *(policy.SEVERITY[m["action"]] for m in matches))
    return {**result, "decision": policy.DECISIONS[worst], "matches": [*result["matches"], *matches]}
