"""Print, per sample video in ../shared/vpdq-conformance, how far our vPDQ frame hashes are from Meta's published
ones, frame by frame (frames whose published quality is >= 50, the frames vPDQ compares).

    .venv/bin/python scripts/report_vpdq_conformance.py                 # every frame, the default pipeline
    .venv/bin/python scripts/report_vpdq_conformance.py --per-frame     # also every frame's distance
    .venv/bin/python scripts/report_vpdq_conformance.py --seconds-per-hash 1
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from hashsvc.hashes import hamming
from hashsvc.service.video_hashing import hash_video


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    shared = Path(__file__).resolve().parents[2] / "shared"
    parser.add_argument("--root", type=Path, default=shared / "vpdq-conformance")
    parser.add_argument("--seconds-per-hash", type=float, default=0.0, help="0: every frame, as the references")
    parser.add_argument("--work-size", type=int, default=400, help="0: full resolution")
    parser.add_argument("--per-frame", action="store_true")
    args = parser.parse_args()
    print("video, frames compared, median, p95, max, mean bits, CPU s")
    for video in sorted((args.root / "videos").glob("*.mp4")):
        reference = {}
        for line in (args.root / "hashes" / f"{video.stem}.txt").read_text().split():
            frame, quality, pdq_hex, _ = line.split(",")
            reference[int(frame)] = (bytes.fromhex(pdq_hex), int(quality))
        started = time.process_time()
        features = hash_video(video.read_bytes(), seconds_per_hash=args.seconds_per_hash,
                              work_size=args.work_size or None).features  # fmt: skip
        cpu = time.process_time() - started
        pairs = [(f.frame, hamming(f.code, reference[f.frame][0])) for f in features if reference[f.frame][1] >= 50]
        bits = np.array([d for _, d in pairs])
        print(f"{video.stem}, {len(bits)}, {np.median(bits):g}, {np.percentile(bits, 95):g}, {bits.max()}, "
              f"{bits.mean():.2f}, {cpu:.2f}")  # fmt: skip
        if args.per_frame:
            print("  " + " ".join(f"{frame}:{d}" for frame, d in pairs))


if __name__ == "__main__":
    main()
