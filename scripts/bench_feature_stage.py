"""What the local-feature stage adds to an image match: latency per ~1 MP upload, throughput, memory per item.

Two services in one process, the same store contents (a bank of `--items` corpus photos added from images),
the same sandbox settings (`HASHSVC_SANDBOX=1`, 2 workers each): A with `HASHSVC_FEATURES=0`, B with the stage on.
B's feature index is padded to `--pad` items simulated from the real items' descriptors (drawn at random, each
bit flipped with probability 5%, at random positions; not in the store, so they cost the lookup but never match,
as most of a large bank would not). The uploads are ~1 MP JPEG mosaics of corpus photos that match nothing, so the
hash stage never blocks and B runs its full second stage on every one: the worst case.

* latency: each upload matched by A then B (order alternating), `--rounds` times; p50/p99 of each and of the
  paired difference B - A;
* throughput: 2 client threads as fast as they can for `--seconds`, A, B, A, B; uploads/s per run;
* CPU: this process's CPU time per upload (best of 3) for hashing without and with extraction, and for the
  lookup + verification, which the machine's other jobs inflate less than wall time;
* CPU per upload in the throughput runs: this process's and its sandbox workers' CPU time over the run divided
  by the uploads it served, the whole match path (decode, hashing, extraction, lookup, store reads); on a
  CPU-bound machine the on/off throughput ratio tends to the inverse ratio of these;
* memory: bytes per stored item of B's feature index (FAISS index + row owners + positions) and the process RSS
  growth while padding.

    .venv/bin/python scripts/bench_feature_stage.py ../shared/corpus --items 200 --pad 10000

The script also runs against an older tree (PYTHONPATH=that tree): its match path's query features are then
whatever that tree's `hash_image` extracts by default.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import psutil

from hashsvc.bench.samples import mosaic, require_images, to_jpeg
from hashsvc.config import load_settings
from hashsvc.features import MAX_QUERY, MAX_STORED, Features, native, orb
from hashsvc.service import feature_stage
from hashsvc.service.hashing import hash_image
from hashsvc.service.service import Service
from hashsvc.store import Actor, upgrade

ACTOR = Actor("bench")
# The upload's features as the match path extracts them; trees before QUERY_WORK_SIDE extracted at WORK_SIDE.
# Trees before QUERY_RESAMPLE resized the upload with Pillow's bilinear filter.
QUERY_FEATURES: dict[str, int | str] = {"features": MAX_QUERY}
if hasattr(orb, "QUERY_WORK_SIDE"):
    QUERY_FEATURES["feature_side"] = orb.QUERY_WORK_SIDE
if hasattr(orb, "QUERY_RESAMPLE"):
    QUERY_FEATURES["feature_resample"] = orb.QUERY_RESAMPLE


def make_service(root: Path, name: str, features: bool, kind: str) -> Service:
    settings = load_settings(
        {"data_dir": str(root / name), "snapshot_interval_s": 0, "features": features, "feature_index": kind,
         "sandbox_workers": 2, "decode_timeout_s": 60.0},  # a shared, loaded machine: no timeouts in the bench
        environ={},
    )
    Path(settings.data_dir).mkdir(parents=True)
    upgrade(settings.resolved_database_url)
    service = Service(settings)
    service.live.load()
    service.create_bank({"name": "cases", "category": "csam"}, ACTOR)
    return service


def pad(service: Service, total: int, seed: int = 0) -> int:
    """Add simulated items until the index holds `total`: 256 descriptors each, drawn from the real items'
    descriptors with every bit flipped with probability 5%, at random positions (as bench_feature_index.py)."""
    index = service.live.features.index
    _, _, _, pool = index.live_items()
    if not len(pool):
        return 0
    rng = np.random.default_rng(seed)
    next_id = 10**12  # far from real item ids: never in the store, so never an answer
    added = 0
    while len(index) < total:
        picked = pool[rng.integers(len(pool), size=MAX_STORED)]
        noise = np.packbits(rng.random((MAX_STORED, 256)) < 0.05, axis=1)
        index.add(next_id + added, Features(rng.uniform(0, 384, (MAX_STORED, 2)).astype(np.float32), picked ^ noise))
        added += 1
    return added


def index_bytes(service: Service) -> int:
    faiss_index, owner, positions, _ = service.live.features.index.raw()
    return len(native.faiss().serialize_index_binary(faiss_index)) + owner.nbytes + positions.nbytes


def cpu_seconds_with_children() -> dict[int, float]:
    """CPU seconds of this process and of every process under it (the sandbox's fork server and workers), by
    pid: each one's user + system time plus that of its children it has reaped, so that a worker the sandbox
    replaced during a run (one whose memory grew past HASHSVC_SANDBOX_RECYCLE_MB) still counts."""
    me = psutil.Process(os.getpid())
    found = {}
    for process in [me, *me.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.Error:  # a worker that exited meanwhile
            continue
        found[process.pid] = times.user + times.system + times.children_user + times.children_system
    return found


def closed_loop(service: Service, uploads: list[bytes], seconds: float, clients: int = 2) -> tuple[float, float]:
    """(uploads per second, CPU ms per upload of this process and its workers) of `clients` threads matching
    as fast as they can."""
    done = [0] * clients
    cpu_before = cpu_seconds_with_children()
    stop = time.perf_counter() + seconds

    def client(n: int) -> None:
        k = n
        while time.perf_counter() < stop:
            service.match_image(uploads[k % len(uploads)])
            done[n] += 1
            k += clients

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cpu_after = cpu_seconds_with_children()
    used = sum(after - cpu_before.get(pid, 0.0) for pid, after in cpu_after.items())
    return sum(done) / seconds, used * 1000 / max(1, sum(done))


def _cpu_ms(run: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        run()
        best = min(best, time.process_time() - started)
    return best * 1000


def stage_cpu(service: Service, uploads: list[bytes]) -> dict[str, float]:
    """Medians over the uploads of this process's CPU time (best of 3; less sensitive to other jobs on the machine
    than wall time): hashing as the match path does without and with feature extraction (in this process, not
    the sandbox), and the lookup + verification in the service's feature index."""
    hashed, extracted, looked_up = [], [], []
    for data in uploads:
        hashed.append(_cpu_ms(partial(hash_image, data, dihedral=True, extras="query")))
        extracted.append(_cpu_ms(partial(hash_image, data, dihedral=True, extras="query", **QUERY_FEATURES)))
        query = hash_image(data, **QUERY_FEATURES).features
        assert query is not None
        looked_up.append(_cpu_ms(partial(feature_stage.find, service.live.features.index, service.store.engine,
                                         query, 1.0)))
    return {"hashing": round(statistics.median(hashed), 2),
            "hashing_with_features": round(statistics.median(extracted), 2),
            "lookup_and_verify": round(statistics.median(looked_up), 2)}


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--items", type=int, default=200, help="corpus photos added from images (default 200)")
    parser.add_argument("--pad", type=int, default=10_000, help="feature items in B's index (default 10,000)")
    parser.add_argument("--uploads", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--throughput-rounds", type=int, default=2, help="off/on pairs of throughput runs (default 2)")
    parser.add_argument("--kind", default="ivf", choices=("ivf", "hnsw", "flat"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    photos = require_images(args.folder, "a folder argument")
    process = psutil.Process(os.getpid())
    with tempfile.TemporaryDirectory(prefix="bench-features-") as tmp:
        root = Path(tmp)
        off, on = make_service(root, "off", False, args.kind), make_service(root, "on", True, args.kind)
        try:
            for path in photos[:: max(1, len(photos) // args.items)][: args.items]:
                data = path.read_bytes()
                for service in (off, on):
                    service.add_item_from_image("cases", data, {"reference": path.name}, ACTOR)
            for service in (off, on):
                service.live.catch_up()
            real_items = len(on.live.features.index)
            rss_before = process.memory_info().rss
            padded = pad(on, args.pad)
            rss_growth = process.memory_info().rss - rss_before
            per_item = index_bytes(on) / len(on.live.features.index)
            uploads = [to_jpeg(mosaic(photos, 1.0, seed)) for seed in range(args.uploads)]
            for data in uploads[:2]:  # warm both services' sandboxes
                off.match_image(data), on.match_image(data)

            took: dict[str, list[float]] = {"off": [], "on": []}
            diffs: list[float] = []
            decisions: dict[str, int] = {}
            for round_ in range(args.rounds):
                for n, data in enumerate(uploads):
                    pair = [("off", off), ("on", on)] if (round_ + n) % 2 == 0 else [("on", on), ("off", off)]
                    times = {}
                    for name, service in pair:
                        started = time.perf_counter()
                        answer = service.match_image(data)
                        times[name] = (time.perf_counter() - started) * 1000
                        decisions[f"{name}:{answer['decision']}"] = decisions.get(f"{name}:{answer['decision']}", 0) + 1
                    took["off"].append(times["off"]), took["on"].append(times["on"])
                    diffs.append(times["on"] - times["off"])
            cpu = stage_cpu(on, uploads)
            load_before = os.getloadavg()
            rates: dict[str, list[float]] = {"off": [], "on": []}
            loop_cpu: dict[str, list[float]] = {"off": [], "on": []}
            for name, service in [("off", off), ("on", on)] * args.throughput_rounds:
                rate, cpu_ms = closed_loop(service, uploads, args.seconds)
                rates[name].append(rate)
                loop_cpu[name].append(cpu_ms)
            load_after = os.getloadavg()
        finally:
            off.close(), on.close()

    result = {
        "items_from_images": real_items,
        "feature_items_in_index": real_items + padded,
        "index_kind": args.kind,
        "index_bytes_per_item": round(per_item),
        "rss_growth_per_padded_item": round(rss_growth / max(1, padded)),
        "latency_ms": {name: {"p50": round(pct(v, 50), 1), "p99": round(pct(v, 99), 1)} for name, v in took.items()},
        "added_ms": {"p50": round(pct(diffs, 50), 1), "p99": round(pct(diffs, 99), 1)},
        "uploads_per_s": {name: [round(r, 1) for r in v] for name, v in rates.items()},
        "throughput_ratio": round(statistics.median(rates["on"]) / statistics.median(rates["off"]), 3),
        "loop_cpu_ms_per_upload": {name: [round(c, 2) for c in v] for name, v in loop_cpu.items()},
        "loop_cpu_ratio_off_on": round(statistics.median(loop_cpu["off"]) / statistics.median(loop_cpu["on"]), 3),
        "cpu_ms_per_upload": cpu,
        "decisions": decisions,
        "loadavg_before_after_throughput": [load_before, load_after],
    }
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
