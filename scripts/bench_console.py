#!/usr/bin/env python
"""How long the console's overview page takes to render over a store of a realistic size.

    .venv/bin/python scripts/bench_console.py --items 10000 --events 1000 --runs 50

Builds a throw-away SQLite store with `--items` items spread over 4 banks and `--events` match events spread over
the last 14 days (each matching one or two items, a fifth sent to review), then times GET /ui/overview through
Flask's test client (no network, no server) after a warm-up request. Prints p50/p95 in ms and `uptime`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import subprocess
import tempfile
import time
from pathlib import Path

from hashsvc.api import create_app
from hashsvc.config import load_settings
from hashsvc.service.service import Service
from hashsvc.store import NewItem, Store, upgrade
from hashsvc.store.aftermatch import NewEvent, insert_events

BANKS = ("hotline", "partner-a", "partner-b", "watchlist")


def build(folder: Path, items: int, events: int) -> tuple[str, str]:
    url = f"sqlite:///{folder}/store.db"
    upgrade(url)
    rng = random.Random(1)
    with Store(url) as store:
        ids: dict[str, list[int]] = {}
        for n, bank in enumerate(BANKS):
            store.create_bank(bank, category="csam", actor="bench", action="review" if n == 3 else "block")
            batch = [NewItem({"pdq": rng.randbytes(32).hex()}, external_ref=f"{bank}-{i}")
                     for i in range(items // len(BANKS))]
            ids[bank] = store.add_items(bank, batch, actor="bench")
        now = dt.datetime.now(dt.UTC)
        rows = []
        for n in range(events):
            bank = BANKS[n % len(BANKS)]
            matched = rng.sample(ids[bank], rng.choice((1, 2)))
            at = now - dt.timedelta(seconds=rng.uniform(0, 13 * 86400))
            rows.append(NewEvent(
                "match", at, f"upload-{n}", key_name="pipeline", content_id=f"upload-{n}",
                decision="review" if bank == "watchlist" else "block",
                matches=[{"bank": bank, "item_id": i, "algorithm": "pdq", "distance": 3} for i in matched],
            ))
        insert_events(store.engine, rows)
        token = store.create_api_key("lead", ["curate", "admin", "match"], actor="bench")[1]
    return url, token


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url, token = build(Path(tmp), args.items, args.events)
        settings = load_settings({"data_dir": tmp, "database_url": url, "snapshot_interval_s": 0, "sandbox": False},
                                 environ={})
        service = Service(settings, warm_sandbox=False)
        service.live.load()
        client = create_app(settings, service=service, background=False).test_client()
        login = client.get("/ui/login").get_data(as_text=True)
        csrf = login.split('name="csrf_token" value="')[1].split('"')[0]
        assert client.post("/ui/login", data={"key": token, "csrf_token": csrf}).status_code == 303
        assert client.get("/ui/overview").status_code == 200  # warm-up: templates compiled, caches filled
        timings = []
        for _ in range(args.runs):
            started = time.perf_counter()
            response = client.get("/ui/overview")
            timings.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200
        service.close()
    timings.sort()
    p50, p95 = timings[len(timings) // 2], timings[int(len(timings) * 0.95) - 1]
    print(f"overview, {args.items} items, {args.events} events, {args.runs} runs: p50 {p50:.1f} ms, p95 {p95:.1f} ms")
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
