"""The match policy: which matches block, which send to review, and which only get logged.

Kept apart from the match plumbing so that the robustness benchmark can evaluate exactly the rules the
service applies (scripts/bench_robustness.py imports `decide`). The numbers behind each rule are in
docs/robustness.md ("Calibrating the policy").

The rules, and why:
* A match counts if its distance is within the bank's threshold for that algorithm (the bank may set its own;
  otherwise the algorithm's default from `hashsvc.hashes.ALGORITHMS`: PDQ 31, pHash and dHash 8).
* Cryptographic hashes (MD5, SHA-256) match exactly and carry the bank's action as is.
* PDQ within threshold carries the bank's action, unless the query's PDQ quality is below 50: then the hash
  says too little about the image (flat, dark, tiny) and the match is downgraded to `review`.
* PDQ a little beyond the threshold (up to `corroborated_limit`: 44 for the default 31; a bank that tightens
  PDQ tightens this too) carries the bank's action when a pHash or dHash of the same item also matches within
  its threshold: two hashes computed differently agreeing on one
  item. Edits that push PDQ just past 31 (small crops, shrinking a small image, a 2 degree tilt) mostly keep
  pHash within 8. In the benchmark no pair of distinct images met both conditions up to PDQ 52; the band stops
  at 44 to keep a margin.
* A 64-bit hash (pHash, dHash) alone never blocks: at 10M stored hashes, a 64-bit code at distance <= 8 is hit
  by chance far too often (the corpus had distinct originals 4 bits apart in pHash, and 4e-6 of (edit, other
  original) pairs within 5 bits). Alone it sends to review only within `SHORT_HASH_REVIEW_MAX` bits; further
  out it is logged and only serves to corroborate PDQ.
* The decision is the most severe action over all counted matches: block > review > allow. A bank whose
  action is `log` records matches without affecting the decision.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from hashsvc.hashes import ALGORITHMS

PDQ_MIN_QUALITY = 50
PDQ_CORROBORATED_MAX = 44  # PDQ distance up to which a pHash/dHash match on the same item still counts...
PDQ_CORROBORATED_EXTRA = 13  # ...and at most this far beyond the bank's own PDQ threshold (31 + 13 = 44)
SHORT_HASH_REVIEW_MAX = 3  # a 64-bit hash alone sends to review only this close
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
    item: int | None = None  # the stored item it points at: evidence on the same item can corroborate


@dataclass(frozen=True)
class Verdict:
    counted: bool  # within threshold (or within the corroborated band, corroborated)
    action: str  # what this match asks for after the policy's downgrades: block | review | log
    reason: str | None = None  # why it was downgraded or counted beyond its threshold, for the response


def is_short(algorithm: str) -> bool:
    """A perceptual hash too short to trust alone at scale (pHash, dHash)."""
    spec = ALGORITHMS[algorithm]
    return spec.perceptual and spec.bits < 128


def corroborated_limit(pdq_threshold: int) -> int:
    """How far PDQ may be and still count when a pHash/dHash of the same item agrees."""
    return max(pdq_threshold, min(pdq_threshold + PDQ_CORROBORATED_EXTRA, PDQ_CORROBORATED_MAX))


def corroborates(evidence: Evidence) -> bool:
    """Whether this match can corroborate a PDQ match on the same item: a 64-bit hash within its threshold."""
    return is_short(evidence.algorithm) and evidence.distance <= evidence.threshold


def judge(evidence: Evidence, corroborated: bool = False) -> Verdict:
    """What one match is worth under the policy; `corroborated` says a pHash/dHash of the same item matched."""
    within = evidence.distance <= evidence.threshold
    reason = None
    if evidence.algorithm == "pdq" and not within and corroborated:
        if evidence.distance > corroborated_limit(evidence.threshold):
            return Verdict(False, "log", "distance above threshold")
        reason = f"PDQ above {evidence.threshold}, corroborated by pHash/dHash on the same item"
    elif not within:
        return Verdict(False, "log", "distance above threshold")
    action = evidence.bank_action
    if action in ("log", "allow"):  # allow: an allowlist bank (hashsvc.service.allowlist)
        return Verdict(True, action, reason)
    if evidence.algorithm == "pdq" and evidence.query_quality is not None and evidence.query_quality < PDQ_MIN_QUALITY:
        return Verdict(True, "review", f"PDQ quality {evidence.query_quality} < {PDQ_MIN_QUALITY}: not used to block")
    if is_short(evidence.algorithm):
        bits = ALGORITHMS[evidence.algorithm].bits
        if evidence.distance > SHORT_HASH_REVIEW_MAX:
            note = f"a {bits}-bit hash alone, over {SHORT_HASH_REVIEW_MAX} bits away, only corroborates"
            return Verdict(True, "log", note)
        return Verdict(True, "review", f"a {bits}-bit hash alone never blocks")
    return Verdict(True, action, reason)


def corroborated_items(evidence: Iterable[Evidence]) -> set[int]:
    """Items with a pHash or dHash match within threshold."""
    return {e.item for e in evidence if e.item is not None and corroborates(e)}


def decide(evidence: Iterable[Evidence]) -> str:
    """The one decision for a query: the most severe action among its counted matches."""
    evidence = list(evidence)
    backed = corroborated_items(evidence)
    worst = 0
    for item in evidence:
        verdict = judge(item, item.item in backed)
        if verdict.counted:
            worst = max(worst, SEVERITY[verdict.action])
    return DECISIONS[worst]
