#!/usr/bin/env python
"""Scan throughput on Dask: images/s with 1, 2 and 4 worker processes, the cost split, and a cluster-size projection.

It writes N JPEG mosaics of about M megapixels (from ../shared/corpus) to a folder, and a SQLite store holding
H random PDQ hashes plus the first 10 images (so some files really match). Then, for each worker count, it starts
a LocalCluster of that many single-threaded processes, warms every worker (each builds its own Service: index
load, kernel compilation), and times `hashsvc.service.scan.run_scan` over the folder: images/s is files / wall
time of the scan alone. The cost split is measured in this process on the same files, one at a time: read the
bytes, decode (media.decode_first), decode + hash as the service does (dihedral PDQ and the query views), and the
whole match (`Service.match_image`); hash = (decode + hash) - decode, lookup = match - (decode + hash).

    .venv/bin/python scripts/bench_scan.py --images 400 --hashes 100000 --json results/bench_scan.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable without installing

from hashsvc import media
from hashsvc.bench.samples import mosaic, require_images, to_jpeg
from hashsvc.config import load_settings
from hashsvc.service import scan
from hashsvc.service.live_index import LiveIndex
from hashsvc.service.service import Service
from hashsvc.store import Actor, NewItem, Store, upgrade

ROOT = Path(__file__).resolve().parents[1]
IMAGES_PER_DAY = 1_000_000_000 / 86_400


def prepare(folder: Path, url: str, images: int, megapixels: float, hashes: int, corpus: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    sources = require_images(corpus)
    for n in range(images):
        path = folder / f"img{n:05d}.jpg"
        if not path.exists():
            path.write_bytes(to_jpeg(mosaic(sources, megapixels, seed=n)))
    upgrade(url)
    with Store(url) as store:
        if store.list_banks():
            return
        store.create_bank("bench", category="other", actor="bench")
        rng = np.random.default_rng(1)
        for start in range(0, hashes, 50_000):
            codes = rng.integers(0, 256, (min(50_000, hashes - start), 32), dtype=np.uint8)
            store.add_items("bench", (NewItem([("pdq", bytes(c))]) for c in codes), actor="bench")
    settings = load_settings({"database_url": url, "sandbox": False})
    store = Store(url)
    service = Service(settings, store=store, live=LiveIndex(store))
    for path in sorted(folder.iterdir())[:10]:  # so that some files really match
        service.add_item_from_image("bench", path.read_bytes(), {}, Actor("bench"))
    service.close()


def warm(url: str) -> bool:
    """Build this worker's Service (index load, compiled kernels) before the clock starts."""
    settings = load_settings({"database_url": url, "sandbox": False})
    scan._local_service(settings, scan.Lookup(database_url=url))
    return True


def scan_rate(folder: Path, url: str, workers: int, partition_files: int) -> dict[str, object]:
    from distributed import Client, LocalCluster

    out = Path(tempfile.mkdtemp(prefix="hashsvc-bench-scan-"))
    try:
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
                Client(cluster) as client:
            client.run(warm, url)
            plan = scan.make_plan(out, [str(folder)], partition_files=partition_files)
            load_before = os.getloadavg()[0]
            summary = scan.run_scan(client, plan, out, scan.Lookup(database_url=url))
            load_after = os.getloadavg()[0]
        return {
            "workers": workers,
            "images": summary.scanned,
            "seconds": summary.seconds,
            "images_per_s": round(summary.scanned / summary.seconds, 1),
            "decisions": summary.decisions,
            "errors": summary.errors,
            "worker_seconds": summary.worker_seconds,
            "load_1min_before_after": [round(load_before, 2), round(load_after, 2)],
        }
    finally:
        shutil.rmtree(out, ignore_errors=True)


