"""The local-feature stage inside the robustness benchmark, run the way the service runs it.

In the service (`hashsvc.service.feature_stage`) an upload that the hash stage did not block has its ORB features
looked up in one FAISS index of every stored item's features (`FeatureIndex.candidates`: at most MAX_CANDIDATES
items with at least MIN_INLIERS correspondences), each candidate is checked geometrically (`verify_pairs`) and
`feature_policy.counts` says whether it is a match; a counted match carries the bank's action (here: block). The
benchmark does exactly that with the originals of one half as the stored items, so that "the full policy" in its
tables is the service's: recall counts a feature match on the query's own original, and every feature match on
another original (an edit's, an original's used as a query, a hard negative's) is a false block.

Two differences from the service, both on the side of finding more, not fewer, false matches and recall:
* no latency budget: every candidate is verified (the service always verifies the best one and the others while
  `HASHSVC_FEATURE_BUDGET_MS` lasts);
* an original used as a query does not compete with itself (or its known near-duplicates) for the candidate
  slots: it is looked up as an upload of it would be against a bank that holds the others.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np

from hashsvc.features import Features, verify_pairs
from hashsvc.features.index import MAX_CANDIDATES, FeatureIndex
from hashsvc.service import feature_policy


def storable(features: Features | None) -> bool:
    """Whether the service stores an item's features (`Service._feature_row`: too few can never verify)."""
    return features is not None and len(features) >= feature_policy.MIN_INLIERS


def stored_index(features: Sequence[Features | None]) -> FeatureIndex:
    """The service's feature index (default kind) over these items; item id = position in `features`."""
    items = [i for i, f in enumerate(features) if storable(f)]
    if not items:
        return FeatureIndex()
    kept = [features[i] for i in items]
    return FeatureIndex.from_arrays(
        "ivf",
        np.array(items, dtype=np.int64),
        np.array([len(f) for f in kept], dtype=np.int32),  # type: ignore[arg-type]
        np.concatenate([f.positions for f in kept]),  # type: ignore[union-attr]
        np.concatenate([f.descriptors for f in kept]),  # type: ignore[union-attr]
    )


def counted_items(index: FeatureIndex, query: Features | None, exclude: Collection[int] = ()) -> list[int]:
    """The stored items a feature match counts for, as the service's stage finds them for this upload."""
    if query is None or not len(query):
        return []
    found = index.candidates(query, min_pairs=feature_policy.MIN_INLIERS, max_items=MAX_CANDIDATES + len(exclude))
    found = [c for c in found if c.item_id not in exclude][:MAX_CANDIDATES]
    return [c.item_id for c in found if feature_policy.counts(verify_pairs(c.query_xy, c.stored_xy))]
