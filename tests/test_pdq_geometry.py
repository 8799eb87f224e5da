"""hashsvc.hashes.pdq_geometry: PDQ of the full-resolution image from a reduced decode.

At full resolution it must be pdqhash, bit for bit (hash, quality, dihedral variants); from a reduced JPEG
decode it must be within a few bits of the naive full-decode hash (the current fast path is ~5 bits off).
"""

from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np
import pdqhash
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from hashsvc import media
from hashsvc.bench.naive import naive_hashes
from hashsvc.bench.samples import list_images, mosaic, to_jpeg
from hashsvc.hashes import hamming
from hashsvc.hashes import pdq_geometry as pg
from hashsvc.hashes.codec import bits_to_bytes


def picture(height: int, width: int, seed: int, cells: tuple[int, int] | None = None) -> np.ndarray:
    """A photo-like test image: smooth random shapes (so the DCT has structure) plus pixel noise."""
    rng = np.random.default_rng(seed)
    cells = cells or (int(rng.integers(2, 9)), int(rng.integers(2, 9)))
    coarse = rng.integers(0, 256, (*cells, 3), dtype=np.uint8)
    smooth = np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC), dtype=np.int16)
    noise = rng.integers(-12, 13, (height, width, 3), dtype=np.int16)
    return np.clip(smooth + noise, 0, 255).astype(np.uint8)


def reference(rgb: np.ndarray) -> tuple[bytes, int]:
    vector, quality = pdqhash.compute(rgb)
    return bits_to_bytes(vector), int(quality)


def ours(rgb: np.ndarray, full_height: int | None = None, full_width: int | None = None) -> tuple[bytes, int]:
    height, width = rgb.shape[:2]
    return pg.pdq_at_full_resolution(rgb, full_height or height, full_width or width)


# --- exactness at full resolution ------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(height=st.integers(65, 300), width=st.integers(65, 300), seed=st.integers(0, 2**32 - 1))
def test_agrees_with_pdqhash_at_full_resolution(height: int, width: int, seed: int) -> None:
    """Only the floating-point summation order differs from pdqhash's C++, so a coefficient that sits on the
    median can flip: measured on 1,500 random images of 65-400 px, 1,497 were identical, one was 2 bits off
    and two had quality off by one. (At 64 px or less, PDQ's decimation repeats rows, which creates exact
    ties at the median; the service never uses this module on such images, only on reduced decodes.)"""
    rgb = picture(height, width, seed)
    (code, quality), (expected_code, expected_quality) = ours(rgb), reference(rgb)
    assert hamming(code, expected_code) <= 4
    assert abs(quality - expected_quality) <= 1


@pytest.mark.parametrize(
    ("height", "width"),
    [(5, 5), (5, 300), (300, 5), (64, 64), (63, 65), (127, 129), (128, 257), (480, 640), (997, 1000), (1333, 1001)],
)
def test_equals_pdqhash_on_fixed_sizes(height: int, width: int) -> None:
    rgb = picture(height, width, seed=height * 10007 + width)
    assert ours(rgb) == reference(rgb)


@pytest.mark.parametrize(("height", "width"), [(4, 100), (100, 4), (1, 1)])
def test_too_small_images_give_pdqhash_zero_hash(height: int, width: int) -> None:
    rgb = picture(max(height, 2), max(width, 2), seed=1)[:height, :width]
    assert ours(rgb) == reference(rgb) == (bytes(32), 0)


@pytest.mark.parametrize(("height", "width"), [(5, 7), (64, 64), (211, 97), (600, 800)])
def test_dihedral_variants_equal_pdqhash(height: int, width: int) -> None:
    rgb = picture(height, width, seed=height + width)
    vectors, quality = pdqhash.compute_dihedral(rgb)
    assert pg.pdq_dihedral_at_full_resolution(rgb, height, width) == ([bits_to_bytes(v) for v in vectors], quality)


def test_equals_pdqhash_on_real_images(corpus_dir: Path, pdq_conformance: Path) -> None:
    # Every 24th corpus image (docs/pdq_geometry.md has the full set) plus Meta's conformance inputs.
    paths = list_images(corpus_dir)[::24] + list_images(pdq_conformance / "images")
    assert len(paths) >= 18
    for path in paths:
        with Image.open(path) as image:
            rgb = np.asarray(image.convert("RGB"))
        assert ours(rgb) == reference(rgb), path


# --- the operators ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [5, 64, 127, 128, 129, 1000, 4000])
def test_downsample_rows_are_normalized_averages(n: int) -> None:
    matrix = pg.dense(pg.downsample_rows(n), n)
    assert matrix.shape == (64, n)
    assert (matrix >= 0).all()
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0, rtol=1e-12)


