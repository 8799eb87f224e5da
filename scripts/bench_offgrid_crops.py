"""How often crops that do not sit on the stored crop grid are still blocked (the grid's blind spots).

Items added from images store crops keeping 95/90/80% of each side, centred or in a corner; the robustness
benchmark's crops sit exactly on that grid. This script crops every k-th image of a folder elsewhere (7% and
15%, centred and from a corner; 10% from one side, from top and bottom, at a seeded random offset), saves each
as JPEG quality 90, and runs it through the service's own hashing and policy against the original stored as an
image item: blocked when PDQ <= 31, or PDQ <= 44 with pHash or dHash <= 8 (see hashsvc/service/policy.py).

    .venv/bin/python scripts/bench_offgrid_crops.py ../shared/corpus --every 4
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
from PIL import Image

from hashsvc.bench.samples import require_images
from hashsvc.hashes import hamming
from hashsvc.service.hashing import ImageHashes, hash_image
from hashsvc.service.policy import corroborated_limit

# Fractions cut from (left, top, right, bottom); None draws a 10% crop at a random offset; "square" crops the
# long side to a centred square, "square+5" to a square moved 5% of the long side off centre.
EDITS: dict[str, tuple[float, float, float, float] | str | None] = {
    "crop 7% centred": (0.035, 0.035, 0.035, 0.035),
    "crop 7% from a corner": (0.07, 0.07, 0.0, 0.0),
    "crop 15% centred": (0.075, 0.075, 0.075, 0.075),
    "crop 15% from a corner": (0.15, 0.15, 0.0, 0.0),
    "crop 10% from one side": (0.10, 0.0, 0.0, 0.0),
    "crop 10% from top and bottom": (0.0, 0.05, 0.0, 0.05),
    "crop 10% at a random offset": None,
    "crop to a centred square": "square",
    "crop to a square 5% off centre": "square+5",
}


def _pdq_codes(hashes: ImageHashes) -> list[bytes]:
    codes = [hashes.pdq.code, *(hashes.pdq.variants or {}).values()]
    for extra in hashes.extras:
        codes += [extra.pdq.code, *(extra.pdq.variants or {}).values()]
    return codes


def _short_codes(hashes: ImageHashes) -> list[bytes]:
    codes = [hashes.phash, hashes.dhash]
    return codes + [c for e in hashes.extras for c in (e.phash, e.dhash) if c is not None]


def _box(size: tuple[int, int], cut: tuple[float, float, float, float] | str | None,
         rng: np.random.Generator) -> tuple[int, int, int, int]:
    w, h = size
    if isinstance(cut, str):
        side, long_w = min(w, h), w >= h
        shift = round(0.05 * max(w, h)) if cut == "square+5" else 0
        start = min(max(w, h) - side, (max(w, h) - side) // 2 + shift)
        return (start, 0, start + side, side) if long_w else (0, start, side, start + side)
    if cut is None:
        dx, dy = rng.uniform(0, 0.10, 2)
        cut = (dx, dy, 0.10 - dx, 0.10 - dy)
    return round(w * cut[0]), round(h * cut[1]), w - round(w * cut[2]), h - round(h * cut[3])


def blocked(query: ImageHashes, stored: ImageHashes) -> bool:
    pdq = min(hamming(a, b) for a in _pdq_codes(query) for b in _pdq_codes(stored))
    short = min(hamming(a, b) for a in _short_codes(query) for b in _short_codes(stored))
    return pdq <= 31 or (pdq <= corroborated_limit(31) and short <= 8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--every", type=int, default=4, help="use every k-th image (default 4)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    hits: dict[str, list[bool]] = {name: [] for name in EDITS}
    for path in require_images(args.folder, "a folder argument")[:: args.every]:
        stored = hash_image(path.read_bytes(), extras="index")
        with Image.open(path) as opened:
            source = opened.convert("RGB")
        for name, cut in EDITS.items():
            box = _box(source.size, cut, rng)
            buffer = io.BytesIO()
            source.crop(box).save(buffer, "JPEG", quality=90)
            query = hash_image(buffer.getvalue(), dihedral=True, extras="query")
            hits[name].append(blocked(query, stored))
    for name, values in hits.items():
        print(f"{name:30s} blocked {100 * np.mean(values):5.1f}% of {len(values)}")


if __name__ == "__main__":
    main()
