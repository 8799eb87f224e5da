#!/usr/bin/env python
"""What the pHash/dHash of a query's rotations and flips add to hashing an upload (issue 12), A/B in one run.

A = `hash_image(data, dihedral=True, extras="query")` as `POST /v1/match` runs it now: every query view's PDQ
    rotations/flips plus, from `hashes.dihedral64`, the pHash and dHash of each of them.
B = the same call with the turned pHash/dHash switched off (upright pHash/dHash per view only, as before).
P = (with --previous FILE) the same call with the `dihedral_short_hashes` of another build's dihedral64.py, e.g.
    the one before the turned hashes were derived from the upright thumbnails: `--previous
    /work/main/hashsvc/hashes/dihedral64.py`.
The arms alternate per image in this one process on one core, so machine noise hits them alike. Prints the
median per input class and the ratios; the load at the time is printed too, since the machine is shared.

    .venv/bin/python scripts/bench_dihedral_short.py ../shared/corpus --per-class 40 --repeats 3
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import time
from collections.abc import Callable
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


def previous_build(path: Path) -> Callable[[Image.Image], dict[str, tuple[bytes, bytes]]]:
    """`dihedral_short_hashes` from another build's dihedral64.py (it imports this build's `compute`)."""
    spec = importlib.util.spec_from_file_location("previous_dihedral64", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dihedral_short_hashes


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
    parser.add_argument("--previous", type=Path, help="another build's hashsvc/hashes/dihedral64.py: arm P")
    args = parser.parse_args()
    real = dihedral64.dihedral_short_hashes
    arms = {"A": real, "B": upright_only} | ({"P": previous_build(args.previous)} if args.previous else {})
    report: dict[str, object] = {"load_before": os.getloadavg()}
    rows = {}
    for name, datas in inputs(args.corpus, args.per_class).items():
        times: dict[str, list[float]] = {arm: [] for arm in arms}
        for _ in range(args.repeats):
            for data in datas:
                for arm, fn in arms.items():
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
        if "P" in times:
            prev = statistics.median(times["P"]) * 1000
            rows[name] |= {"P_median_ms": round(prev, 2), "A_over_P": round(a / prev, 3),
                           "P_over_B": round(prev / b, 3)}
            print(f"{'':20s} P (previous build) {prev:7.2f} ms  A/P {a / prev:.3f}  P/B {prev / b:.3f}")
    report["rows"] = rows
    report["load_after"] = os.getloadavg()
    print(f"load average before {report['load_before']}, after {report['load_after']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
