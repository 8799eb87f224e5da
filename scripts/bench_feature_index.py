"""Lookup cost of the feature index at 10k and 100k stored items (and more with --sizes), FAISS kinds side by side.

Stored items: every corpus photo's real ORB features (`hashsvc.features.orb`, up to 256 each) under their own
ids, plus simulated items up to the size: each takes 256 descriptors drawn at random from the pool of all real
descriptors, every bit flipped with probability 5%, at random positions. They keep the real descriptors'
distribution in Hamming space (what a lookup's cost and chance hits depend on) without being copies of one image.
Queries: 15% crops at a seeded random offset of `--queries` corpus photos, re-encoded as JPEG q90, 256 features.

Per index kind and size: build time, bytes per stored item (FAISS's serialization + row owners + positions),
search time per upload (all its descriptors, `NEIGHBOURS` neighbours each; p50/p99 over the queries), the whole
candidate + verification step (`FeatureIndex.candidates` + `verify_pairs`), and whether the true item was found
and verified (`feature_policy.counts`). Kinds: flat (exact), HNSW (M=16; efSearch 16/32/64), IVF (nlist
~ 2 sqrt(descriptors), nprobe 4/16), and the service's exact HammingIndex (multi-index tables) as a range search
at MAX_DESCRIPTOR_DISTANCE, the alternative the design names. One thread everywhere.

    .venv/bin/python scripts/bench_feature_index.py ../shared/corpus --sizes 10000,100000 --json index.json
"""

from __future__ import annotations

