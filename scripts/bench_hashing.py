#!/usr/bin/env python
"""Time hashsvc's hashing pipeline against the naive one, per input class, in the same run.

Naive = what HMA and python-threatexchange do: full decode -> RGB -> pdqhash.compute + imagehash.phash + MD5.
Ours  = hashsvc.service.hashing.hash_image: PDQ + pHash + dHash + MD5 + SHA-256 through the fast path.
Both run in this one process on one core, alternating per image so that machine noise hits both alike.
Also reports how far our PDQ/pHash are from the naive ones (the faithfulness of the fast path).

    .venv/bin/python scripts/bench_hashing.py --corpus ../shared/corpus --json results/bench_hashing.json
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

from PIL import Image

from hashsvc.bench.naive import naive_hashes
from hashsvc.bench.samples import mosaic, require_images, to_jpeg, upscale
from hashsvc.hashes import hamming
from hashsvc.service.hashing import hash_image


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def input_classes(corpus: Path, per_class: int) -> dict[str, list[bytes]]:
    sources = require_images(corpus)
    seeds = range(per_class)
    print(f"preparing inputs from {len(sources)} corpus images...", file=sys.stderr)
    return {
        "corpus (as is)": [p.read_bytes() for p in sources],
        "2 MP JPEG": [to_jpeg(mosaic(sources, 2, s)) for s in seeds],
        "12 MP JPEG": [to_jpeg(mosaic(sources, 12, s)) for s in seeds],
        "24 MP JPEG": [to_jpeg(mosaic(sources, 24, s)) for s in seeds],
        "12 MP JPEG, upscaled (worst case)": [to_jpeg(upscale(sources[s * 37 % len(sources)], 12)) for s in seeds],
        "12 MP PNG": [encode(mosaic(sources, 12, s), "PNG", compress_level=1) for s in seeds[:2]],
        "12 MP WebP": [encode(mosaic(sources, 12, s), "WEBP", quality=85) for s in seeds[:2]],
    }


def timed(function: Callable[[bytes], object], data: bytes) -> tuple[float, object]:
    started = time.perf_counter()
    result = function(data)
    return (time.perf_counter() - started) * 1000, result


def measure(datas: list[bytes], repeats: int) -> dict[str, float]:
    ours_ms, naive_ms, pdq_bits, phash_bits = [], [], [], []
    for data in datas:
        for _ in range(repeats):
            t_ours, ours = timed(hash_image, data)
            t_naive, naive = timed(naive_hashes, data)
            ours_ms.append(t_ours)
            naive_ms.append(t_naive)
        pdq_bits.append(hamming(ours.pdq.code, naive.pdq))  # type: ignore[attr-defined]
        phash_bits.append(hamming(ours.phash, naive.phash))  # type: ignore[attr-defined]
    ours_median, naive_median = statistics.median(ours_ms), statistics.median(naive_ms)
    return {
        "images": len(datas),
        "ours_ms_p50": round(ours_median, 2),
        "naive_ms_p50": round(naive_median, 2),
        "speedup": round(naive_median / ours_median, 1),
        "pdq_bits_median": statistics.median(pdq_bits),
        "pdq_bits_max": max(pdq_bits),
        "phash_bits_max": max(phash_bits),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "corpus")
    parser.add_argument("--per-class", type=int, default=6, help="generated images per large-image class")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=Path("results/bench_hashing.json"))
    args = parser.parse_args()

    results = {}
    for name, datas in input_classes(args.corpus, args.per_class).items():
        repeats = 1 if name.startswith("corpus") else args.repeats
        results[name] = measure(datas, repeats)
        print(f"measured {name}", file=sys.stderr)

    header = "| input | n | ours p50 ms | naive p50 ms | speed-up | PDQ bits vs naive (median / max) | pHash max |"
    print(header)
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        print(
            f"| {name} | {r['images']} | {r['ours_ms_p50']} | {r['naive_ms_p50']} | {r['speedup']}x"
            f" | {r['pdq_bits_median']} / {r['pdq_bits_max']} | {r['phash_bits_max']} |"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"cpu_count": os.cpu_count(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
