"""Off-grid crop recall and false matches of the local-feature stage, on a tune half and a held-out half.

Every image of the folder is decoded as the service decodes uploads (`media.decode_first`) and stored as an item
added from an image (its ORB features, `hashsvc.features.orb`). Each is then edited, re-encoded as JPEG and
looked up against its own stored features with the service's rule (`features.verify` + `feature_policy.counts`):

* "crop 10-20% at a random offset": a random share c in [10%, 20%] of the width and of the height cut away, split
  between the two sides at a random point (two draws per image);
* "crop N% from one side" for N = 5, 10, 20, 30: N% of the width or height cut from one side chosen at random;
* "crop 15% + half size + JPEG q70": the random-offset crop, then shrunk to half size and saved at quality 70.

False matches: every unordered pair of distinct originals (the corpus's known near-duplicates, listed in
`hashsvc.bench.robustness.CORPUS_NEAR_DUPLICATES`, count as the same image), looked up in both directions: one
original as the upload, the other as the stored item. A pair is a false match if either direction counts.

The split: a file belongs to the tune half when the first byte of sha1(its path relative to the folder, UTF-8)
is even, to the held-out half when it is odd. Thresholds were chosen on the tune half only; the held-out numbers
are reported, never tuned on. With `--hashes`, the hash stage's verdict (PDQ <= 31, or PDQ <= 44 corroborated by
pHash/dHash <= 8, over the service's index and query views) is computed too, and the table shows recall of the
hash stage alone and of both stages together (the full image match path).

    .venv/bin/python scripts/bench_features.py ../shared/corpus --hashes --json features.json
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from hashsvc import media
from hashsvc.bench.robustness import CORPUS_NEAR_DUPLICATES
from hashsvc.bench.samples import require_images
from hashsvc.features import (
    MAX_QUERY,
    MAX_STORED,
    QUERY_WORK_SIDE,
    Features,
    Verification,
    extract,
    extract_query,
    verify,
)
from hashsvc.hashes import hamming
from hashsvc.service import feature_policy
from hashsvc.service.hashing import ImageHashes, hash_image
from hashsvc.service.policy import corroborated_limit

Box = tuple[int, int, int, int]
Edit = Callable[[Image.Image, np.random.Generator], Image.Image]


def half_of(name: str) -> str:
    """'tune' or 'held-out', by the first byte of sha1(name)."""
    return "tune" if hashlib.sha1(name.encode()).digest()[0] % 2 == 0 else "held-out"


def _random_offset_crop(image: Image.Image, rng: np.random.Generator, low: float = 0.10,
                        high: float = 0.20) -> Image.Image:
    w, h = image.size
    cw, ch = rng.uniform(low, high, 2)
    left, top = rng.uniform(0, cw), rng.uniform(0, ch)
    return image.crop((round(w * left), round(h * top), w - round(w * (cw - left)), h - round(h * (ch - top))))


def _one_side(share: float) -> Edit:
    def edit(image: Image.Image, rng: np.random.Generator) -> Image.Image:
        w, h = image.size
        side = int(rng.integers(4))
        box = [(round(w * share), 0, w, h), (0, round(h * share), w, h), (0, 0, w - round(w * share), h),
               (0, 0, w, h - round(h * share))][side]
        return image.crop(box)
    return edit


def _chain(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    cropped = _random_offset_crop(image, rng, 0.15, 0.15)
    return cropped.resize((max(1, cropped.width // 2), max(1, cropped.height // 2)), Image.Resampling.LANCZOS)


EDITS: dict[str, tuple[Edit, int]] = {  # name -> (edit, JPEG quality)
    "crop 10-20% at a random offset (a)": (_random_offset_crop, 90),
    "crop 10-20% at a random offset (b)": (_random_offset_crop, 90),
    "crop 5% from one side": (_one_side(0.05), 90),
    "crop 10% from one side": (_one_side(0.10), 90),
    "crop 20% from one side": (_one_side(0.20), 90),
    "crop 30% from one side": (_one_side(0.30), 90),
    "crop 15% + half size + JPEG q70": (_chain, 70),
}
HEADLINE = "crop 10-20% at a random offset"


def _jpeg(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


# ------------------------------------------------------------------------------------------- hash stage


def _pdq_codes(hashes: ImageHashes) -> list[bytes]:
    codes = [hashes.pdq.code, *(hashes.pdq.variants or {}).values()]
    for extra in hashes.extras:
        codes += [extra.pdq.code, *(extra.pdq.variants or {}).values()]
    return codes


def _short_codes(hashes: ImageHashes) -> list[bytes]:
    codes = [hashes.phash, hashes.dhash]
    return codes + [c for e in hashes.extras for c in (e.phash, e.dhash) if c is not None]


def hash_blocks(query: ImageHashes, stored: ImageHashes) -> bool:
    pdq = min(hamming(a, b) for a in _pdq_codes(query) for b in _pdq_codes(stored))
    short = min(hamming(a, b) for a in _short_codes(query) for b in _short_codes(stored))
    return pdq <= 31 or (pdq <= corroborated_limit(31) and short <= 8)


# ------------------------------------------------------------------------------------------------- main


@dataclass
class Original:
    name: str
    half: str
    stored: Features
    upload: Features  # the original itself sent as an upload (for the false-match pairs)
    hashes: ImageHashes | None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--every", type=int, default=1, help="use every k-th image (default: all)")
    parser.add_argument("--hashes", action="store_true", help="also evaluate the hash stage and both together")
    parser.add_argument("--json", type=Path, help="write every (inliers, pairs) here")
    args = parser.parse_args()

    started = time.perf_counter()
    originals: list[Original] = []
    positives: list[dict[str, object]] = []
    for path in require_images(args.folder, "a folder argument")[:: args.every]:
        name = path.relative_to(args.folder).as_posix()
        data = path.read_bytes()
        try:
            frame = media.decode_first(data)
        except Exception as exc:  # noqa: BLE001 - a corpus file the service refuses is reported and skipped
            print(f"skipped {name}: {exc}")
            continue
        stored = extract(frame.pixels, MAX_STORED)
        hashes = hash_image(data, extras="index") if args.hashes else None
        original = Original(name, half_of(name), stored, extract_query(frame.pixels), hashes)
        originals.append(original)
        rng = np.random.default_rng([args.seed, int.from_bytes(hashlib.sha1(name.encode()).digest()[:4], "big")])
        for edit_name, (edit, quality) in EDITS.items():
            upload = _jpeg(edit(frame.pixels, rng), quality)
            query = extract_query(media.decode_first(upload).pixels)
            found = verify(stored, query)
            row: dict[str, object] = {"name": name, "half": original.half, "edit": edit_name,
                                      "inliers": found.inliers, "pairs": found.pairs}
            if hashes is not None:
                row["hash_block"] = hash_blocks(hash_image(upload, dihedral=True, extras="query"), hashes)
            positives.append(row)
    extracted = time.perf_counter()

    same = {frozenset(pair) for pair in CORPUS_NEAR_DUPLICATES}
    negatives: list[dict[str, object]] = []
    for i, a in enumerate(originals):
        for b in originals[i + 1 :]:
            if frozenset((a.name, b.name)) in same:
                continue
            one, two = verify(a.stored, b.upload), verify(b.stored, a.upload)
            worst = max(one, two, key=lambda v: (feature_policy.counts(v), v.inliers))
            halves = a.half if a.half == b.half else "across"
            negatives.append({"a": a.name, "b": b.name, "halves": halves, "inliers": worst.inliers,
                              "pairs": worst.pairs})
    finished = time.perf_counter()
    _report(originals, positives, negatives, args.hashes)
    print(f"\n{len(originals)} originals ({sum(o.half == 'tune' for o in originals)} tune), "
          f"{len(positives)} edited queries, {len(negatives)} distinct-original pairs; "
          f"extract+edits {extracted - started:.0f} s, pairs {finished - extracted:.0f} s")
    print(f"policy: inliers >= {feature_policy.MIN_INLIERS} and ratio >= {feature_policy.MIN_RATIO}; "
          f"features stored {MAX_STORED}, query {MAX_QUERY} at {QUERY_WORK_SIDE} px")
    if args.json:
        args.json.write_text(json.dumps({"positives": positives, "negatives": negatives,
                                         "min_inliers": feature_policy.MIN_INLIERS,
                                         "min_ratio": feature_policy.MIN_RATIO}, indent=1))


def _counted(row: dict[str, object]) -> bool:
    return feature_policy.counts(Verification(int(row["inliers"]), int(row["pairs"])))  # type: ignore[call-overload]


def _report(originals: list[Original], positives: list[dict[str, object]], negatives: list[dict[str, object]],
            with_hashes: bool) -> None:
    columns = ["features"] + (["hashes", "both"] if with_hashes else [])
    print(f"{'edit':<40} " + " ".join(f"{h + ' ' + c:>16}" for h in ("tune", "held-out") for c in columns))
    groups: dict[str, list[dict[str, object]]] = defaultdict(list)
    for row in positives:
        edit = str(row["edit"])
        groups[HEADLINE if edit.startswith(HEADLINE) else edit].append(row)
    groups["all edits"] = positives
    for edit, rows in groups.items():
        cells = []
        for half in ("tune", "held-out"):
            mine = [r for r in rows if r["half"] == half]
            feats = [_counted(r) for r in mine]
            values = [np.mean(feats)]
            if with_hashes:
                hashed = [bool(r["hash_block"]) for r in mine]
                values += [np.mean(hashed), np.mean([f or h for f, h in zip(feats, hashed, strict=True)])]
            cells += [f"{100 * v:15.1f}%" for v in values]
        print(f"{edit:<40} " + " ".join(cells))
    print("\nfalse matches among distinct-original pairs (either direction counts):")
    for halves in ("tune", "held-out", "across"):
        rows = [r for r in negatives if r["halves"] == halves]
        false = [r for r in rows if _counted(r)]
        top = max((int(r["inliers"]) for r in rows), default=0)  # type: ignore[call-overload]
        print(f"  {halves:<9} {len(false)} of {len(rows)} pairs; most inliers in any pair: {top}")
        for r in false[:10]:
            print(f"     {r['a']} ~ {r['b']}: {r['inliers']} inliers of {r['pairs']}")
    for half in ("tune", "held-out"):
        inl = np.array([int(r["inliers"]) for r in positives if r["half"] == half])  # type: ignore[call-overload]
        if len(inl):
            print(f"positives {half}: inliers p5 {np.percentile(inl, 5):.0f}, p50 {np.median(inl):.0f}")
    del originals


if __name__ == "__main__":
    main()