@pytest.mark.parametrize(("full", "reduced"), [(4000, 1000), (4003, 501), (3000, 375), (1224, 612), (700, 300)])
def test_band_matches_dense_composition(full: int, reduced: int) -> None:
    scale = pg.grid_scale(full, reduced)
    down = pg.dense(pg.downsample_rows(full), full)
    centre = (np.arange(full) + 0.5) / scale - 0.5
    upsample = np.zeros((full, reduced))
    for i, c in enumerate(centre):
        left = int(np.floor(c))
        for j, w in ((left, 1 - (c - left)), (left + 1, c - left)):
            upsample[i, min(max(j, 0), reduced - 1)] += w
    index, weights = pg.band(full, reduced)
    banded = np.zeros((64, reduced))
    np.put_along_axis(banded, index, weights, axis=1)
    np.testing.assert_allclose(banded, down @ upsample, atol=1e-12)


@pytest.mark.parametrize(
    ("full", "reduced", "scale"),
    [(4000, 1000, 4.0), (4003, 501, 8.0), (4242, 1061, 4.0), (1224, 612, 2.0), (9, 5, 2.0), (1000, 300, 1000 / 300)],
)
def test_grid_scale(full: int, reduced: int, scale: float) -> None:
    assert pg.grid_scale(full, reduced) == pytest.approx(scale)


def _transformed(rgb: np.ndarray) -> list[np.ndarray]:
    """The image really rotated/flipped, in DIHEDRAL_VARIANTS order (rot90 is numpy's counter-clockwise)."""
    both = rgb[::-1, ::-1]
    ops = [rgb, np.rot90(rgb, 1), both, np.rot90(rgb, 3), rgb[::-1], rgb[:, ::-1], rgb.transpose(1, 0, 2),
           both.transpose(1, 0, 2)]
    return [np.ascontiguousarray(o) for o in ops]


@pytest.mark.parametrize(("height", "width"), [(64, 64), (211, 97), (240, 320), (433, 577)])
def test_true_flips_equal_pdqhash_of_the_really_transformed_image(height: int, width: int) -> None:
    rgb = picture(height, width, seed=height * width)
    codes, quality = pg.pdq_flips_at_full_resolution(rgb, height, width)
    assert quality == reference(rgb)[1]
    assert [hamming(c, reference(t)[0]) for c, t in zip(codes, _transformed(rgb), strict=True)] == [0] * 8


def test_modelled_dihedral_variants_miss_real_rotations_of_small_images() -> None:
    # Why pdq_flips exists: pdqhash's sign-flip model of a 180-degree rotation is bits away on small images.
    rgb = picture(240, 320, seed=9)
    modelled = pg.pdq_dihedral_at_full_resolution(rgb, 240, 320)[0]
    really = [reference(t)[0] for t in _transformed(rgb)]
    assert max(hamming(m, r) for m, r in zip(modelled, really, strict=True)) > 8


def test_true_flips_from_a_reduced_image_are_close_to_the_full_resolution_ones() -> None:
    full = picture(1203, 1601, seed=7, cells=(24, 32))
    reduced = np.asarray(Image.fromarray(full).reduce(4))
    codes, _ = pg.pdq_flips_at_full_resolution(reduced, 1203, 1601)
    assert max(hamming(c, reference(t)[0]) for c, t in zip(codes, _transformed(full), strict=True)) <= 6


def test_box_reduced_image_hashes_like_full_resolution() -> None:
    # No JPEG involved: Pillow's box reduce is exactly the "reduced pixel k covers [k*s, (k+1)*s)" model.
    # The images need photo-like detail: on near-flat ones most of the 256 DCT coefficients sit close to the
    # median, and even the uint8 rounding of the reduced pixels flips a few of those bits.
    distances = []
    for seed in range(4):
        full = picture(1203, 1601, seed=seed, cells=(24, 32))
        reduced = np.asarray(Image.fromarray(full).reduce(4))
        assert reduced.shape[:2] == (301, 401)
        distances.append(hamming(ours(reduced, 1203, 1601)[0], reference(full)[0]))
    assert statistics.median(distances) <= 1, distances
    assert max(distances) <= 4, distances


# --- reduced JPEG decodes vs the naive full-resolution hash ------------------------------------------------------


@pytest.mark.parametrize(("megapixels", "seeds"), [(2, 4), (12, 3), (24, 2)])
def test_reduced_jpeg_decode_hashes_like_naive_full_decode(corpus_dir: Path, megapixels: int, seeds: int) -> None:
    sources = list_images(corpus_dir)
    distances = []
    for seed in range(seeds):
        data = to_jpeg(mosaic(sources, megapixels, seed))
        frame = media.decode_first(data)  # mosaics carry no EXIF orientation
        assert frame.pixels.size != (frame.width, frame.height), "expected a reduced decode"
        code, _quality = pg.pdq_at_full_resolution(frame.array(), frame.height, frame.width)
        distances.append(hamming(code, naive_hashes(data).pdq))
    assert statistics.median(distances) <= 1, distances
    assert max(distances) <= 4, distances


def test_rejects_malformed_input() -> None:
    with pytest.raises(ValueError):
        pg.pdq_at_full_resolution(np.zeros((10, 10), dtype=np.uint8), 10, 10)
    with pytest.raises(ValueError):
        pg.pdq_at_full_resolution(np.zeros((10, 10, 3), dtype=np.uint8), 9, 10)
