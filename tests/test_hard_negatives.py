"""The hard-negative set: built from generated images and matplotlib's bundled data, with a licence per file."""

from __future__ import annotations

import csv
from pathlib import Path

from PIL import Image

from hashsvc.bench import hard_negatives
from hashsvc.hashes.information import minority_bits
from hashsvc.service.hashing import hash_image


def test_quick_set_covers_every_family_with_a_manifest(tmp_path: Path) -> None:
    paths = hard_negatives.build(tmp_path, quick=True)
    with (tmp_path / "manifest.tsv").open() as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert [tmp_path / row["file"] for row in rows] == paths
    assert {row["family"] for row in rows} == set(hard_negatives.FAMILIES)
    for row in rows:
        assert row["source"] and row["licence"]
        with Image.open(tmp_path / row["file"]) as image:
            assert image.size == (int(row["width"]), int(row["height"]))
    # nothing from the positives' corpus (it holds matplotlib's grace_hopper.jpg and scikit-image's images)
    assert not any("grace_hopper" in row["source"] or "skimage" in row["source"] for row in rows)
    # a second build keeps the files it finds complete
    stamp = paths[0].stat().st_mtime_ns
    assert hard_negatives.build(tmp_path, quick=True) == paths and paths[0].stat().st_mtime_ns == stamp


def test_generation_is_deterministic() -> None:
    first = [n.image.tobytes() for n, _ in zip(hard_negatives.generate(quick=True), range(3), strict=False)]
    again = [n.image.tobytes() for n, _ in zip(hard_negatives.generate(quick=True), range(3), strict=False)]
    assert first == again


def test_star_fields_have_degenerate_dhash_and_low_quality_views(tmp_path: Path) -> None:
    # What the information rule is about: a black sky with points of light leaves a dHash with few set bits.
    field = next(n for n in hard_negatives.generate(quick=True) if n.family == "star_field")
    path = tmp_path / "stars.png"
    field.image.save(path)
    hashes = hash_image(path.read_bytes())
    assert minority_bits(hashes.dhash) < 16 or hashes.pdq.quality < 50
