"""The local-feature stage's CPU per upload, without a service: quick to repeat, for A/B runs on a busy machine.

The CPU parts of scripts/bench_feature_stage.py alone: a `FeatureIndex` of `--items` corpus photos' stored
features (as an item added from an image stores them), padded with simulated items to `--pad` (as that script
pads), and `--uploads` ~1 MP JPEG mosaics that match nothing. Per upload, this process's CPU time (best of
`--repeat`): the match path's hashing without and with the upload's features, and the lookup + geometric
verification (`FeatureIndex.candidates` and `verify_pairs`; the service adds one store read when there are
candidates, which these uploads do not have). Medians over the uploads. The predicted on/off throughput ratio on a
CPU-bound machine is hashing / (hashing with features + lookup); the rest of an upload's path (sandbox transfer,
the hash lookup, the response) is the same with the stage on and off and would move it towards 1.

Runs against an older tree too (PYTHONPATH=that tree): its uploads' features are then extracted as that tree's
`hash_image` does by default.

    .venv/bin/python scripts/bench_feature_cpu.py ../shared/corpus --items 40 --pad 1000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from hashsvc.bench.samples import mosaic, require_images, to_jpeg
from hashsvc.features import MAX_QUERY, MAX_STORED, Features, orb, verify_pairs
from hashsvc.features.index import FeatureIndex
from hashsvc.service import feature_policy
from hashsvc.service.hashing import hash_image

# The upload's features as the match path extracts them; trees before QUERY_WORK_SIDE extracted at WORK_SIDE.
# Trees before QUERY_RESAMPLE resized the upload with Pillow's bilinear filter.
QUERY_FEATURES: dict[str, int | str] = {"features": MAX_QUERY}
if hasattr(orb, "QUERY_WORK_SIDE"):
    QUERY_FEATURES["feature_side"] = orb.QUERY_WORK_SIDE
if hasattr(orb, "QUERY_RESAMPLE"):
    QUERY_FEATURES["feature_resample"] = orb.QUERY_RESAMPLE


def padded_index(photos: list[Path], items: int, total: int, seed: int = 0) -> FeatureIndex:
    """`items` real stored items, then simulated ones up to `total` (real descriptors drawn at random, each bit
    flipped with probability 5%, random positions: bench_feature_stage.pad)."""
    index = FeatureIndex("ivf")
    for item_id, path in enumerate(photos[:: max(1, len(photos) // items)][:items]):
        found = hash_image(path.read_bytes(), extras="index", features=MAX_STORED).features
        if found is not None and len(found) >= feature_policy.MIN_INLIERS:
            index.add(item_id, found)
    _, _, _, pool = index.live_items()
    rng = np.random.default_rng(seed)
    next_id = 10**12
    while len(index) < total:
        picked = pool[rng.integers(len(pool), size=MAX_STORED)]
        noise = np.packbits(rng.random((MAX_STORED, 256)) < 0.05, axis=1)
        index.add(next_id, Features(rng.uniform(0, 384, (MAX_STORED, 2)).astype(np.float32), picked ^ noise))
        next_id += 1
    return index


def lookup_and_verify(index: FeatureIndex, query: Features) -> int:
    verified = 0
    for candidate in index.candidates(query, min_pairs=feature_policy.MIN_INLIERS):
        verified += feature_policy.counts(verify_pairs(candidate.query_xy, candidate.stored_xy))
    return verified


def cpu_ms(run: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        run()
        best = min(best, time.process_time() - started)
    return best * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--items", type=int, default=40)
    parser.add_argument("--pad", type=int, default=1000)
    parser.add_argument("--uploads", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5, help="best of this many runs per upload (default 5)")
    args = parser.parse_args()
    photos = require_images(args.folder, "a folder argument")
    index = padded_index(photos, args.items, args.pad)
    uploads = [to_jpeg(mosaic(photos, 1.0, seed)) for seed in range(args.uploads)]
    load_before = os.getloadavg()
    hashing, with_features, lookup = [], [], []
    for data in uploads:
        hashing.append(cpu_ms(partial(hash_image, data, dihedral=True, extras="query"), args.repeat))
        with_features.append(
            cpu_ms(partial(hash_image, data, dihedral=True, extras="query", **QUERY_FEATURES), args.repeat)
        )
        query = hash_image(data, **QUERY_FEATURES).features
        assert query is not None
        lookup.append(cpu_ms(partial(lookup_and_verify, index, query), args.repeat))
    off, extraction, looked_up = (statistics.median(v) for v in (hashing, with_features, lookup))
    print(json.dumps({
        "query_features": QUERY_FEATURES,
        "feature_items_in_index": len(index),
        "cpu_ms_per_upload": {"hashing": round(off, 2), "hashing_with_features": round(extraction, 2),
                              "lookup_and_verify": round(looked_up, 2)},
        "stage_adds_ms": round(extraction + looked_up - off, 2),
        "predicted_ratio_on_off": round(off / (extraction + looked_up), 3),
        "loadavg_before_after": [load_before, os.getloadavg()],
    }))


if __name__ == "__main__":
    main()
