"""Other video feature rules on one run of bench_video_robustness.py: recall per half and false positives for each
(frames, inliers, ratio) choice, from the verified frame pairs the benchmark wrote with --hits-out.

A query video (an edited clip, or an original as a query) matches an original when at least `frames` distinct
query frames verify against its keyframes with `inliers` inliers at `ratio` (features.video.VideoRule). Recall
here is that of the feature rule alone over the edited clips; the benchmark's own column ORs it with vPDQ.

    .venv/bin/python scripts/bench_video_robustness.py --clips 2 --hits-out hits.json
    .venv/bin/python scripts/sweep_video_feature_rule.py hits.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_video_robustness import half  # the sibling script's split of the originals


def passes(frames: list[list[float]], min_frames: int, inliers: int, ratio: float) -> bool:
    good = {t for t, found, pairs in frames if found >= inliers and pairs and found / pairs >= ratio}
    return len(good) >= min_frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("hits", type=Path)
    args = parser.parse_args()
    rows = json.loads(args.hits.read_text())
    edited = sorted({r["query"] for r in rows if " of " in r["query"]})
    print("frames inliers ratio | tune recall | held-out recall | false positives (most frames of a false pair)")
    for min_frames in (1, 2, 3):
        for inliers in (20, 25, 30):
            for ratio in (0.25, 0.30):
                found = {(r["query"], r["item"]) for r in rows if passes(r["frames"], min_frames, inliers, ratio)}
                recall = {}
                for which in ("tune", "held_out"):
                    mine = [q for q in edited if half(q.split(" of ")[-1]) == which]
                    hit = sum((q, q.split(" of ")[-1]) in found for q in mine)
                    recall[which] = f"{hit}/{len(mine)}"
                false = [r for r in rows if not r["own"] and (r["query"], r["item"]) in found]
                print(f"{min_frames:6} {inliers:7} {ratio:5} | {recall['tune']:>11} | {recall['held_out']:>15} | "
                      f"{len(false)}")
    worst = max((max((f[1] for f in r["frames"]), default=0), r["query"], r["item"]) for r in rows if not r["own"])
    print("most inliers of one frame pair between distinct videos:", worst)
    per_edit: dict[str, list[int]] = {}
    for r in rows:
        if r["own"] and " of " in r["query"]:
            best = sorted((f[1] for f in r["frames"]), reverse=True)
            per_edit.setdefault(r["query"].split(" of ")[0], []).append(best[1] if len(best) > 1 else 0)
    print("second-best frame's inliers of each true pair, per edit:", json.dumps(per_edit))


if __name__ == "__main__":
    main()
