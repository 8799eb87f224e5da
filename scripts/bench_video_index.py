"""Video matching at scale: 100k banked videos x 60 frames (6M synthesized frame PDQs) in the exact index.

Each synthesized video is a few scenes; a scene's frames are random walks from a random scene code (a flip of
~24 bits a second, about what one second of a pan does to PDQ), so neighbouring frames are near each other as
in real videos. Queries have 60 frames: half are edits of banked videos (every frame 8-20 bits off its source,
both ends trimmed by a few frames and as many unrelated frames appended), half are unrelated videos.

Timed per query, as the service does it (service/video.py), minus the store reads (the candidates' owners and
frame lists):
1. one `HammingIndex.range_search` at radius 31 of the query's distinct frames that pigeonhole needs
   (`vpdq.probe_frames`: 13 of 60 at Meta's 80 %) in the index of video frames (the service keeps still images'
   PDQs in another index, which it searches with every frame; `--stills N` adds one with N random codes);
   `--probe all` looks up every frame instead, as the service did before, for an A/B in one run;
2. the candidate items (hash id -> item by an array), and for all candidates at once the exact vPDQ shares
   between the query's frames and each item's 60 (Meta's rule: query share >= 80 %).
Prints p50/p99 and the process's peak RSS, and writes JSON.

    .venv/bin/python scripts/bench_video_index.py --videos 100000 --frames 60 --queries 400
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import time
from pathlib import Path

import numpy as np

from hashsvc.hashes import vpdq
from hashsvc.index import HammingIndex

BITS = 256
RADIUS = 31


def flip(codes: np.ndarray, bits: int, rng: np.random.Generator) -> np.ndarray:
    """Flip about `bits` random bits in each row of packed (n, 32) codes (a position drawn twice flips back)."""
    out = codes.copy()
    n = len(codes)
    positions = rng.integers(0, BITS, (n, bits))
    for column in range(bits):
        pos = positions[:, column]
        out[np.arange(n), pos // 8] ^= (0x80 >> (pos % 8)).astype(np.uint8)
    return out


def synthesize(videos: int, frames: int, rng: np.random.Generator) -> np.ndarray:
    """(videos, frames, 32) uint8 frame codes with scene structure."""
    codes = np.empty((videos, frames, 32), dtype=np.uint8)
    scene_len = 10
    for start in range(0, frames, scene_len):
        current = rng.integers(0, 256, (videos, 32), dtype=np.uint8)
        for f in range(start, min(frames, start + scene_len)):
            if f > start:
                current = flip(current, 24, rng)
            codes[:, f] = current
    return codes


def query_shares(query: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Query share (percent) of each of the (c, frames, 32) candidate items, all in one array expression."""
    a, b = query.view(np.uint64), items.view(np.uint64)  # (n, 4), (c, f, 4)
    within = np.bitwise_count(a[None, :, None, :] ^ b[:, None, :, :]).sum(axis=3) <= RADIUS  # (c, n, f)
    return 100.0 * within.any(axis=2).mean(axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=100_000)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--probe", choices=("pigeonhole", "all"), default="pigeonhole")
    parser.add_argument("--stills", type=int, default=0, help="random still-image PDQs in their own index")
    parser.add_argument("--out", type=Path, default=Path("bench_video_index.json"))
    args = parser.parse_args()
    rng = np.random.default_rng(15)
    started = time.perf_counter()
    codes = synthesize(args.videos, args.frames, rng)
    flat = codes.reshape(-1, 32)
    item_of = np.repeat(np.arange(args.videos, dtype=np.int64), args.frames)
    index = HammingIndex(BITS, background_merge=False)
    chunk = 1_000_000
    for lo in range(0, len(flat), chunk):
        index.add(np.arange(lo, min(lo + chunk, len(flat)), dtype=np.int64), flat[lo : lo + chunk])
    index.compact()
    stills = HammingIndex(BITS, background_merge=False)
    if args.stills:
        stills.add(np.arange(args.stills, dtype=np.int64), rng.integers(0, 256, (args.stills, 32), dtype=np.uint8))
        stills.compact()
    build_s = time.perf_counter() - started
    print(f"built {len(index):,} frame codes and {len(stills):,} stills in {build_s:.0f} s")
    rules = [(vpdq.QUERY_SHARE, vpdq.QUALITY_THRESHOLD)]

    index.range_search(flat[:60], RADIUS)  # load the compiled kernels before timing
    index.range_search(flat[:1], RADIUS)
    timings, search_ms, correct, false_hits = [], [], 0, 0
    for q in range(args.queries):
        banked = q % 2 == 0
        if banked:
            source = int(rng.integers(args.videos))
            trim = int(rng.integers(1, 6))
            kept = codes[source, trim : args.frames - trim]
            edited = np.concatenate([flip(kept[i : i + 1], int(rng.integers(8, 21)), rng) for i in range(len(kept))])
            query = np.concatenate([edited, rng.integers(0, 256, (2 * trim, 32), dtype=np.uint8)])
        else:
            source = -1
            query = synthesize(1, args.frames, rng)[0]
        t0 = time.perf_counter()
        distinct = np.unique(query, axis=0)
        if args.probe == "all":
            probe = distinct
        else:  # the synthetic frames all have quality 100: any `needed` of them serve
            features = [vpdq.Feature(b"", 100, float(n)) for n in range(len(distinct))]
            probe = distinct[vpdq.probe_frames(features, rules)]
        results = index.range_search(probe, RADIUS)
        if len(stills):
            stills.range_search(distinct, RADIUS)
        search_ms.append((time.perf_counter() - t0) * 1000)
        found = [ids for ids, _ in results if len(ids)]
        candidates = np.unique(item_of[np.concatenate(found)]) if found else np.empty(0, dtype=np.int64)
        matched = candidates[query_shares(distinct, codes[candidates]) >= vpdq.QUERY_SHARE].tolist()
        timings.append((time.perf_counter() - t0) * 1000)
        if banked:
            correct += matched == [source]
        else:
            false_hits += bool(matched)
    timings.sort()
    p50 = statistics.median(timings)
    p99 = timings[min(len(timings) - 1, int(0.99 * len(timings)))]
    load = os.getloadavg()
    summary = {
        "videos": args.videos, "frames_per_video": args.frames, "frame_codes": len(index), "stills": len(stills),
        "probe": args.probe, "queries": args.queries, "index_mb": round(index.nbytes / 2**20),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "build_s": round(build_s, 1), "search_only_p50_ms": round(statistics.median(search_ms), 2),
        "search_only_p99_ms": round(sorted(search_ms)[min(len(search_ms) - 1, int(0.99 * len(search_ms)))], 2),
        "p50_ms": round(p50, 2), "p99_ms": round(p99, 2), "max_ms": round(timings[-1], 2),
        "edited_queries_matched_to_their_source_only": f"{correct}/{args.queries // 2 + args.queries % 2}",
        "unrelated_queries_with_a_match": f"{false_hits}/{args.queries // 2}", "load": load,
    }  # fmt: skip
    print(json.dumps(summary, indent=1))
    args.out.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
