"""Calibrating the policy's issue-12 rules on the tune half: sweeps of each constant through the service's `decide`.

For each candidate value the whole full-policy evaluation is redone on the same pair arrays (each edit with
its own original; every (edit, other original) pair; every ordered pair of distinct originals; every hard
negative against every original), so the tables show exactly what the rule would do:

* information: `INFORMATIVE_MIN_QUALITY` x `INFORMATIVE_MIN_DHASH_BITS` -> recall (block; block or review) and
  false reviews / blocks among all negatives;
* low-quality PDQ: `LOW_QUALITY_PDQ_BLOCK_MAX` -> the same, plus how many edits with a low-quality query view
  move from review to block, and the closest corroborated low-quality PDQ match among the negatives (the
  margin, as for the corroborated band).

The constants are set on `hashsvc.service.policy` for the duration of each evaluation and restored after.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from hashsvc.bench.robustness import (
    AUGMENTS,
    PairArrays,
    Tables,
    Thresholds,
    _pair_arrays,
    near_duplicate_mask,
    policy_decisions,
)
from hashsvc.service import policy

QUALITIES = (0, 10, 20, 30, 40, 50)
DHASH_BITS = (0, 4, 8, 12, 16, 20)
LOW_QUALITY_BANDS = (0, 2, 4, 8, 12, 16, 24, 31)


@contextlib.contextmanager
def constants(**values: int) -> Iterator[None]:
    saved = {name: getattr(policy, name) for name in values}
    try:
        for name, value in values.items():
            setattr(policy, name, value)
        yield
    finally:
        for name, value in saved.items():
            setattr(policy, name, value)


@dataclass
class Arrays:
    own: PairArrays
    negatives: list[PairArrays]  # cross pairs, ordered pairs of distinct originals, hard negatives


def arrays(t: Tables, near_duplicates: Sequence[tuple[str, str]]) -> Arrays:
    full = AUGMENTS[-1]
    queries = {name: getattr(t, name) for name in ("pdq", "phash", "dhash", "phash8", "dhash8")}
    originals = {name: getattr(t, f"o_{name}") for name in queries}
    same = near_duplicate_mask(t.names, near_duplicates)
    q = np.arange(len(t.own))
    own = _pair_arrays(queries, t.quality, t.dbal, t.md5_equal[q, t.own], q, t.own, full)
    qi, ni = np.nonzero(~same[t.own])
    negatives = [_pair_arrays(queries, t.quality, t.dbal, t.md5_equal[qi, ni], qi, ni, full)]
    ai, bi = np.nonzero(~same)
    negatives.append(_pair_arrays(originals, t.o_quality, t.o_dbal, t.o_md5_equal[ai, bi], ai, bi, full))
    if t.negatives:
        hi, hn = (x.ravel() for x in np.meshgrid(np.arange(len(t.negatives)), np.arange(len(t.names)),
                                                  indexing="ij"))
        negatives.append(_pair_arrays(t.h, t.h["quality"], t.h["dbal"], np.zeros(hi.size, dtype=bool), hi, hn, full))
    return Arrays(own, negatives)


def _outcome(a: Arrays, th: Thresholds) -> dict[str, float | int]:
    own = policy_decisions(a.own, th)
    negatives = np.concatenate([policy_decisions(n, th) for n in a.negatives])
    low = (a.own.quality < policy.PDQ_MIN_QUALITY).any(axis=1)
    return {"recall_block": float((own == 2).mean()), "recall_review": float((own >= 1).mean()),
            "low_quality_edits": int(low.sum()), "low_quality_blocked": int((own[low] == 2).sum()),
            "negative_blocks": int((negatives == 2).sum()), "negative_reviews": int((negatives >= 1).sum())}


def closest_corroborated_low_quality(a: Arrays, th: Thresholds) -> int | None:
    """The smallest PDQ distance, among negatives, of a probe whose view has PDQ quality below 50 and whose
    pHash or dHash (upright or turned, informative view) is within threshold of the same original."""
    best: int | None = None
    for n in a.negatives:
        informative = (n.quality >= policy.INFORMATIVE_MIN_QUALITY) & (n.dbal >= policy.INFORMATIVE_MIN_DHASH_BITS)
        short = ((np.minimum(n.phash, n.phash8) <= th.phash) | (np.minimum(n.dhash, n.dhash8) <= th.dhash))
        corroborated = (short & informative).any(axis=1)
        low = n.quality < policy.PDQ_MIN_QUALITY
        candidates = n.pdq[low & corroborated[:, None]]
        if candidates.size:
            value = int(candidates.min())
            best = value if best is None else min(best, value)
    return best


def calibrate(t: Tables, th: Thresholds, near_duplicates: Sequence[tuple[str, str]]) -> dict[str, object]:
    a = arrays(t, near_duplicates)
    information = []
    for quality in QUALITIES:
        for bits in DHASH_BITS:
            with constants(INFORMATIVE_MIN_QUALITY=quality, INFORMATIVE_MIN_DHASH_BITS=bits):
                information.append({"min_quality": quality, "min_dhash_bits": bits, **_outcome(a, th)})
    low_quality = []
    for band in LOW_QUALITY_BANDS:
        with constants(LOW_QUALITY_PDQ_BLOCK_MAX=band):
            low_quality.append({"band": band, **_outcome(a, th)})
    return {"information": information, "low_quality": low_quality,
            "closest_corroborated_low_quality_negative": closest_corroborated_low_quality(a, th),
            "chosen": {"INFORMATIVE_MIN_QUALITY": policy.INFORMATIVE_MIN_QUALITY,
                       "INFORMATIVE_MIN_DHASH_BITS": policy.INFORMATIVE_MIN_DHASH_BITS,
                       "LOW_QUALITY_PDQ_BLOCK_MAX": policy.LOW_QUALITY_PDQ_BLOCK_MAX}}


def markdown(result: dict[str, object]) -> str:
    lines = ["Information rule (tune half): recall and negatives reaching review/block per setting.", "",
             "| min view quality | min dHash minority bits | recall block | recall block or review "
             "| negatives blocked | negatives block or review |", "|---:|---:|---:|---:|---:|---:|"]
    for row in result["information"]:  # type: ignore[union-attr]
        lines.append(f"| {row['min_quality']} | {row['min_dhash_bits']} | {100 * row['recall_block']:.2f} | "
                     f"{100 * row['recall_review']:.2f} | {row['negative_blocks']} | {row['negative_reviews']} |")
    lines += ["", "Low-quality PDQ rule (tune half): PDQ within this band, query quality < 50, corroborated -> block.",
              "", "| band | recall block | low-quality edits blocked | negatives blocked | negatives block or review |",
              "|---:|---:|---:|---:|---:|"]
    for row in result["low_quality"]:  # type: ignore[union-attr]
        lines.append(f"| {row['band']} | {100 * row['recall_block']:.2f} | {row['low_quality_blocked']} of "
                     f"{row['low_quality_edits']} | {row['negative_blocks']} | {row['negative_reviews']} |")
    lines += ["", "Closest corroborated low-quality PDQ match among negatives: "
              f"{result['closest_corroborated_low_quality_negative']}", ""]
    return "\n".join(lines)