def cost_split(folder: Path, url: str, sample: int) -> dict[str, float]:
    """Median ms per image of each stage, measured one image at a time in this process."""
    settings = load_settings({"database_url": url, "sandbox": False})
    store = Store(url)
    service = Service(settings, store=store, live=LiveIndex(store))
    service.live.load()
    limits = service.limits
    rules = media.PixelRules(settings.pixel_rules)
    times: dict[str, list[float]] = {"read": [], "decode": [], "decode_and_hash": [], "match": []}
    paths = sorted(folder.iterdir())[:sample]
    for path in paths[:3]:  # warm-up: first calls compile and fill caches
        service.match_image(path.read_bytes())
    for path in paths:
        started = time.perf_counter()
        data = path.read_bytes()
        times["read"].append(time.perf_counter() - started)
        started = time.perf_counter()
        media.decode_first(data, limits, rules=rules, work_size=settings.work_size or None)
        times["decode"].append(time.perf_counter() - started)
        started = time.perf_counter()
        service._hash(data, dihedral=True, extras="query")
        times["decode_and_hash"].append(time.perf_counter() - started)
        started = time.perf_counter()
        service.match_image(data)
        times["match"].append(time.perf_counter() - started)
    service.close()
    med = {name: statistics.median(values) * 1000 for name, values in times.items()}
    return {
        "read_ms": round(med["read"], 2),
        "decode_ms": round(med["decode"], 2),
        "hash_ms": round(med["decode_and_hash"] - med["decode"], 2),
        "lookup_ms": round(med["match"] - med["decode_and_hash"], 2),
        "images": len(paths),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--megapixels", type=float, default=1.0)
    parser.add_argument("--hashes", type=int, default=100_000, help="random PDQ hashes in the store")
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--partition-files", type=int, default=25)
    parser.add_argument("--sample", type=int, default=100, help="images timed one by one for the cost split")
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus")
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "hashsvc-bench-scan")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    folder = args.data_dir / "images"
    url = f"sqlite:///{args.data_dir / 'store.db'}"
    prepare(folder, url, args.images, args.megapixels, args.hashes, args.corpus)
    sizes = [p.stat().st_size for p in folder.iterdir()]
    rows = [scan_rate(folder, url, int(w), args.partition_files) for w in args.workers.split(",")]
    split = cost_split(folder, url, args.sample)

    print(f"{len(sizes)} JPEGs of ~{args.megapixels} MP (mean {statistics.mean(sizes) / 1024:.0f} KiB), "
          f"{args.hashes} PDQ hashes in the store, {os.cpu_count()} cores")
    print("| worker processes | images/s | scan s | load before/after |")
    print("|---:|---:|---:|---|")
    for row in rows:
        print(f"| {row['workers']} | {row['images_per_s']} | {row['seconds']} | {row['load_1min_before_after']} |")
    print(f"cost split, median ms per image: {split}")
    one = rows[0]["images_per_s"]
    best = max(float(row["images_per_s"]) for row in rows)  # type: ignore[arg-type]
    per_core = best / (os.cpu_count() or 1)
    cores = IMAGES_PER_DAY / per_core
    projection = {
        "target_images_per_s": round(IMAGES_PER_DAY, 1),
        "images_per_s_per_core": round(per_core, 1),
        "cores_needed": int(np.ceil(cores)),
        "assumptions": [
            f"images like these (~{args.megapixels} MP JPEGs, mean {statistics.mean(sizes) / 1024:.0f} KiB)",
            "per-core rate as measured here with every core busy (best row / cores), scaling linearly across "
            "machines: hashing is embarrassingly parallel and each partition is independent",
            "reads cost what local disk costs here; object storage adds latency per file that enough "
            "concurrent partitions hide, but not its bandwidth: "
            f"{IMAGES_PER_DAY * statistics.mean(sizes) / 2**30:.1f} GiB/s in all at this file size",
            "lookups in a per-worker index of this size; at 10M hashes each worker holds ~1 GB more and a "
            "lookup costs more (see docs/index.md)",
            "no machine lost: Dask reruns a lost worker's partitions, which adds their time",
        ],
    }
    print(f"1 billion images in 24 h = {IMAGES_PER_DAY:,.0f} images/s: about {projection['cores_needed']} cores "
          f"at {per_core:.1f} images/s per core (1 worker: {one}/s)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        meta = {"command": " ".join(sys.argv), "load_at_end": os.getloadavg()}
        report = {**meta, "rows": rows, "cost_split": split, "projection": projection}
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
