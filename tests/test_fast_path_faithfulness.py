"""The fast path (reduced-scale JPEG decoding, box reduction) must hash like the naive full-resolution path:
PDQ within 10 bits (median within 4) and pHash within 4 bits, over the corpus and over large JPEGs made from it.
"""

from __future__ import annotations

import io
import statistics
from pathlib import Path

import pytest
from PIL import Image

from hashsvc.bench.naive import naive_hashes
from hashsvc.bench.samples import list_images, mosaic, to_jpeg
from hashsvc.hashes import hamming
from hashsvc.service.hashing import hash_image


def distances(datas: list[bytes]) -> tuple[list[int], list[int]]:
    pdq, phash = [], []
    for data in datas:
        ours, naive = hash_image(data), naive_hashes(data)
        pdq.append(hamming(ours.pdq.code, naive.pdq))
        phash.append(hamming(ours.phash, naive.phash))
    return pdq, phash


def test_corpus_images_hash_like_the_naive_path(corpus_dir: Path) -> None:
    files = list_images(corpus_dir)
    assert len(files) >= 400
    pdq, phash = distances([path.read_bytes() for path in files])
    assert max(pdq) <= 10
    assert statistics.median(pdq) <= 4
    assert max(phash) <= 4


@pytest.mark.parametrize("megapixels", [2, 12, 24])
def test_large_jpegs_hash_like_the_naive_path(corpus_dir: Path, megapixels: int) -> None:
    sources = list_images(corpus_dir)
    images = [to_jpeg(mosaic(sources, megapixels, seed)) for seed in range(4)]
    with Image.open(io.BytesIO(images[0])) as first:
        assert abs(first.width * first.height / 1e6 - megapixels) < 0.5
    pdq, phash = distances(images)
    assert max(pdq) <= 10, pdq
    assert statistics.median(pdq) <= 4, pdq
    assert max(phash) <= 4, phash
