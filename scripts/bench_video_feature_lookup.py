"""What the video feature stage costs the serving process per query video: CPU milliseconds of
`features.video.frame_hits` (each query frame's lookup among all keyframes, then RANSAC per candidate keyframe),
for query videos that match nothing (the common case: every candidate is verified and fails) and for edited copies
of a stored video. Stored: `--items` video items from clips of corpus photos (as bench_video_robustness makes them,
640x360), their keyframes picked as the service picks them; padded with `--pad` items of random keyframes
(MAX_KEYFRAMES x 256 random descriptors each: they add search cost, rarely candidates).

    .venv/bin/python scripts/bench_video_feature_lookup.py --items 6 --pad 100
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_video_robustness as clips  # the clip maker is a sibling script

from hashsvc.features import Features
from hashsvc.features import video as video_features
from hashsvc.features.index import FeatureIndex
from hashsvc.service.video_hashing import hash_video


def random_keyframes(rng: np.random.Generator) -> list[video_features.Keyframe]:
    return [video_features.Keyframe(float(k), Features(rng.uniform(0, 384, (256, 2)).astype(np.float32),
                                                       rng.integers(0, 256, (256, 32), dtype=np.uint8)))
            for k in range(video_features.MAX_KEYFRAMES)]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "corpus")
    parser.add_argument("--items", type=int, default=6)
    parser.add_argument("--pad", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=16.0)
    args = parser.parse_args()
    pool = clips.photos(args.corpus)
    per_clip = int(args.seconds // 4)
    videos = [clips.encode(clips.clip_frames(pool[c * per_clip : (c + 1) * per_clip], args.seconds), clips.FPS)
              for c in range(2 * args.items)]  # fmt: skip
    index = FeatureIndex()
    for number, data in enumerate(videos[: args.items]):
        video_features.add_item(index, number, hash_video(data, keyframes=video_features.MAX_KEYFRAMES).keyframes)
    rng = np.random.default_rng(0)
    for number in range(args.items, args.items + args.pad):
        video_features.add_item(index, number, random_keyframes(rng))
    query_options = {"views": True, "keyframes": video_features.MAX_QUERY_FRAMES, "keyframe_change": 0}
    queries = {
        "unrelated": [hash_video(data, **query_options).keyframes for data in videos[args.items :]],  # type: ignore[arg-type]
        "edited (logo and caption)": [
            hash_video(clips.EDITS["logo_and_caption"](*clips.decode(data)), **query_options).keyframes  # type: ignore[arg-type]
            for data in videos[: args.items]
        ],
    }
    print(f"load {os.getloadavg()}; items {args.items} + {args.pad} padded, {index.rows} descriptors")
    for label, keyframe_sets in queries.items():
        spent, matched = [], 0
        for keyframes in keyframe_sets:
            for _ in range(3):
                started = time.process_time()
                hits = video_features.frame_hits(index, keyframes, min_pairs=video_features.RULE.min_inliers)
                spent.append((time.process_time() - started) * 1000)
            matched += any(video_features.RULE.passes(found) for found in hits.values())
        print(f"{label}: {len(keyframe_sets)} queries, CPU ms per query p50 {statistics.median(spent):.1f}, "
              f"max {max(spent):.1f}; matched {matched}")
    print(f"load {os.getloadavg()}")


if __name__ == "__main__":
    main()
