#!/usr/bin/env python
"""What one recorded event costs the writer as the event tables grow: CPU, bytes written, the flood check.

One process, no server, no other thread: a block bank of `--items` random items, then `--rounds` rounds of 8
batch requests of 1,000 hash sets (`Service.match_hashes`, every set matching a `block` item, 1,000 distinct
items and content ids, as in `bench_after_match.py recording`); after each round the writer writes the round's
8,000 events in batches of 1,000 and runs one flood check. Per round: the writer's thread CPU per event, the
bytes it passed to write(2) per event (SQLite's WAL frames and checkpoints: a measure of pages dirtied), and the
flood check's CPU. `--drop-index` drops store indexes first, to attribute the cost to them.

    .venv/bin/python scripts/bench_event_growth.py --rounds 12
    .venv/bin/python scripts/bench_event_growth.py --rounds 12 --drop-index ix_events_content_id
    PYTHONPATH=<other checkout> .venv/bin/python scripts/bench_event_growth.py   # another version of the writer
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_after_match import prepare_recording_store

import hashsvc.service.events as events_module
from hashsvc.config import load_settings
from hashsvc.service.service import Service

PER_ROUND = 8


def written_bytes() -> int:
    """Bytes this process has passed to write-like system calls (Linux /proc/self/io `wchar`)."""
    with open("/proc/self/io") as io:
        return next(int(line.split()[1]) for line in io if line.startswith("wchar"))


def kept(service: Service) -> int:
    with service.store.engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT count(*) FROM events").scalar_one())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--drop-index", action="append", default=[], help="drop this store index first")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="bench-event-growth-"))
    url = f"sqlite:///{folder}/store.db"
    _, md5s = prepare_recording_store(url, args.items, [])
    for index in args.drop_index:
        with sqlite3.connect(folder / "store.db") as conn:
            conn.execute(f'DROP INDEX "{index}"')
    body = {"items": [{"md5": md5, "content_id": f"c{n}"} for n, md5 in enumerate(md5s[:1000])]}
    batch = events_module.BATCH
    events_module.BATCH = 10**9  # the writer thread stays asleep: this thread writes, and measures itself
    settings = {"database_url": url, "data_dir": str(folder), "sandbox": False, "record_events": True,
                "events_flush_s": 3600, "events_buffer": 10**7, "flood_max_contents": 10**9}
    service = Service(load_settings(settings, {}))
    service.live.load()
    recorder = service.after.events
    rounds = []
    for _ in range(args.rounds):
        for _request in range(PER_ROUND):
            service.match_hashes(json.loads(json.dumps(body)))
        count = len(recorder._pending)
        events_module.BATCH = batch
        before, started = written_bytes(), time.thread_time()
        while recorder._pending:
            recorder._write_batch()
        write_s, wrote = time.thread_time() - started, written_bytes() - before
        started = time.thread_time()
        recorder._check_flood(force=True)
        check_s = time.thread_time() - started
        events_module.BATCH = 10**9
        row = {
            "events_kept": kept(service),
            "write_us_per_event": round(write_s / count * 1e6, 1),
            "kib_written_per_event": round(wrote / count / 1024, 1),
            "flood_check_ms": round(check_s * 1000, 1),
        }
        rounds.append(row)
        print(row, file=sys.stderr)
    service.close()
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(json.dumps({"dropped": args.drop_index, "rounds": rounds, "uptime": uptime}, indent=2))


if __name__ == "__main__":
    main()
