"""The robustness benchmark runs the local-feature stage as the service does: one index of the stored originals,
the policy's inlier rule, and an original looked up as a query never competing with itself."""

from __future__ import annotations

import pytest
from images import encode, photo
from PIL import Image

from hashsvc import media
from hashsvc.bench import feature_stage
from hashsvc.features import MAX_STORED, Features, extract, extract_query


def _features(image: Image.Image) -> Features:
    return extract(media.decode_first(encode(image)).pixels, MAX_STORED)


def _upload(image: Image.Image) -> Features:
    """The features the match path extracts from an upload of `image`."""
    return extract_query(media.decode_first(encode(image)).pixels)


@pytest.fixture(scope="module")
def originals() -> list[Image.Image]:
    return [photo(640, 480, seed) for seed in range(3)]


@pytest.fixture(scope="module")
def stored(originals: list[Image.Image]) -> list[Features | None]:
    # item 3 has too few features to be stored (Service._feature_row's rule); item 4 has none at all
    few = _features(photo(640, 480, 7))
    few = Features(few.positions[:10], few.descriptors[:10])
    return [*(_features(image) for image in originals), few, None]


def test_only_items_with_enough_features_are_stored(stored: list[Features | None]) -> None:
    index = feature_stage.stored_index(stored)
    assert len(index) == 3 and 3 not in index and 4 not in index
    assert not feature_stage.storable(Features.empty()) and feature_stage.storable(stored[0])
    assert len(feature_stage.stored_index([None, Features.empty()])) == 0


def test_an_offgrid_crop_counts_for_its_own_original_only(originals, stored) -> None:
    index = feature_stage.stored_index(stored)
    w, h = originals[1].size
    crop = originals[1].crop((round(w * 0.12), round(h * 0.05), w - round(w * 0.04), h - round(h * 0.11)))
    assert feature_stage.counted_items(index, _upload(crop)) == [1]
    assert feature_stage.counted_items(index, _upload(photo(640, 480, 11))) == []
    assert feature_stage.counted_items(index, None) == [] and feature_stage.counted_items(index, Features.empty()) == []


def test_an_original_as_a_query_is_looked_up_without_itself(originals, stored) -> None:
    index = feature_stage.stored_index(stored)
    assert feature_stage.counted_items(index, _upload(originals[0])) == [0]
    assert feature_stage.counted_items(index, _upload(originals[0]), exclude={0}) == []
