#!/usr/bin/env python
"""Retro-hunt's search alone: CPU per new item against N retained PDQ codes, by query batch size.

    .venv/bin/python scripts/bench_hunt_batches.py --retained 10000000 --new 20000 --sizes 2000 8000 20000

One thread, so the process CPU time is the search's; each size is timed twice (the first pass also warms caches).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_after_match import load, synthesize_retained

from hashsvc.index import HammingIndex

RADIUS = 31  # PDQ's default threshold, what the hunter searches at for default banks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--retained", type=int, default=10_000_000)
    parser.add_argument("--new", type=int, default=20_000)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 8000, 20000])
    args = parser.parse_args()
    rng = np.random.default_rng(3)
    codes = synthesize_retained(rng, args.retained, 0.2)
    started = time.perf_counter()
    index = HammingIndex(256, background_merge=False)
    index.add(np.arange(1, args.retained + 1, dtype=np.int64), codes)  # into an empty index: the bulk build
    print(f"index {time.perf_counter() - started:.1f} s; {load()}", flush=True)
    queries = rng.integers(0, 256, (args.new, 32), dtype=np.uint8)
    index.range_search(queries[:100], RADIUS)  # compiled kernels loaded before timing
    for _ in range(2):
        for size in args.sizes:
            cpu, wall = time.process_time(), time.perf_counter()
            for start in range(0, args.new, size):
                index.range_search(queries[start : start + size], RADIUS)
            per_item = (time.process_time() - cpu) / args.new * 1000
            wall_s = time.perf_counter() - wall
            print(f"batch {size}: {per_item:.3f} ms CPU per new item, wall {wall_s:.1f} s; {load()}", flush=True)


if __name__ == "__main__":
    main()
