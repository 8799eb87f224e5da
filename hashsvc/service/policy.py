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
* Information (issue 12): a match from a view that says almost nothing (a star field, a dark scene, a flat
  fill, a sliver a trimmer left) is a chance match waiting to happen. A view is *degenerate* when its PDQ quality
  is below `INFORMATIVE_MIN_QUALITY` or its dHash has fewer than `INFORMATIVE_MIN_DHASH_BITS` bits of the rarer
  value (`hashes.information`). A 64-bit match from a degenerate view neither reviews alone nor corroborates;
  a PDQ match whose query quality is below `INFORMATIVE_MIN_QUALITY` does not review alone either (it is logged).
* 64-bit matches through a rotated or flipped view (`Evidence.dihedral`) only corroborate: eight looks per view
  multiply the chance hits of a 64-bit code, and PDQ's own rotations already find a turned upload.
* Weighing a low-quality PDQ match (issue 12): a PDQ match with query quality below 50 blocks after all when it
  is very close (within `LOW_QUALITY_PDQ_BLOCK_MAX`) and an informative pHash or dHash of the same item agrees;
  otherwise it reviews, as before.
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
# Calibrated on the tune halves (docs/robustness.md, "Calibrating the new rules"): hard negatives benchmarked
# against each other went from 157 reviews to 0 with these two; the corpus's tune half lost no recall.
INFORMATIVE_MIN_QUALITY = 30  # views below this PDQ quality are degenerate
INFORMATIVE_MIN_DHASH_BITS = 12  # ...and views whose dHash has fewer bits of its rarer value
LOW_QUALITY_PDQ_BLOCK_MAX = 8  # a low-quality PDQ match this close, corroborated, blocks
SEVERITY = {"allow": 0, "log": 0, "review": 1, "block": 2}
DECISIONS = ("allow", "review", "block")


@dataclass(frozen=True)
class Evidence:
    """One candidate match, before the policy decides what it is worth."""

    algorithm: str
    distance: int
    threshold: int
    bank_action: str  # block | review | log
    query_quality: int | None = None  # PDQ quality of the query view that matched, when known
    item: int | None = None  # the stored item it points at: evidence on the same item can corroborate
    dhash_bits: int | None = None  # minority bits of that view's dHash (hashes.information), when known
    dihedral: bool = False  # a 64-bit match through a rotated or flipped view of the query


@dataclass(frozen=True)
class Verdict:
    counted: bool  # within threshold (or within the corroborated band, corroborated)
    action: str  # what this match asks for after the policy's downgrades: block | review | log
    reason: str | None = None  # why it was downgraded or counted beyond its threshold, for the response


def is_short(algorithm: str) -> bool:
    """A perceptual hash too short to trust alone at scale (pHash, dHash)."""
    spec = ALGORITHMS.get(algorithm)
    return spec is not None and spec.perceptual and spec.bits < 128


def informative(evidence: Evidence) -> bool:
    """Whether the query view behind this match carries enough structure for a chance match to be rare.
    Unknown measures (a hash set sent without quality) count as informative, as before this rule."""
    if evidence.query_quality is not None and evidence.query_quality < INFORMATIVE_MIN_QUALITY:
        return False
    return evidence.dhash_bits is None or evidence.dhash_bits >= INFORMATIVE_MIN_DHASH_BITS


def corroborated_limit(pdq_threshold: int) -> int:
    """How far PDQ may be and still count when a pHash/dHash of the same item agrees."""
    return max(pdq_threshold, min(pdq_threshold + PDQ_CORROBORATED_EXTRA, PDQ_CORROBORATED_MAX))


def corroborates(evidence: Evidence) -> bool:
    """Whether this match can corroborate a PDQ match on the same item: a 64-bit hash within its threshold,
    from an informative view."""
    return is_short(evidence.algorithm) and evidence.distance <= evidence.threshold and informative(evidence)


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
    quality = evidence.query_quality
    if evidence.algorithm == "pdq" and quality is not None and quality < PDQ_MIN_QUALITY:
        if corroborated and within and evidence.distance <= LOW_QUALITY_PDQ_BLOCK_MAX:
            return Verdict(True, action, f"PDQ quality {quality} < {PDQ_MIN_QUALITY}, but within "
                           f"{LOW_QUALITY_PDQ_BLOCK_MAX} and corroborated by pHash/dHash on the same item")
        if quality < INFORMATIVE_MIN_QUALITY and not corroborated:
            return Verdict(True, "log", f"PDQ quality {quality} < {INFORMATIVE_MIN_QUALITY}: too little to go on")
        return Verdict(True, "review", f"PDQ quality {quality} < {PDQ_MIN_QUALITY}: not used to block")
    if is_short(evidence.algorithm):
        bits = ALGORITHMS[evidence.algorithm].bits
        if not informative(evidence):
            return Verdict(True, "log", f"a {bits}-bit hash of a view with too little structure only corroborates")
        if evidence.dihedral:
            return Verdict(True, "log", f"a {bits}-bit hash of a rotated or flipped view only corroborates")
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
