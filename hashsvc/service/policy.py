"""The match policy: which matches block, which send to review, and which only get logged.

Kept apart from the match plumbing so that the robustness benchmark can evaluate exactly the rules the
service applies (scripts/bench_robustness.py imports `decide`).

The rules, and why:
* A match only counts if its distance is within the bank's threshold for that algorithm (the bank may set
  its own; otherwise the algorithm's default from `hashsvc.hashes.ALGORITHMS`).
* Cryptographic hashes (MD5, SHA-256) match exactly and carry the bank's action as is.
* PDQ within threshold carries the bank's action, unless the query's PDQ quality is below 50: then the hash
  says too little about the image (flat, dark, tiny) and the match is downgraded to `review`.
* A 64-bit hash (pHash, dHash) alone never blocks: at 10M stored hashes a 64-bit code at distance <= 8 is
  hit by chance (sum_{d<=8} C(64, d) / 2^64 * 10^7 ≈ 3e-3 per query, millions of queries a day), so such a
  match is at most `review`. If a 64-bit match agrees with a PDQ or exact match on the same item, it adds
  nothing to the decision; the PDQ or exact match decides.
* The decision is the most severe action over all counted matches: block > review > allow. A bank whose
  action is `log` records matches without affecting the decision.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from hashsvc.hashes import ALGORITHMS

PDQ_MIN_QUALITY = 50
SEVERITY = {"allow": 0, "log": 0, "review": 1, "block": 2}
DECISIONS = ("allow", "review", "block")


@dataclass(frozen=True)
class Evidence:
    """One candidate match, before the policy decides what it is worth."""

    algorithm: str
    distance: int
    threshold: int
    bank_action: str  # block | review | log
    query_quality: int | None = None  # PDQ quality of the query image, when known


@dataclass(frozen=True)
class Verdict:
    counted: bool  # within threshold
    action: str  # what this match asks for after the policy's downgrades: block | review | log
    reason: str | None = None  # why it was downgraded, for the response


def judge(evidence: Evidence) -> Verdict:
    """What one match is worth under the policy."""
    if evidence.distance > evidence.threshold:
        return Verdict(False, "log", "distance above threshold")
    action = evidence.bank_action
    if action != "block":
        return Verdict(True, action)
    if evidence.algorithm == "pdq" and evidence.query_quality is not None and evidence.query_quality < PDQ_MIN_QUALITY:
        return Verdict(True, "review", f"PDQ quality {evidence.query_quality} < {PDQ_MIN_QUALITY}: not used to block")
    if ALGORITHMS[evidence.algorithm].perceptual and ALGORITHMS[evidence.algorithm].bits < 128:
        return Verdict(True, "review", f"a {ALGORITHMS[evidence.algorithm].bits}-bit hash alone never blocks")
    return Verdict(True, "block")


def decide(evidence: Iterable[Evidence]) -> str:
    """The one decision for a query: the most severe action among its counted matches."""
    worst = 0
    for item in evidence:
        verdict = judge(item)
        if verdict.counted:
            worst = max(worst, SEVERITY[verdict.action])
    return DECISIONS[worst]
