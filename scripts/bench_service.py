#!/usr/bin/env python
"""Load-test a real `hashsvc serve` on loopback: throughput, latency and overload behaviour.

It prepares a store with N random PDQ hashes (default 1M, each item with an MD5 too), starts the server with
`hashsvc serve` (2 workers), waits for /readyz, then for each scenario runs:

1. closed loop: C concurrent keep-alive clients as fast as they can for D seconds -> sustainable rate, p50/p99;
2. open loop at 80% of that rate -> p50/p99 under a realistic, not saturating, load;
3. open loop at 200% of that rate -> how many requests got 503 (and how fast), and the servers' RSS before/after.

Scenarios: ~1 MP JPEG uploads, 12 MP JPEG uploads, single hash lookups, batches of 1000 hash sets.
Client and server share this 2-core machine, so the client's own CPU use is part of every number.

    .venv/bin/python scripts/bench_service.py --hashes 1000000 --json results/bench_service.json
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil

from hashsvc.bench.samples import mosaic, require_free_port, require_images, to_jpeg
from hashsvc.store import NewItem, Store, upgrade

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Request:
    path: str
    body: bytes
    content_type: str


@dataclass
class Outcome:
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, status: int, ms: float) -> None:
        with self.lock:
            self.statuses[status] = self.statuses.get(status, 0) + 1
            if status == 200:
                self.latencies_ms.append(ms)


def percentile(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 2) if values else float("nan")


def prepare_store(url: str, count: int) -> None:
    upgrade(url)
    rng = np.random.default_rng(1)
    with Store(url) as store:
        if store.list_banks():
            return
        store.create_bank("bench", category="other", actor="bench")
        batch = 20_000
        started = time.perf_counter()
        for start in range(0, count, batch):
            codes = rng.integers(0, 256, (min(batch, count - start), 48), dtype=np.uint8)
            store.add_items(
                "bench",
                (NewItem([("pdq", bytes(c[:32])), ("md5", bytes(c[32:]))]) for c in codes),
                actor="bench",
            )
        print(f"stored {count} items in {time.perf_counter() - started:.1f} s", file=sys.stderr)


class Server:
    def __init__(self, url: str, data_dir: Path, port: int, token_holder: list[str]) -> None:
        self.port = port
        env = {
            **os.environ,
            "HASHSVC_DATABASE_URL": url,
            "HASHSVC_DATA_DIR": str(data_dir),
            "HASHSVC_PORT": str(port),
            "HASHSVC_SNAPSHOT_INTERVAL_S": "0",
        }
        with Store(url) as store:
            name = f"bench-{port}-{int(time.time())}"
            token_holder.append(store.create_api_key(name, ["match"], actor="bench")[1])
        self.log = (data_dir / "server.log").open("ab")
        self.process = subprocess.Popen(
            [str(Path(sys.executable).with_name("hashsvc")), "serve"], env=env, stdout=self.log, stderr=self.log
        )

    def wait_ready(self, timeout_s: float) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                connection.request("GET", "/readyz")
                if connection.getresponse().status == 200:
                    return time.monotonic() - started
            except OSError:
                pass
            time.sleep(0.25)
        raise TimeoutError("server not ready")

    def rss_mib(self) -> float:
        parent = psutil.Process(self.process.pid)
        return round(sum(p.memory_info().rss for p in [parent, *parent.children(recursive=True)]) / 2**20, 1)

    def cpu_s(self) -> float:
        """CPU seconds (user + system) used so far by the server's processes (its workers included)."""
        parent = psutil.Process(self.process.pid)
        total = 0.0
        for process in [parent, *parent.children(recursive=True)]:
            times = process.cpu_times()
            total += times.user + times.system
        return total

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)
        self.log.close()


def send(connection: http.client.HTTPConnection, request: Request, token: str) -> int:
    connection.request(
        "POST",
        request.path,
        body=request.body,
        headers={"Content-Type": request.content_type, "Authorization": f"Bearer {token}"},
    )
    response = connection.getresponse()
    response.read()
    return response.status


