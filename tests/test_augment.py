"""The views hashed besides the image itself: trimmed borders at query time, a grid of crops at index time."""

from __future__ import annotations

import io

import numpy as np
import pytest
from images import encode, photo
from PIL import Image, ImageDraw

from hashsvc.bench.transforms import select
from hashsvc.hashes import compute
from hashsvc.hashes.augment import (
    ANCHORS,
    QUERY_LABELS,
    anchored_crop,
    index_time_variants,
    query_time_variants,
    trim_borders,
)
from hashsvc.hashes.codec import hamming


def _decoded(image: Image.Image, quality: int = 90) -> Image.Image:
    return Image.open(io.BytesIO(encode(image, quality=quality))).convert("RGB")


def _pdq_distance(a: Image.Image, b: Image.Image) -> int:
    return hamming(compute.pdq(np.asarray(a)).code, compute.pdq(np.asarray(b)).code)


@pytest.fixture(scope="module")
def dark_topped() -> Image.Image:
    """A picture whose top edge is mostly a black object: next to black padding it looks like more padding."""
    picture = photo(200, 150, seed=5)
    ImageDraw.Draw(picture).rectangle((0, 0, 150, 30), fill=(0, 0, 0))
    return picture


@pytest.mark.parametrize("name", ["pad_black_20", "pad_white_10", "letterbox_black_20"])
def test_strict_trim_recovers_a_plainly_padded_picture(name, dark_topped) -> None:
    padded = _decoded(select([name])[0].apply(dark_topped))
    strict = trim_borders(padded, strict=True)
    assert strict is not None and abs(strict.width - 200) <= 3 and abs(strict.height - 150) <= 3
    assert _pdq_distance(strict, dark_topped) <= 31


def test_strict_trim_leaves_blurred_fill_alone() -> None:
    edited = _decoded(select(["pad_blur_20"])[0].apply(photo(200, 150, seed=2)))
    assert trim_borders(edited, strict=True) is None


def test_query_views_offer_the_strict_trim_only_when_it_differs() -> None:
    picture = photo(200, 150, seed=1)
    # A caption bar: the lenient rules cut the whole bar, text and all; the strict one only the plain lines above
    # the text. Both views are looked up.
    captioned = _decoded(select(["caption_bar"])[0].apply(picture))
    views = {label: view for label, view, _ in query_time_variants(captioned)}
    assert list(views) == ["trim", "strict"]
    assert abs(views["trim"].height - 150) <= 3 and views["strict"].height > views["trim"].height
    padded = _decoded(select(["pad_black_20"])[0].apply(picture))
    assert [label for label, _, _ in query_time_variants(padded)] == ["trim"]
    assert query_time_variants(picture) == []


def test_query_view_labels_are_declared() -> None:
    padded = _decoded(select(["pad_black_20"])[0].apply(photo(200, 150, seed=5)))
    for label, _, dihedral in query_time_variants(padded):
        assert label in QUERY_LABELS and isinstance(dihedral, bool)


@pytest.mark.parametrize("anchor", ANCHORS)
def test_anchored_crops_keep_the_fraction_asked_for_at_the_anchor(anchor) -> None:
    picture = photo(200, 100, seed=1)
    cropped = anchored_crop(picture, 0.9, anchor)
    assert cropped.size == (180, 90)
    pixels, whole = np.asarray(cropped), np.asarray(picture)
    left = {"centre": 10, "tl": 0, "bl": 0, "tr": 20, "br": 20}[anchor]
    top = {"centre": 5, "tl": 0, "tr": 0, "bl": 10, "br": 10}[anchor]
    assert np.array_equal(pixels, whole[top : top + 90, left : left + 180])


def test_anchored_crop_rejects_an_unknown_anchor() -> None:
    with pytest.raises(ValueError, match="anchor"):
        anchored_crop(photo(50, 50), 0.9, "middle")


@pytest.mark.parametrize("name", ["crop_centre_5", "crop_offcentre_5", "crop_offcentre_10", "crop_offcentre_20"])
def test_a_cropped_reupload_lands_near_one_stored_crop(name) -> None:
    picture = photo(320, 240, seed=4)
    stored = [picture, *(view for _, view in index_time_variants(picture))]
    query = _decoded(select([name])[0].apply(picture, key="k"))
    assert min(_pdq_distance(query, view) for view in stored) <= 31
    assert _pdq_distance(query, picture) > 31  # without the grid it would not match


@pytest.mark.parametrize("name", ["rot_2", "rot_5"])
def test_a_slightly_rotated_reupload_is_turned_upright_and_lands_near_the_stored_crop(name) -> None:
    picture = photo(320, 240, seed=1)
    query = _decoded(select([name])[0].apply(picture))
    views = {label: view for label, view, dihedral in query_time_variants(query) if not dihedral}
    assert set(views) == {"upright", "upright90"}
    stored = [picture, *(view for _, view in index_time_variants(picture))]
    assert min(_pdq_distance(views["upright90"], s) for s in stored) <= 31
    assert min(_pdq_distance(query, s) for s in stored) > 31  # as uploaded, it matches nothing


def test_an_object_on_a_plain_background_is_stored_and_queried_without_the_background() -> None:
    # A product shot: the picture is an object on white. Letterboxed in white, the query's bars merge with the
    # background, so only trimming both sides down to the object compares like with like.
    shot = Image.new("RGB", (320, 240), (255, 255, 255))
    shot.paste(photo(200, 150, seed=6), (70, 50))
    stored = [view for label, view in index_time_variants(shot) if label in ("trim", "strict")]
    assert stored and all(abs(view.width - 200) <= 3 for view in stored)
    query = _decoded(select(["letterbox_white_20"])[0].apply(shot))
    views = [view for label, view, _ in query_time_variants(query) if label in ("trim", "strict")]
    assert min(_pdq_distance(v, s) for v in views for s in stored) <= 31
    assert _pdq_distance(query, shot) > 31


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("size", [(1, 1), (15, 15), (4000, 16), (16, 4000), (2000, 17), (5000, 60)])
def test_slivers_and_tiny_images_get_views_without_errors_or_warnings(size) -> None:
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    for label, view, _ in query_time_variants(image):
        assert label in QUERY_LABELS and min(view.size) >= 1
    assert all(min(view.size) >= 1 for _, view in index_time_variants(image))


def test_a_reupload_cropped_to_a_centred_square_lands_on_the_stored_square() -> None:
    picture = photo(320, 240, seed=7)
    stored = dict(index_time_variants(picture))
    assert stored["square"].size == (240, 240)
    query = _decoded(picture.crop((40, 0, 280, 240)))
    assert _pdq_distance(query, stored["square"]) <= 31
    assert min(_pdq_distance(query, view) for label, view in stored.items() if label != "square") > 31
