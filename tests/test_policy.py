"""The decision policy: what each kind of match is worth, and how matches on one item corroborate each other."""

from __future__ import annotations

from hashsvc.service.policy import Evidence, corroborated_limit, decide, judge


def pdq(distance: int, *, item: int = 1, quality: int = 100, threshold: int = 31, action: str = "block") -> Evidence:
    return Evidence("pdq", distance, threshold, action, quality, item)


def phash(distance: int, *, item: int = 1, threshold: int = 8) -> Evidence:
    return Evidence("phash", distance, threshold, "block", None, item)


def test_pdq_within_threshold_carries_the_bank_action() -> None:
    assert decide([pdq(31)]) == "block"
    assert decide([pdq(31, action="review")]) == "review"
    assert decide([pdq(31, action="log")]) == "allow"
    assert decide([pdq(32)]) == "allow"


def test_low_quality_queries_only_review() -> None:
    assert decide([pdq(10, quality=49)]) == "review"
    assert "quality" in (judge(pdq(10, quality=49)).reason or "")


def test_a_64_bit_hash_alone_reviews_only_when_very_close() -> None:
    assert decide([phash(3)]) == "review"
    assert decide([phash(4)]) == "allow"
    verdict = judge(phash(8))
    assert verdict.counted and verdict.action == "log"
    assert decide([phash(9)]) == "allow"


def test_pdq_just_beyond_threshold_blocks_when_phash_agrees_on_the_same_item() -> None:
    assert decide([pdq(44), phash(8)]) == "block"
    assert "corroborated" in (judge(pdq(44), corroborated=True).reason or "")
    assert decide([pdq(44)]) == "allow"
    assert decide([pdq(45), phash(0)]) == "review"  # beyond the band; the exact pHash alone reviews
    assert decide([pdq(44, item=1), phash(5, item=2)]) == "allow"  # different items do not corroborate
    assert decide([pdq(40), phash(9)]) == "allow"  # pHash beyond its own threshold does not either


def test_a_corroborated_match_keeps_the_other_downgrades() -> None:
    assert decide([pdq(40, quality=30), phash(2)]) == "review"
    assert decide([pdq(40, action="review"), phash(6)]) == "review"


def test_the_corroborated_band_follows_the_bank_threshold() -> None:
    assert corroborated_limit(31) == 44
    assert corroborated_limit(20) == 33  # a bank that tightens PDQ tightens the band too
    assert corroborated_limit(50) == 50  # one that loosens it gets no band beyond its own threshold
    assert decide([pdq(34, threshold=20), phash(1)]) == "review"  # only the pHash, 1 bit away
