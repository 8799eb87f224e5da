#!/usr/bin/env python
"""What the pHash/dHash of a query's rotations and flips add to hashing an upload (issue 12), A/B in one run.

A = `hash_image(data, dihedral=True, extras="query")` as `POST /v1/match` runs it now: every query view's PDQ
    rotations/flips plus, from `hashes.dihedral64`, the pHash and dHash of each of them.
B = the same call with the turned pHash/dHash switched off (upright pHash/dHash per view only, as before).
A and B alternate per image in this one process on one core, so machine noise hits both alike. Prints the
median per input class and the ratio A/B; the load at the time is printed too, since the machine is shared.

    .venv/bin/python scripts/bench_dihedral_short.py ../shared/corpus --per-class 40 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

from PIL import Image

from hashsvc.bench.samples import mosaic, require_images, to_jpeg
from hashsvc.hashes import compute, dihedral64
from hashsvc.service import hashing


def upright_only(image: Image.Image) -> dict[str, tuple[bytes, bytes]]:
    """B: the upright view's pHash/dHash only, the way they were computed before issue 12."""
    gray = compute.hashing_gray(image)
    return {"original": (compute.phash(gray), compute.dhash(gray))}


def inputs(corpus: Path, per_class: int) -> dict[str, list[bytes]]:
    photos = [p for p in require_images(corpus, "a folder argument") if p.suffix.lower() in {".jpg", ".jpeg"}]
    step = max(1, len(photos) // per_class)
    corpus_jpegs = [p.read_bytes() for p in photos[::step][:per_class]]
    big = [to_jpeg(mosaic(photos, 1.0, seed)) for seed in range(per_class)]
    return {"corpus JPEGs": corpus_jpegs, "1 MP JPEG mosaics": big}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--per-class", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    real = dihedral64.dihedral_short_hashes
    report: dict[str, object] = {"load_before": os.getloadavg()}
    rows = {}
    for name, datas in inputs(args.corpus, args.per_class).items():
        times: dict[str, list[float]] = {"A": [], "B": []}
        for _ in range(args.repeats):
            for data in datas:
                for arm, fn in (("A", real), ("B", upright_only)):
                    hashing.dihedral64.dihedral_short_hashes = fn  # type: ignore[assignment]
                    started = time.perf_counter()
                    hashing.hash_image(data, dihedral=True, extras="query")
                    times[arm].append(time.perf_counter() - started)
        hashing.dihedral64.dihedral_short_hashes = real  # type: ignore[assignment]
        a, b = statistics.median(times["A"]) * 1000, statistics.median(times["B"]) * 1000
        rows[name] = {"images": len(datas), "runs_per_arm": len(times["A"]), "A_median_ms": round(a, 2),
                      "B_median_ms": round(b, 2), "added_ms": round(a - b, 2), "ratio": round(a / b, 3)}
        print(f"{name:20s} A (with turned pHash/dHash) {a:7.2f} ms  B (upright only) {b:7.2f} ms  "
              f"added {a - b:5.2f} ms  A/B {a / b:.3f}  ({len(times['A'])} runs per arm)")
    report["rows"] = rows
    report["load_after"] = os.getloadavg()
    print(f"load average before {report['load_before']}, after {report['load_after']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
