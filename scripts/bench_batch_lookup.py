#!/usr/bin/env python3
"""A/B in one process: a batch of PDQ queries answered one probe per query, or by the batched kernel.

For each N it builds one HammingIndex of N random 256-bit codes, then times `range_search(batch, 31)` on
batches of B queries (half near-duplicates of stored codes with 0..31 bits flipped, half random codes),
alternating the two paths round after round (`hashsvc.index.core.BATCH_MIN_QUERIES` switched between a value
above B, the per-query probe used before, and its default). Reported per query: thread CPU time (less sensitive
to other processes on the machine than wall time) and wall time, medians over the rounds; results of the two
paths are checked to be the same sets.

    .venv/bin/python scripts/bench_batch_lookup.py --sizes 1000000,10000000 --batch 1000 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable without installing

from hashsvc.index import HammingIndex, core


def queries(rng: np.random.Generator, codes: np.ndarray, count: int) -> np.ndarray:
    near = codes[rng.integers(0, len(codes), count // 2)].copy()
    for row in near:
        for bit in rng.choice(256, int(rng.integers(0, 32)), replace=False):
            row[bit // 8] ^= 1 << (7 - bit % 8)
    random = rng.integers(0, 256, (count - count // 2, 32), dtype=np.uint8)
    return np.concatenate([near, random])


def timed(index: HammingIndex, batch: np.ndarray, batched: bool) -> tuple[float, float, list[set[int]]]:
    core.BATCH_MIN_QUERIES = 8 if batched else len(batch) + 1
    cpu, wall = time.thread_time(), time.perf_counter()
    results = index.range_search(batch, 31)
    cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
    return cpu, wall, [set(ids.tolist()) for ids, _ in results]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    default_min = core.BATCH_MIN_QUERIES
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        rng = np.random.default_rng(n)
        codes = rng.integers(0, 256, (n, 32), dtype=np.uint8)
        batches = [queries(rng, codes, args.batch) for _ in range(args.rounds + 1)]
        index = HammingIndex(256)
        index.add(np.arange(n, dtype=np.int64), codes)
        del codes
        timed(index, batches[0][:16], True), timed(index, batches[0][:16], False)  # compile outside the clock
        cpu: dict[str, list[float]] = {"per_query": [], "batched": []}
        wall: dict[str, list[float]] = {"per_query": [], "batched": []}
        load_before = os.getloadavg()[0]
        for batch in batches[1:]:
            c0, w0, single = timed(index, batch, False)
            c1, w1, batched = timed(index, batch, True)
            assert single == batched, "the two paths disagree"
            cpu["per_query"].append(c0)
            wall["per_query"].append(w0)
            cpu["batched"].append(c1)
            wall["batched"].append(w1)
        core.BATCH_MIN_QUERIES = default_min
        us = {k: statistics.median(v) / args.batch * 1e6 for k, v in cpu.items()}
        wall_us = {k: statistics.median(v) / args.batch * 1e6 for k, v in wall.items()}
        row = {
            "n": n,
            "batch": args.batch,
            "rounds": args.rounds,
            "cpu_us_per_query": {k: round(v, 1) for k, v in us.items()},
            "wall_us_per_query": {k: round(v, 1) for k, v in wall_us.items()},
            "cpu_ratio": round(us["per_query"] / us["batched"], 2),
            "batched_queries_per_cpu_s": round(1e6 / us["batched"]),
            "load_1min_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        }
        rows.append(row)
        print(json.dumps(row))
        del index
    print("| N | per-query CPU µs/q | batched CPU µs/q | ratio | per-query wall µs/q | batched wall µs/q | load |")
    print("|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        c, w = r["cpu_us_per_query"], r["wall_us_per_query"]
        print(f"| {r['n']:,} | {c['per_query']} | {c['batched']} | {r['cpu_ratio']} | {w['per_query']} | "
              f"{w['batched']} | {r['load_1min_before_after']} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"command": " ".join(sys.argv), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
