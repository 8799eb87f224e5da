"""Cost and quality of ORB settings on the tune half only: extraction CPU time per ~1 MP upload, off-grid crop
recall and chance inliers between distinct originals, for each (working size, pyramid levels, FAST threshold).

The held-out half (see bench_features.py) is not read. CPU time (`time.process_time`, best of 3 per image) rather
than wall time, because other jobs share the machine.

    .venv/bin/python scripts/sweep_features.py ../shared/corpus --every 3
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import time
from pathlib import Path

import numpy as np
from bench_features import CORPUS_NEAR_DUPLICATES, EDITS, _jpeg, half_of

from hashsvc import media
from hashsvc.bench.samples import list_images, mosaic, require_images, to_jpeg
from hashsvc.features import MAX_QUERY, MAX_STORED, extract, orb, verify
from hashsvc.service import feature_policy

GRID = list(itertools.product((512, 384, 320), (8, 5), (10, 20)))
SWEPT_EDITS = ("crop 10-20% at a random offset (a)", "crop 20% from one side", "crop 30% from one side",
               "crop 15% + half size + JPEG q70")


def _cpu_ms(run: object) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        run()  # type: ignore[operator]
        best = min(best, time.process_time() - started)
    return best * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--every", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    photos = require_images(args.folder, "a folder argument")
    paths = [p for p in photos if half_of(p.relative_to(args.folder).as_posix()) == "tune"]
    paths = paths[:: args.every]
    frames = {p.relative_to(args.folder).as_posix(): media.decode_first(p.read_bytes()).pixels for p in paths}
    uploads = [media.decode_first(to_jpeg(mosaic(list_images(args.folder), 1.0, seed))).pixels for seed in range(8)]
    same = {frozenset(pair) for pair in CORPUS_NEAR_DUPLICATES}
    print(f"{len(frames)} tune originals; edits: {', '.join(SWEPT_EDITS)}")
    print(f"{'side':>5} {'levels':>6} {'fast':>5} {'cpu ms':>7} {'recall':>7} {'false':>6} {'max chance inliers':>19}")
    for side, levels, fast in GRID:
        orb.WORK_SIDE, orb.PYRAMID_LEVELS, orb.FAST_THRESHOLD = side, levels, fast
        cost = float(np.median([_cpu_ms(lambda f=f: extract(f, MAX_QUERY)) for f in uploads]))
        stored = {name: extract(frame, MAX_STORED) for name, frame in frames.items()}
        as_upload = {name: extract(frame, MAX_QUERY) for name, frame in frames.items()}
        hits = []
        for name, frame in frames.items():
            rng = np.random.default_rng([args.seed, int.from_bytes(hashlib.sha1(name.encode()).digest()[:4], "big")])
            for edit_name, (edit, quality) in EDITS.items():
                edited = edit(frame, rng)  # every edit draws, so each one's randomness is as in bench_features
                if edit_name in SWEPT_EDITS:
                    query = extract(media.decode_first(_jpeg(edited, quality)).pixels, MAX_QUERY)
                    hits.append(feature_policy.counts(verify(stored[name], query)))
        false, top = 0, 0
        names = list(frames)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                if frozenset((a, b)) in same:
                    continue
                found = [verify(stored[a], as_upload[b]), verify(stored[b], as_upload[a])]
                false += any(feature_policy.counts(v) for v in found)
                top = max(top, *(v.inliers for v in found))
        print(f"{side:>5} {levels:>6} {fast:>5} {cost:>7.2f} {100 * np.mean(hits):>6.1f}% {false:>6} {top:>19}")


if __name__ == "__main__":
    main()
