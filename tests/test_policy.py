"""The decision policy: what each kind of match is worth, and how matches on one item corroborate each other."""

from __future__ import annotations

from hashsvc.service import policy
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


def short(algorithm: str, distance: int, *, quality: int | None = 100, bits: int | None = 32,
          turned: bool = False, item: int = 1) -> Evidence:
    return Evidence(algorithm, distance, 8, "block", quality, item, bits, turned)


def test_a_degenerate_view_neither_reviews_nor_corroborates() -> None:
    flat = policy.INFORMATIVE_MIN_QUALITY - 1
    few = policy.INFORMATIVE_MIN_DHASH_BITS - 1
    assert decide([short("dhash", 1)]) == "review"
    assert decide([short("dhash", 1, bits=few)]) == "allow"  # a star field's dHash: mostly zeros
    assert decide([short("phash", 1, quality=flat)]) == "allow"
    assert "too little structure" in (judge(short("dhash", 1, bits=few)).reason or "")
    assert decide([pdq(40), short("dhash", 5)]) == "block"
    assert decide([pdq(40), short("dhash", 5, bits=few)]) == "allow"
    assert decide([pdq(40), short("phash", 5, quality=flat)]) == "allow"


def test_turned_64_bit_matches_only_corroborate() -> None:
    assert decide([short("phash", 0, turned=True)]) == "allow"
    assert "rotated or flipped" in (judge(short("phash", 0, turned=True)).reason or "")
    assert decide([pdq(40), short("phash", 6, turned=True)]) == "block"  # a mirrored, shrunk, recompressed upload


def test_a_very_close_corroborated_low_quality_pdq_match_blocks() -> None:
    band = policy.LOW_QUALITY_PDQ_BLOCK_MAX
    low = policy.PDQ_MIN_QUALITY - 1
    assert decide([pdq(band, quality=low), short("phash", 0)]) == "block"
    assert "corroborated" in (judge(pdq(band, quality=low), corroborated=True).reason or "")
    assert decide([pdq(band + 1, quality=low), short("phash", 0)]) == "review"
    assert decide([pdq(band, quality=low)]) == "review"  # not corroborated
    assert decide([pdq(band, quality=low), short("phash", 0, item=2)]) == "review"  # another item
    assert decide([pdq(band, quality=low), short("dhash", 0, bits=0)]) == "review"  # a degenerate view


def test_pdq_from_a_view_with_almost_no_structure_is_only_logged() -> None:
    near_zero = policy.INFORMATIVE_MIN_QUALITY - 1
    assert decide([pdq(3, quality=near_zero)]) == "allow"
    verdict = judge(pdq(3, quality=near_zero))
    assert verdict.counted and verdict.action == "log"