def closed_loop(port: int, token: str, make: Callable[[], Request], clients: int, seconds: float) -> Outcome:
    outcome = Outcome()
    stop = time.monotonic() + seconds

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while time.monotonic() < stop:
            request = make()
            started = time.perf_counter()
            try:
                status = send(connection, request, token)
            except (OSError, http.client.HTTPException):
                outcome.errors += 1
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                continue
            outcome.add(status, (time.perf_counter() - started) * 1000)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcome


def open_loop(port: int, token: str, make: Callable[[], Request], rate: float, seconds: float) -> Outcome:
    """Requests start on a fixed schedule whatever the server does (up to 64 outstanding connections)."""
    outcome = Outcome()
    pool: list[http.client.HTTPConnection] = []
    pool_lock = threading.Lock()
    in_flight = threading.Semaphore(64)

    def one(request: Request) -> None:
        with pool_lock:
            connection = pool.pop() if pool else http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        started = time.perf_counter()
        try:
            status = send(connection, request, token)
            outcome.add(status, (time.perf_counter() - started) * 1000)
            with pool_lock:
                pool.append(connection)
        except (OSError, http.client.HTTPException):
            outcome.errors += 1
        finally:
            in_flight.release()

    interval = 1.0 / rate
    start = time.perf_counter()
    n = 0
    while time.perf_counter() - start < seconds:
        target = start + n * interval
        delay = target - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        if not in_flight.acquire(timeout=5):
            outcome.errors += 1
            continue
        threading.Thread(target=one, args=(make(),), daemon=True).start()
        n += 1
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and in_flight._value < 64:
        time.sleep(0.05)
    return outcome


def own_cpu_s() -> float:
    """CPU seconds (user + system) used so far by this process: the client's share of the machine."""
    times = psutil.Process().cpu_times()
    return times.user + times.system


def cpu_per_set(server_s: float, client_s: float, served: int) -> dict[str, float]:
    """CPU microseconds per hash set answered (200): on a machine the client shares with the server, what the
    sustained rate is bound by when every core is busy."""
    if not served:
        return {}
    return {
        "server_cpu_us_per_set": round(server_s / served * 1e6, 1),
        "client_cpu_us_per_set": round(client_s / served * 1e6, 1),
        "cpu_us_per_set": round((server_s + client_s) / served * 1e6, 1),
    }


def summarize(outcome: Outcome, seconds: float, per_request: int = 1) -> dict[str, object]:
    ok = outcome.statuses.get(200, 0)
    return {
        "ok_per_s": round(ok * per_request / seconds, 1),
        "p50_ms": percentile(outcome.latencies_ms, 50),
        "p99_ms": percentile(outcome.latencies_ms, 99),
        "statuses": dict(sorted(outcome.statuses.items())),
        "errors": outcome.errors,
    }


