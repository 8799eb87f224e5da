#!/usr/bin/env python3
"""Benchmark hashsvc.index.HammingIndex against FAISS binary indexes, all measured in the same run.

For each size N and data kind (uniform random codes, or clustered: many near-duplicates of few seeds):
  * our index, FAISS IndexBinaryFlat (exhaustive scan) and IndexBinaryMultiHash (HMA's config for 256 bits:
    16 tables of 16 bits, nflip=1; for 64 bits 4 x 16 with nflip=2) are built on the same codes;
  * queries are near-duplicates (a stored code with 0..radius bits flipped) or uniform random codes;
  * single-query latency p50/p99 (one query per call, one thread), batch throughput (all queries in one
    call), recall and exactness against the flat scan's result sets;
  * for our index also: build time, resident bytes per hash (RSS delta of the build and the sum of the
    index's array sizes, ids included), snapshot size / save / load time, and 100k incremental adds
    (1000 batches of 100, each batch's codes searched right after its add returns) plus single-code adds.

FAISS range search is strict (distance < radius), so it is passed radius + 1. Every engine runs on one
thread (faiss.omp_set_num_threads(1); numba kernels are single-threaded). Prints markdown tables and writes
JSON.

    .venv/bin/python scripts/bench_index.py --sizes 1000000,10000000 --queries 1000 --json results/bench_index.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable without installing

from hashsvc.index import HammingIndex

Result = list[set[int]]


def rss() -> int:
    gc.collect()
    return psutil.Process().memory_info().rss


def uniform_codes(rng: np.random.Generator, n: int, bits: int) -> np.ndarray:
    return rng.integers(0, 256, size=(n, bits // 8), dtype=np.uint8)


def flip_random_bits(rng: np.random.Generator, codes: np.ndarray, max_flips: int, chunk: int = 500_000) -> np.ndarray:
    """Each row with a uniform 0..max_flips distinct bits flipped."""
    out = codes.copy()
    bits = codes.shape[1] * 8
    for lo in range(0, len(codes), chunk):
        rows = out[lo : lo + chunk]
        k = rng.integers(0, max_flips + 1, size=len(rows))
        # a random permutation prefix per row: argsort of random keys, keep the first k columns
        order = np.argsort(rng.random((len(rows), bits), dtype=np.float32), axis=1)
        mask = np.zeros((len(rows), bits), dtype=bool)
        take = np.arange(bits)[None, :] < k[:, None]
        np.put_along_axis(mask, order, take, axis=1)
        rows ^= np.packbits(mask, axis=1)
    return out


def clustered_codes(
    rng: np.random.Generator, n: int, bits: int, cluster_size: int = 100, chunk: int = 1_000_000
) -> np.ndarray:
    """n codes in n / cluster_size clusters: a random seed with up to bits/16 random bits flipped per member.

    (Positions are drawn with replacement, so a member may have a few fewer distinct flips: cheap at 10M.)
    """
    seeds = uniform_codes(rng, max(1, n // cluster_size), bits)
    out = seeds[rng.integers(0, len(seeds), size=n)]
    kmax = bits // 16
    for lo in range(0, n, chunk):
        rows = out[lo : lo + chunk]
        k = rng.integers(0, kmax + 1, size=len(rows))
        pos = rng.integers(0, bits, size=(len(rows), kmax))
        valid = np.arange(kmax)[None, :] < k[:, None]
        mask = np.zeros((len(rows), bits), dtype=bool)
        mask[np.nonzero(valid)[0], pos[valid]] = True
        rows ^= np.packbits(mask, axis=1)
    return out


def percentile_ms(samples: list[float], q: float) -> float:
    return float(np.percentile(np.array(samples) * 1e3, q))


def time_single(search: Callable[[np.ndarray], Any], queries: np.ndarray) -> tuple[list[float], list[float], list[Any]]:
    """Wall-clock and thread CPU time per single-query call.

    The CPU time excludes time the thread spent descheduled, which on this shared 2-core machine is what
    dominates wall-clock tails when other jobs run; both are reported.
    """
    search(queries[:1])  # warm-up (JIT, caches)
    wall, cpu, results = [], [], []
    for i in range(len(queries)):
        c = time.thread_time()
        t = time.perf_counter()
        results.append(search(queries[i : i + 1]))
        wall.append(time.perf_counter() - t)
        cpu.append(time.thread_time() - c)
    return wall, cpu, results


# ------------------------------------------------------------------------------------------- engines


def ours_sets(ix: HammingIndex, queries: np.ndarray, radius: int) -> Result:
    return [set(ids.tolist()) for ids, _ in ix.range_search(queries, radius)]


def faiss_sets(index: Any, queries: np.ndarray, radius: int) -> Result:
    lims, _, labels = index.range_search(queries, radius + 1)  # FAISS: distance < radius
    return [set(labels[lims[i] : lims[i + 1]].tolist()) for i in range(len(queries))]


def recall(found: Result, truth: Result) -> tuple[float, bool]:
    hits = sum(len(f & t) for f, t in zip(found, truth, strict=True))
    total = sum(len(t) for t in truth)
    exact = all(f == t for f, t in zip(found, truth, strict=True))
    return (hits / total if total else 1.0), exact


def measure_engine(
    name: str,
    sets: Callable[[np.ndarray], Result],
    queries: np.ndarray,
    single_queries: int,
    truth: Result | None,
) -> dict[str, Any]:
    sub = queries[:single_queries]
    times, cpu, single = time_single(sets, sub)
    t = time.perf_counter()
    batch = sets(queries)
    batch_s = time.perf_counter() - t
    row: dict[str, Any] = {
        "engine": name,
        "p50_ms": percentile_ms(times, 50),
        "p99_ms": percentile_ms(times, 99),
        "p50_cpu_ms": percentile_ms(cpu, 50),
        "p99_cpu_ms": percentile_ms(cpu, 99),
        "single_queries": len(sub),
        "batch_qps": len(queries) / batch_s,
        "mean_matches": float(np.mean([len(s) for s in batch])),
    }
    if truth is not None:
        row["recall"], row["exact"] = recall(batch, truth)
        single_recall, _ = recall([s[0] for s in single], truth[: len(sub)])
        row["recall"] = min(row["recall"], single_recall)
    return row


# ------------------------------------------------------------------------------------------- scenarios


def make_queries(rng: np.random.Generator, codes: np.ndarray, count: int, kind: str, radius: int) -> np.ndarray:
    if kind == "near-dup":
        return flip_random_bits(rng, codes[rng.integers(0, len(codes), size=count)], radius)
    return uniform_codes(rng, count, codes.shape[1] * 8)


def lifecycle(ix: HammingIndex, codes: np.ndarray, rng: np.random.Generator, workdir: Path) -> dict[str, Any]:
    """Snapshot save/load and incremental adds on a built index."""
    out: dict[str, Any] = {}
    path = workdir / "bench.hix"
    t = time.perf_counter()
    ix.save(path, sequence=1)
    out["save_s"] = time.perf_counter() - t
    out["snapshot_mb"] = path.stat().st_size / 1e6
    ix_loaded = None
    t = time.perf_counter()
    ix_loaded = HammingIndex.load(path)
    out["load_s"] = time.perf_counter() - t
    assert len(ix_loaded) == len(ix)
    del ix_loaded
    path.unlink()

    n = len(ix)
    bits = codes.shape[1] * 8
    new = uniform_codes(rng, 100_000, bits)
    new_ids = np.arange(n, n + 100_000, dtype=np.int64) + 10**9
    t = time.perf_counter()
    search_s = 0.0
    for b in range(0, 100_000, 100):
        ix.add(new_ids[b : b + 100], new[b : b + 100])
        t2 = time.perf_counter()
        found = ix.range_search(new[b : b + 100 : 25], 0)  # 4 of each batch, right after the add returned
        search_s += time.perf_counter() - t2
        for j, (ids, _) in enumerate(found):
            assert new_ids[b + 25 * j] in ids, "an added code was not searchable at once"
    total = time.perf_counter() - t
    out["adds_100k_batched_s"] = total - search_s
    out["adds_100k_with_checks_s"] = total
    singles = uniform_codes(rng, 10_000, bits)
    single_ids = np.arange(10_000, dtype=np.int64) + 2 * 10**9
    t = time.perf_counter()
    for i in range(10_000):
        ix.add(single_ids[i : i + 1], singles[i : i + 1])
    out["single_add_us"] = (time.perf_counter() - t) / 10_000 * 1e6
    found = ix.range_search(singles[::100], 0)
    assert all(single_ids[100 * j] in ids for j, (ids, _) in enumerate(found))
    t = time.perf_counter()
    ix.wait_for_merge()
    out["merge_wait_s"] = time.perf_counter() - t
    return out


def print_rows(rows: list[dict[str, Any]], radius: int, kind: str) -> None:
    for r in rows:
        print(
            f"  r={radius} {kind:8s} {r['engine']:16s} p50 {r['p50_ms']:.3f} ms  p99 {r['p99_ms']:.3f} ms  "
            f"(CPU {r['p99_cpu_ms']:.3f})  batch {r['batch_qps']:.0f} q/s  recall {r.get('recall', float('nan')):.4f}",
            flush=True,
        )


def run_dataset(
    args: argparse.Namespace, bits: int, n: int, data: str, radii: list[int], workdir: Path
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    rng = np.random.default_rng(args.seed)
    codes = uniform_codes(rng, n, bits) if data == "uniform" else clustered_codes(rng, n, bits)
    ids = np.arange(n, dtype=np.int64)
    base = {"bits": bits, "n": n, "data": data}
    print(f"## {bits}-bit, N={n:,}, {data}", flush=True)

    t = time.perf_counter()
    ix = HammingIndex(bits)
    ix.add(ids, codes)
    build_s = time.perf_counter() - t
    ours_info = {
        **base,
        "build_s": build_s,
        "bytes_per_hash_rss": rss_in_fresh_process(bits, n, data, args.seed),
        "bytes_per_hash_arrays": ix.nbytes / n,
    }
    print(f"  ours built in {build_s:.1f} s, {ours_info['bytes_per_hash_arrays']:.1f} B/hash", flush=True)

    flat = faiss.IndexBinaryFlat(bits)
    flat.add(codes)
    mih = None
    if args.multihash and not args.ours_only:
        before = rss()
        t = time.perf_counter()
        mih = faiss.IndexBinaryMultiHash(bits, 16 if bits == 256 else 4, 16)
        mih.nflip = 1 if bits == 256 else 2
        mih.add(codes)
        ours_info["faiss_multihash_build_s"] = time.perf_counter() - t
        ours_info["faiss_multihash_bytes_per_hash_rss"] = (rss() - before) / n

    rows = []
    for radius in radii:
        for kind in ("near-dup", "random"):
            queries = make_queries(rng, codes, args.queries, kind, radius)
            t = time.perf_counter()
            truth = faiss_sets(flat, queries, radius)
            flat_batch_s = time.perf_counter() - t
            cell = {**base, "radius": radius, "queries": kind}
            ours = measure_engine("hashsvc", partial(ours_sets, ix, radius=radius), queries, len(queries), truth)
            rows.append({**cell, **ours})
            if args.ours_only:
                print_rows(rows[-1:], radius, kind)
                continue
            fl = measure_engine(
                "faiss-flat",
                partial(faiss_sets, flat, radius=radius),
                queries[: args.faiss_queries],
                args.faiss_queries,
                None,
            )
            fl["batch_qps"] = len(queries) / flat_batch_s
            fl["recall"], fl["exact"] = 1.0, True
            rows.append({**cell, **fl})
            # FAISS multi-hash is exact only where its nflip covers the radius (16 x (1+1) > 31, 4 x 3 > 11)
            if mih is not None:
                sub = queries[: args.faiss_queries]
                mh = measure_engine(
                    "faiss-multihash", partial(faiss_sets, mih, radius=radius), sub, len(sub), truth[: len(sub)]
                )
                rows.append({**cell, **mh})
            print_rows(rows[-3 if mih is not None else -2 :], radius, kind)
    del flat, mih
    gc.collect()
    if not args.skip_lifecycle:
        ours_info.update(lifecycle(ix, codes, rng, workdir))
        print(f"  lifecycle: {ours_info}", flush=True)
    del ix
    gc.collect()
    return rows, ours_info


def rss_in_fresh_process(bits: int, n: int, data: str, seed: int) -> float:
    """Resident bytes per hash of a built index, measured in a child process (no allocator reuse from earlier
    datasets): RSS after the build minus RSS before it, with the input codes already resident and freed."""
    code = (
        "import gc, sys, numpy as np, psutil\n"
        "sys.path.insert(0, 'scripts'); import bench_index as b\n"
        "from hashsvc.index import HammingIndex\n"
        f"bits, n = {bits}, {n}\n"
        f"rng = np.random.default_rng({seed})\n"
        f"codes = b.uniform_codes(rng, n, bits) if {data!r} == 'uniform' else b.clustered_codes(rng, n, bits)\n"
        "warm = HammingIndex(bits); warm.add(np.arange(70000), b.uniform_codes(rng, 70000, bits)); del warm\n"
        "gc.collect()\n"
        "ids = np.arange(n, dtype=np.int64)\n"
        "before = psutil.Process().memory_info().rss - codes.nbytes - ids.nbytes\n"
        "ix = HammingIndex(bits); ix.add(ids, codes); del codes, ids; gc.collect()\n"
        "print((psutil.Process().memory_info().rss - before) / n)\n"
    )
    root = Path(__file__).resolve().parents[1]
    res = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    return float(res.stdout.strip())


def compile_times() -> dict[str, float]:
    """Import + first search in a fresh process: with an empty numba cache (cold) and with it (warm)."""
    code = (
        "import time; t=time.perf_counter(); import numpy as np; from hashsvc.index import HammingIndex\n"
        "for b in (64, 256):\n"
        "    ix = HammingIndex(b); ix.add(np.arange(70000), np.zeros((70000, b // 8), np.uint8))\n"
        "    one = np.zeros((1, b // 8), np.uint8); ix.add(np.array([10**6]), one); ix.range_search(one, 3)\n"
        "print(time.perf_counter() - t)"
    )
    out = {}
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        for label in ("cold", "warm"):
            res = subprocess.run(
                [sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True, check=True
            )
            out[f"{label}_s"] = float(res.stdout.strip())
    return out


def markdown(rows: list[dict[str, Any]], infos: list[dict[str, Any]]) -> str:
    lines = [
        "| bits | N | data | radius | queries | engine | p50 ms | p99 ms | p99 CPU ms | batch q/s | recall | exact "
        "| matches/q |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['bits']} | {r['n']:,} | {r['data']} | {r['radius']} | {r['queries']} | {r['engine']} | "
            f"{r['p50_ms']:.3f} | {r['p99_ms']:.3f} | {r['p99_cpu_ms']:.3f} | {r['batch_qps']:.0f} | "
            f"{r.get('recall', float('nan')):.4f} | "
            f"{'yes' if r.get('exact') else 'no'} | {r['mean_matches']:.1f} |"
        )
    lines += [
        "",
        "| bits | N | data | build s | B/hash (RSS) | B/hash (arrays) | snapshot MB | save s | load s | "
        "100k adds s | single add µs | FAISS MultiHash build s | FAISS MultiHash B/hash (RSS) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i in infos:

        def f(key: str, fmt: str = ".2f", i: dict[str, Any] = i) -> str:
            return format(i[key], fmt) if key in i else "–"

        lines.append(
            f"| {i['bits']} | {i['n']:,} | {i['data']} | {f('build_s')} | {f('bytes_per_hash_rss', '.1f')} | "
            f"{f('bytes_per_hash_arrays', '.1f')} | {f('snapshot_mb', '.0f')} | {f('save_s')} | {f('load_s')} | "
            f"{f('adds_100k_batched_s')} | {f('single_add_us', '.0f')} | {f('faiss_multihash_build_s')} | "
            f"{f('faiss_multihash_bytes_per_hash_rss', '.1f')} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000000,10000000", help="comma-separated N for 256-bit codes")
    parser.add_argument("--data", default="uniform,clustered")
    parser.add_argument("--queries", type=int, default=1000, help="queries per (radius, query kind)")
    parser.add_argument("--faiss-queries", type=int, default=200, help="single queries timed for FAISS (slow)")
    parser.add_argument("--radius", type=int, default=31)
    parser.add_argument("--sizes64", default="10000000", help="N for 64-bit codes ('' to skip)")
    parser.add_argument("--radii64", default="8,10")
    parser.add_argument("--no-multihash", dest="multihash", action="store_false")
    parser.add_argument(
        "--ours-only", action="store_true", help="time only hashsvc (FAISS flat still gives the ground truth)"
    )
    parser.add_argument("--skip-lifecycle", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    faiss.omp_set_num_threads(1)

    workdir = Path(tempfile.mkdtemp(prefix="bench_index_", dir=args.json.parent if args.json else None))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    infos: list[dict[str, Any]] = []
    plan = [(256, int(n), d, [args.radius]) for n in args.sizes.split(",") if n for d in args.data.split(",")]
    plan += [(64, int(n), "uniform", [int(r) for r in args.radii64.split(",")]) for n in args.sizes64.split(",") if n]
    comp = compile_times()
    print(f"numba compile: {comp}", flush=True)
    for bits in (64, 256):  # load the compiled kernels now, so the first RSS delta measures only the index
        warm = HammingIndex(bits)
        warm.add(np.arange(70_000), uniform_codes(np.random.default_rng(1), 70_000, bits))
        warm.range_search(uniform_codes(np.random.default_rng(2), 1, bits), 3)
        del warm
    for bits, n, data, radii in plan:
        r, info = run_dataset(args, bits, n, data, radii, workdir)
        rows += r
        infos.append(info)
        if args.json:
            meta = {"command": " ".join(sys.argv), "machine": platform.platform(), "cpus": os.cpu_count()}
            args.json.write_text(json.dumps({"meta": meta, "compile": comp, "rows": rows, "index": infos}, indent=1))
    workdir.rmdir()
    print()
    print(markdown(rows, infos))


if __name__ == "__main__":
    main()
