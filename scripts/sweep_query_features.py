"""Upload-side ORB settings against items stored at the shipped settings: crop recall and chance inliers.

Stored items keep their features (WORK_SIDE pixels, MAX_STORED); the store holds no pixels to re-extract them
from, so only what is extracted from an upload can change cheaply. For each (working side, FAST threshold,
features) of the upload, every k-th original of one half is stored, its crop edits (the same seeded edits as
bench_features.py) are verified against it, and every pair of distinct originals is verified both ways with one
as the stored item and the other as an upload (near-duplicates of the same scene excluded, as in
bench_features.py). Verification is `features.verify` (exact descriptor matching): this measures the features,
not the index's approximation.

    .venv/bin/python scripts/sweep_query_features.py ../shared/corpus --every 3 --half tune
    .venv/bin/python scripts/sweep_query_features.py ../shared/corpus --every 2 --half held-out \
        --grid 384:10:256 320:10:160
"""

from __future__ import annotations

import argparse
import hashlib
from collections import defaultdict
from pathlib import Path

import numpy as np
from bench_features import CORPUS_NEAR_DUPLICATES, EDITS, _jpeg, half_of
from PIL import Image

from hashsvc import media
from hashsvc.bench.samples import require_images
from hashsvc.features import Features, orb, verify
from hashsvc.service import feature_policy

SWEPT_EDITS = ("crop 10-20% at a random offset (a)", "crop 20% from one side", "crop 30% from one side",
               "crop 15% + half size + JPEG q70")
DEFAULT_GRID = ("384:10:256", "320:10:256", "288:10:256", "320:15:256", "256:10:256", "352:10:256",
                "384:10:192", "384:10:160", "384:10:128", "352:10:192", "320:10:192", "320:10:160")


def upload_features(
    image: Image.Image,
    side: int,
    fast: int,
    count: int,
    levels: int = orb.PYRAMID_LEVELS,
    resample: str = orb.STORED_RESAMPLE,
) -> Features:
    """An upload's features at these settings (the stored side's FAST threshold is restored afterwards)."""
    shipped = orb.FAST_THRESHOLD
    orb.FAST_THRESHOLD = fast
    try:
        return orb.extract(image, count, side, levels, resample)
    finally:
        orb.FAST_THRESHOLD = shipped


def parse_setting(setting: str) -> tuple[int, int, int, int, str]:
    """side:fast:features[:levels[:resample]] (levels default orb.PYRAMID_LEVELS, resample orb.STORED_RESAMPLE)."""
    parts = setting.split(":")
    side, fast, count = (int(v) for v in parts[:3])
    levels = int(parts[3]) if len(parts) > 3 else orb.PYRAMID_LEVELS
    resample = parts[4] if len(parts) > 4 else orb.STORED_RESAMPLE
    if resample not in (*orb.RESAMPLERS, "linear"):
        raise SystemExit(f"unknown resample {resample!r} in {setting!r}")
    return side, fast, count, levels, resample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--every", type=int, default=3)
    parser.add_argument("--half", choices=("tune", "held-out"), default="tune")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--grid", nargs="+", default=DEFAULT_GRID,
                        help="side:fast:features[:levels[:resample]] of the upload (resample: bilinear, box, linear)")
    args = parser.parse_args()
    photos = require_images(args.folder, "a folder argument")
    paths = [p for p in photos if half_of(p.relative_to(args.folder).as_posix()) == args.half][:: args.every]
    frames = {p.relative_to(args.folder).as_posix(): media.decode_first(p.read_bytes()).pixels for p in paths}
    same = {frozenset(pair) for pair in CORPUS_NEAR_DUPLICATES}
    stored = {name: orb.extract(frame) for name, frame in frames.items()}
    edited: dict[tuple[str, str], Image.Image] = {}
    for name, frame in frames.items():
        rng = np.random.default_rng([args.seed, int.from_bytes(hashlib.sha1(name.encode()).digest()[:4], "big")])
        for edit_name, (edit, quality) in EDITS.items():
            picture = edit(frame, rng)  # every edit draws, so each one's randomness is as in bench_features
            if edit_name in SWEPT_EDITS:
                edited[(name, edit_name)] = media.decode_first(_jpeg(picture, quality)).pixels
    print(f"{len(frames)} {args.half} originals stored at {orb.WORK_SIDE} px, {orb.MAX_STORED} features; "
          f"{len(edited)} crop edits: {', '.join(SWEPT_EDITS)}")
    for setting in args.grid:
        side, fast, count, levels, resample = parse_setting(setting)
        hits: dict[str, list[bool]] = defaultdict(list)
        inliers = []
        for (name, edit_name), picture in edited.items():
            found = verify(stored[name], upload_features(picture, side, fast, count, levels, resample))
            hits[edit_name].append(feature_policy.counts(found))
            inliers.append(found.inliers)
        as_upload = {
            name: upload_features(frame, side, fast, count, levels, resample) for name, frame in frames.items()
        }
        false, top, names = 0, 0, list(frames)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                if frozenset((a, b)) in same:
                    continue
                both = [verify(stored[a], as_upload[b]), verify(stored[b], as_upload[a])]
                false += any(feature_policy.counts(v) for v in both)
                top = max(top, *(v.inliers for v in both))
        recall = 100 * np.mean([h for edit_hits in hits.values() for h in edit_hits])
        per_edit = "  ".join(f"{100 * np.mean(hits[e]):5.1f}%" for e in SWEPT_EDITS)
        print(f"upload {side:>3} px fast {fast:>2} {count:>3} features {levels} levels {resample:>8}: "
              f"all {recall:5.1f}%  per edit {per_edit}  "
              f"inliers p5 {np.percentile(inliers, 5):.0f} p50 {np.percentile(inliers, 50):.0f}  "
              f"false pairs {false}  most chance inliers {top}", flush=True)


if __name__ == "__main__":
    main()