def scenarios(corpus: Path, batch_clients: int = 4) -> dict[str, tuple[Callable[[], Request], int, int]]:
    """name -> (request factory, hash sets per request, closed-loop clients).

    Batches get 4 clients by default: with 2 (one per server worker, as measured until 2026-11-30) each worker
    sat idle while its answer travelled back and the next batch was sent and parsed, and the kernel's connection
    spreading (SO_REUSEPORT) sometimes gave both connections to one worker; a backfill client keeps several
    batches in flight. `--batch-clients 2` gives the older figure."""
    sources = require_images(corpus)
    one_mp = [to_jpeg(mosaic(sources, 1, seed)) for seed in range(8)]
    twelve_mp = [to_jpeg(mosaic(sources, 12, seed)) for seed in range(3)]
    rng = random.Random(7)

    def random_pdq() -> str:
        return f"{rng.getrandbits(256):064x}"

    batch_body = json.dumps({"items": [{"pdq": random_pdq()} for _ in range(1000)]}).encode()
    return {
        "~1 MP JPEG upload": (lambda: Request("/v1/match", rng.choice(one_mp), "image/jpeg"), 1, 8),
        "12 MP JPEG upload": (lambda: Request("/v1/match", rng.choice(twelve_mp), "image/jpeg"), 1, 4),
        "single hash lookup": (
            lambda: Request("/v1/match/hashes", json.dumps({"pdq": random_pdq()}).encode(), "application/json"),
            1,
            8,
        ),
        "batch of 1000 hash sets": (
            lambda: Request("/v1/match/hashes", batch_body, "application/json"),
            1000,
            batch_clients,
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hashes", type=int, default=1_000_000)
    parser.add_argument("--database-url", help="default: a SQLite file in --data-dir")
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "hashsvc-bench-service")
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--port", type=int, default=18080)
    parser.add_argument("--batch-clients", type=int, default=4, help="closed-loop clients of the batch scenario")
    parser.add_argument("--only", help="run only the scenarios whose name contains this text, e.g. '1 MP'")
    parser.add_argument("--json", type=Path, default=ROOT / "results" / "bench_service.json")
    args = parser.parse_args()
    require_images(args.corpus)  # before minutes of store building, not after
    require_free_port(args.port)

    args.data_dir.mkdir(parents=True, exist_ok=True)
    url = args.database_url or f"sqlite:///{args.data_dir / 'bench.db'}"
    prepare_store(url, args.hashes)
    tokens: list[str] = []
    server = Server(url, args.data_dir, args.port, tokens)
    token = tokens[0]
    results: dict[str, object] = {"hashes": args.hashes}
    try:
        results["ready_after_s"] = round(server.wait_ready(600), 1)
        results["rss_mib_ready"] = server.rss_mib()
        for name, (make, per_request, clients) in scenarios(args.corpus, args.batch_clients).items():
            if args.only and args.only not in name:
                continue
            print(f"{name}: closed loop...", file=sys.stderr)
            server_cpu, client_cpu = server.cpu_s(), own_cpu_s()
            closed = closed_loop(args.port, token, make, clients, args.seconds)
            served = closed.statuses.get(200, 0) * per_request
            sustainable = closed.statuses.get(200, 0) / args.seconds
            row: dict[str, object] = {
                "closed": {
                    **summarize(closed, args.seconds, per_request),
                    **cpu_per_set(server.cpu_s() - server_cpu, own_cpu_s() - client_cpu, served),
                }
            }
            if sustainable > 0:
                print(f"{name}: open loop at 80% and 200% of {sustainable:.1f}/s...", file=sys.stderr)
                row["at_80pct"] = summarize(
                    open_loop(args.port, token, make, 0.8 * sustainable, args.seconds), args.seconds, per_request
                )
                before = server.rss_mib()
                overload = open_loop(args.port, token, make, 2 * sustainable, args.seconds)
                row["at_200pct"] = {
                    **summarize(overload, args.seconds, per_request),
                    "rss_mib_before": before,
                    "rss_mib_after": server.rss_mib(),
                }
            results[name] = row
    finally:
        server.stop()

    print(
        "| scenario | sustained ok/s (hash sets/s) | p50 ms | p99 ms | p99 ms at 80% | 503s at 200%"
        " | RSS MiB before/after 200% | CPU µs per set (server + client) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, row in results.items():
        if not isinstance(row, dict) or "closed" not in row:
            continue
        closed, at80, at200 = row["closed"], row.get("at_80pct", {}), row.get("at_200pct", {})
        print(
            f"| {name} | {closed['ok_per_s']} | {closed['p50_ms']} | {closed['p99_ms']} | {at80.get('p99_ms')}"
            f" | {at200.get('statuses', {}).get(503, 0)} of {sum(at200.get('statuses', {}).values())}"
            f" | {at200.get('rss_mib_before')} / {at200.get('rss_mib_after')}"
            f" | {closed.get('cpu_us_per_set')} ({closed.get('server_cpu_us_per_set')}"
            f" + {closed.get('client_cpu_us_per_set')}) |"
        )
    print(
        f"ready after {results['ready_after_s']} s with {args.hashes} hashes;"
        f" RSS at ready {results['rss_mib_ready']} MiB"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