import argparse
import io
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from hashsvc import media
from hashsvc.bench.samples import require_images
from hashsvc.features import MAX_STORED, Features, extract, extract_query, native, verify_pairs
from hashsvc.features.index import NEIGHBOURS, FeatureIndex
from hashsvc.features.verify import MAX_DESCRIPTOR_DISTANCE
from hashsvc.index import HammingIndex
from hashsvc.service import feature_policy


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def simulated(pool: np.ndarray, items: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(descriptors (items * 256, 32), positions) of simulated items: real descriptors with 5% bit noise."""
    rows = items * MAX_STORED
    out = np.empty((rows, 32), np.uint8)
    for start in range(0, rows, 1 << 20):
        end = min(rows, start + (1 << 20))
        picked = pool[rng.integers(len(pool), size=end - start)]
        flips = np.packbits(rng.random((end - start, 256), dtype=np.float32) < 0.05, axis=1)
        out[start:end] = picked ^ flips
    return out, rng.uniform(0, 512, (rows, 2)).astype(np.float32)


def timed(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--hnsw-max", type=int, default=10_000, help="largest size to build HNSW at (slow build)")
    parser.add_argument("--flat-queries", type=int, default=5, help="queries for flat above 1k items (slow)")
    parser.add_argument("--kinds", default="flat,hnsw,ivf,hamming", help="which indexes to measure")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    faiss = native.faiss()
    rng = np.random.default_rng(11)

    photos = require_images(args.folder, "a folder argument")
    real: list[Features] = []
    for path in photos:
        real.append(extract(media.decode_first(path.read_bytes()).pixels, MAX_STORED))
    queries: list[tuple[int, Features]] = []
    for k in rng.choice(len(photos), size=args.queries, replace=False):
        image = media.decode_first(photos[k].read_bytes()).pixels
        w, h = image.size
        dx, dy = rng.uniform(0, 0.15, 2)
        crop = image.crop((round(w * dx), round(h * dy), w - round(w * (0.15 - dx)), h - round(h * (0.15 - dy))))
        queries.append((int(k), extract_query(media.decode_first(_jpeg(crop)).pixels)))
    pool = np.concatenate([f.descriptors for f in real])
    print(f"{len(real)} real items, {len(pool)} real descriptors; {len(queries)} queries; load {os.getloadavg()}")

    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        extra = size - len(real)
        sim_desc, sim_pos = simulated(pool, extra, rng)
        items = np.r_[np.arange(len(real)), np.arange(10**9, 10**9 + extra)].astype(np.int64)
        counts = np.r_[[len(f) for f in real], np.full(extra, MAX_STORED)].astype(np.int32)
        descriptors = np.concatenate([*(f.descriptors for f in real), sim_desc])
        positions = np.concatenate([*(f.positions for f in real), sim_pos])
        del sim_desc, sim_pos
        rows = len(descriptors)
        owner = np.repeat(items, counts)
        print(f"\n{size} items, {rows} descriptors ({descriptors.nbytes / 2**20:.0f} MiB of codes)")

        ctx = Context(size, owner, positions, queries, results)
        bits = 256
        kinds = set(args.kinds.split(","))
        limit = len(queries) if size <= 1_000 else args.flat_queries
        if "flat" in kinds:
            started = time.perf_counter()
            flat = faiss.IndexBinaryFlat(bits)
            flat.add(descriptors)
            ctx.service_index("flat", "flat (exact)", flat, time.perf_counter() - started, limit)
            del flat

        if "hnsw" in kinds and size <= args.hnsw_max:
            started = time.perf_counter()
            hnsw = faiss.IndexBinaryHNSW(bits, 16)
            hnsw.hnsw.efConstruction = 40
            hnsw.add(descriptors)
            build = time.perf_counter() - started
            for ef in (16, 32, 64):
                hnsw.hnsw.efSearch = ef
                ctx.service_index("hnsw", f"hnsw M=16 efSearch={ef}", hnsw, build, len(queries))
                build = 0.0
            del hnsw

        if "ivf" in kinds:
            nlist = 1 << round(np.log2(2 * np.sqrt(rows)))
            started = time.perf_counter()
            quantizer = faiss.IndexBinaryFlat(bits)
            ivf = faiss.IndexBinaryIVF(quantizer, bits, nlist)
            ivf.train(descriptors[rng.choice(rows, size=min(rows, 64 * nlist), replace=False)])
            ivf.add(descriptors)
            build = time.perf_counter() - started
            for nprobe in (4, 16):
                ivf.nprobe = nprobe
                ctx.service_index("ivf", f"ivf nlist={nlist} nprobe={nprobe}", ivf, build, len(queries))
                build = 0.0
            del ivf, quantizer

        if "hamming" in kinds and size <= 1_000:
            started = time.perf_counter()
            hamming = HammingIndex(bits, background_merge=False)
            hamming.add(np.arange(rows, dtype=np.int64), descriptors)
            hamming.compact()
            build = time.perf_counter() - started
            search = [timed(partial(hamming.range_search, q.descriptors, MAX_DESCRIPTOR_DISTANCE))
                      for _, q in queries[:5]]
            ctx.report("HammingIndex range <= 64 bits", build, rows * 40, search, [], [])
            del hamming
        del descriptors, positions, owner

    if args.json:
        args.json.write_text(json.dumps({"results": results, "loadavg_end": os.getloadavg()}, indent=1))


@dataclass
class Context:
    """One size's stored rows and the results table."""

    size: int
    owner: np.ndarray
    positions: np.ndarray
    queries: list[tuple[int, Features]]
    results: list[dict[str, object]]

    def report(self, kind: str, build_s: float, nbytes: float, search: list[float], whole: list[float],
               found: list[bool]) -> None:
        row = {"items": self.size, "kind": kind, "build_s": round(build_s, 1),
               "bytes_per_item": round(nbytes / self.size),
               "search_ms_p50": round(float(np.percentile(search, 50)), 2),
               "search_ms_p99": round(float(np.percentile(search, 99)), 2),
               "candidates_and_verify_ms_p50": round(float(np.percentile(whole, 50)), 2) if whole else None,
               "found": f"{sum(found)}/{len(found)}", "queries": len(search)}
        self.results.append(row)
        print(f"  {kind:<28} build {row['build_s']:>7} s  {row['bytes_per_item']:>7} B/item  "
              f"search p50 {row['search_ms_p50']:>8} ms p99 {row['search_ms_p99']:>8} ms  "
              f"+verify p50 {row['candidates_and_verify_ms_p50']} ms  true item verified {row['found']}")

    def service_index(self, kind: str, label: str, index: Any, build_s: float, limit: int) -> None:
        """Time FAISS's search and the service's own candidates + verification over this FAISS index."""
        service = FeatureIndex.from_raw(kind, index, self.owner, self.positions)  # type: ignore[arg-type]
        serial = len(native.faiss().serialize_index_binary(index))
        search, whole, found = [], [], []
        for k, query in self.queries[:limit]:
            search.append(timed(partial(index.search, query.descriptors, NEIGHBOURS)))
            started = time.perf_counter()
            verdicts = {c.item_id: verify_pairs(c.query_xy, c.stored_xy) for c in service.candidates(query)}
            whole.append((time.perf_counter() - started) * 1000)
            found.append(k in verdicts and feature_policy.counts(verdicts[k]))
        self.report(label, build_s, serial + self.owner.nbytes + self.positions.nbytes, search, whole, found)


if __name__ == "__main__":
    main()
