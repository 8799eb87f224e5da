"""The local-feature stage's rule: when a geometric match counts, and what it asks for.

Kept apart from `policy` (the hash rules) so that each stage has one place for its numbers; `Service` combines
the two (the feature stage runs only when the hash stage did not block, and its matches join the decision as the
most severe action over all counted matches, as the hash rule does). scripts/bench_features.py evaluates this
module, so the benchmark applies exactly the rule the service applies. The numbers and how they were chosen
are in docs/local-features.md ("Calibration").

* A feature match counts when at least MIN_INLIERS keypoints fit one similarity transform AND they are at
  least MIN_RATIO of the correspondences found: unrelated photos in the corpus reached at most a handful of
  inliers, with a low ratio (most correspondences between unrelated images are chance and scatter), while off-grid
  crops of 10-20% keep dozens, most of them consistent.
* A counted match carries the bank's action (block, review or log), like a PDQ match within threshold: the
  geometric check is the evidence a PDQ distance is for the hash stage.
"""

from __future__ import annotations

from dataclasses import dataclass

from hashsvc.features import Verification

MIN_INLIERS = 30
MIN_RATIO = 0.30


@dataclass(frozen=True)
class FeatureVerdict:
    counted: bool
    action: str  # block | review | log (the bank's action when counted)


def counts(verification: Verification) -> bool:
    """Whether a geometric match is strong enough to act on."""
    return verification.inliers >= MIN_INLIERS and verification.ratio >= MIN_RATIO


def judge(verification: Verification, bank_action: str) -> FeatureVerdict:
    if not counts(verification):
        return FeatureVerdict(False, "log")
    return FeatureVerdict(True, bank_action)
