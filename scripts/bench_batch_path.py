#!/usr/bin/env python
"""CPU time of one `/v1/match/hashes` batch through the Flask app, in this process (no HTTP server, no client).

It prepares (or reuses) the store of `bench_service.py`: N random PDQ hashes, each item with an MD5 too. It
builds the app as `hashsvc serve` does (sandbox off: hash lookups never decode an image; start-up objects
frozen out of the garbage collector's sight once the index is ready), waits for the index, then posts the same
batch of 1,000 random PDQ sets through Flask's test client, ROUNDS times, and prints the median and mean thread
CPU time per batch: parsing, validation, the index kernel, decisions, probe screening, events, metrics and the
JSON answer (the mean includes the occasional full garbage collection). Thread CPU time is less sensitive than
wall time to other processes on the machine. `--profile` adds a cProfile listing (thread CPU time) of 5 more
batches. The first run saves an index snapshot in --data-dir, so later runs load in seconds; run it once per
code tree to compare them (an A/B):

    PYTHONPATH=<tree> .venv/bin/python <tree>/scripts/bench_batch_path.py --data-dir /tmp/hashsvc-batch-path
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_service's store preparation
sys.path.append(str(Path(__file__).resolve().parents[1]))  # runnable without installing; PYTHONPATH goes first

from bench_service import prepare_store

import hashsvc
from hashsvc import server
from hashsvc.api import create_app
from hashsvc.api.context import EXTENSION
from hashsvc.config import load_settings
from hashsvc.store import Store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hashes", type=int, default=1_000_000)
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/hashsvc-batch-path"))
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{args.data_dir / 'store.db'}"
    prepare_store(url, args.hashes)
    with Store(url) as store:
        token = store.create_api_key(f"batch-path-{time.time_ns()}", ["match"], actor="bench")[1]
    environ = {"HASHSVC_DATABASE_URL": url, "HASHSVC_DATA_DIR": str(args.data_dir), "HASHSVC_SANDBOX": "0",
               "HASHSVC_SNAPSHOT_INTERVAL_S": "0", "HASHSVC_REQUEST_LOG": "0"}
    app = create_app(load_settings(environ=environ))
    if hasattr(server, "freeze_startup_objects_when_ready"):  # as `hashsvc serve` does (trees since issue 17)
        server.freeze_startup_objects_when_ready(app.extensions[EXTENSION].live)
    client = app.test_client()
    started = time.monotonic()
    while client.get("/readyz").status_code != 200:
        time.sleep(0.2)
    ready_s = time.monotonic() - started
    service = app.extensions[EXTENSION]
    snapshots = args.data_dir / "snapshots"
    if not snapshots.exists() or not any(snapshots.iterdir()):
        service.live.save_snapshots()  # later runs (and the other tree's) load this instead of the store
    rng = random.Random(7)
    body = json.dumps({"items": [{"pdq": f"{rng.getrandbits(256):064x}"} for _ in range(1000)]}).encode()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def one() -> None:
        response = client.post("/v1/match/hashes", data=body, headers=headers)
        assert response.status_code == 200, response.data[:300]

    for _ in range(3):  # warm-up: first calls compile and fill caches
        one()
    cpu = []
    for _ in range(args.rounds):
        before = time.thread_time()
        one()
        cpu.append(time.thread_time() - before)
    median_ms = statistics.median(cpu) * 1000
    row = {
        "code": str(Path(hashsvc.__file__).parents[1]),  # the tree whose hashsvc was imported
        "hashes": args.hashes,
        "ready_s": round(ready_s, 1),
        "cpu_ms_per_batch": round(median_ms, 1),
        # the mean carries the rare batch that sets off a full garbage collection, which the median leaves out
        "cpu_ms_per_batch_mean": round(statistics.mean(cpu) * 1000, 1),
        "sets_per_cpu_s": round(1000 / median_ms * 1000),
        "load_1min": round(os.getloadavg()[0], 1),
    }
    print(json.dumps(row), flush=True)
    if args.profile:
        # thread CPU time, not wall time: on a loaded machine wall time charges preemption to whatever ran
        profile = cProfile.Profile(time.thread_time)
        profile.enable()
        for _ in range(5):
            one()
        profile.disable()
        pstats.Stats(profile).sort_stats("tottime").print_stats(30)
    service.close()
    os._exit(0)  # background threads of the app (change-log tail, events) need not be joined


if __name__ == "__main__":  # a guard: multiprocessing children re-import this module
    main()
