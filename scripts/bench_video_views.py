"""What the trimmed view and the local features cost: CPU seconds of hashing 20 s of 720p24 (clips made from corpus
photos, as bench_video_robustness makes them) with and without `views`, for a clip without a border and the same
clip letterboxed to 75 % height (which gets the second decoding pass). Median of 3 each, in one process.

Two more rows per clip (features.video): "query with features" is what a query video costs once the service holds
video items with keyframes (views plus the ORB features of up to MAX_QUERY_FRAMES frames); "item with keyframes"
is what adding a video item costs (frames plus up to MAX_KEYFRAMES keyframes' features).

    .venv/bin/python scripts/bench_video_views.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_video_robustness as clips  # the clip maker is a sibling script

from hashsvc.features import video as video_features
from hashsvc.service.video_hashing import hash_video

RUNS: dict[str, dict[str, object]] = {
    "frames only": {},
    "with views": {"views": True},
    "query with features": {"views": True, "keyframes": video_features.MAX_QUERY_FRAMES, "keyframe_change": 0},
    "item with keyframes": {"keyframes": video_features.MAX_KEYFRAMES},
}


def letterbox(image: Image.Image) -> Image.Image:
    width, height = image.size
    canvas = Image.new("RGB", (width, height))
    inner = image.resize((width, round(height * 0.75)))
    canvas.paste(inner, (0, (height - inner.height) // 2))
    return canvas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "corpus")
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    if not args.corpus.is_dir():
        sys.exit(f"no image folder at {args.corpus}: pass --corpus with a folder of photos")
    clips.SIZE = (1280, 720)
    frames = clips.clip_frames(clips.photos(args.corpus)[:5], args.seconds)
    videos = {"no border": clips.encode(frames, clips.FPS),
              "letterboxed": clips.encode(clips._map(frames, letterbox), clips.FPS)}  # fmt: skip
    print("load", os.getloadavg())
    for name, data in videos.items():
        for label, options in RUNS.items():
            spent = []
            for _ in range(3):
                started = time.process_time()
                result = hash_video(data, **options)  # type: ignore[arg-type]
                spent.append(time.process_time() - started)
            print(f"{name}, {label}: {statistics.median(spent):.2f} s CPU, trimmed frames {len(result.trimmed)}, "
                  f"keyframes {len(result.keyframes)}")
    print("load", os.getloadavg())


if __name__ == "__main__":
    main()
