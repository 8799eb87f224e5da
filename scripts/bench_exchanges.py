"""Exchange benchmark: an N-entry NCMEC feed (MD5 + PDQ per entry, 1000 entries per page) synced from the fake
NCMEC server (tests/exchange_fakes.py, in its own process) into an empty bank; then syncs with no changes.
Baseline in the same sitting: the same entries as a CSV file through `hashsvc import`'s use case
(transfer.import_records) into another empty bank of the same store.

    .venv/bin/python scripts/bench_exchanges.py --entries 1000000 --json results/bench_exchanges.json

The store is a fresh embedded SQLite file in a temporary folder unless --database-url names an empty one.
Wall time is reported with the CPU time of this process, that of the fake server's process (it shares the
machine's cores with the sync) and the load average, because the benchmark machines are shared.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from exchange_fakes import FakeNcmec  # noqa: E402

T0 = 1_600_000_000
PAGE = 1000


class Entries(Sequence[tuple[str, str]]):
    """N NCMEC image entries rendered on demand from seeded arrays (a million strings would need ~1 GB)."""

    def __init__(self, count: int, seed: int = 11) -> None:
        rng = np.random.default_rng(seed)
        self.count = count
        self.md5 = rng.integers(0, 256, (count, 16), dtype=np.uint8)
        self.pdq = rng.integers(0, 256, (count, 32), dtype=np.uint8)

    def __len__(self) -> int:
        return self.count

    def render(self, n: int) -> tuple[str, str]:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(T0 + n))
        return "images", (
            f'<image><member id="42">Member 42</member><timestamp>{stamp}</timestamp><id>img{n}</id>'
            f"<classification>{'A1' if n % 4 else 'B1'}</classification><fingerprints>"
            f"<md5>{self.md5[n].tobytes().hex()}</md5><pdq>{self.pdq[n].tobytes().hex()}</pdq>"
            "</fingerprints></image>"
        )

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self.render(n) for n in range(*index.indices(self.count))]
        return self.render(index)


def serve(count: int, ready: Any, stop: Any) -> None:
    fake = FakeNcmec(page_size=PAGE)
    fake.stamps = range(T0, T0 + count)  # type: ignore[assignment]
    fake.rendered = Entries(count)  # type: ignore[assignment]
    with fake:
        ready.send(fake.url)
        stop.wait()


def write_csv(path: Path, count: int) -> None:
    """The same entries as `hashsvc import` CSV: one row per hash, rows of one reference form one item."""
    entries = Entries(count)
    with path.open("w") as out:
        out.write("algorithm,hash,reference,category\n")
        for n in range(count):
            label = "A1" if n % 4 else "B1"
            out.write(f"md5,{entries.md5[n].tobytes().hex()},42-img{n},{label}\n")
            out.write(f"pdq,{entries.pdq[n].tobytes().hex()},42-img{n},{label}\n")


def timed(function: Any) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = function()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def children_cpu() -> float:
    """CPU seconds of this process's children that have ended: the sync's page parser process (see
    hashsvc.exchanges.offload) ends with the sync; the fake server's process is still running, so not counted."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def server_cpu(pid: int) -> float:
    """CPU seconds the fake partner's process has used: it shares the machine's two cores with the sync."""
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def load() -> float:
    return round(os.getloadavg()[0], 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--no-change-runs", type=int, default=5)
    parser.add_argument("--database-url", help="default: a fresh SQLite file in a temporary folder")
    parser.add_argument("--skip-baseline", action="store_true", help="do not time the CSV import baseline")
    parser.add_argument("--json", type=Path, help="write the results here too")
    parser.add_argument(
        "--parse-process", choices=("auto", "on", "off"), default="auto",
        help="HASHSVC_EXCHANGE_PARSE_PROCESS: parse pages in a child process (auto: SQLite stores, 2+ cores)",
    )
    options = parser.parse_args()

    from cryptography.fernet import Fernet

    from hashsvc.config import load_settings
    from hashsvc.service import transfer
    from hashsvc.service.exchanges import ExchangeService
    from hashsvc.store import Actor, Store, upgrade

    ready_recv, ready_send = multiprocessing.Pipe(duplex=False)
    stop = multiprocessing.Event()
    server = multiprocessing.Process(target=serve, args=(options.entries, ready_send, stop), daemon=True)
    server.start()
    url = ready_recv.recv()
    results: dict[str, Any] = {"entries": options.entries, "page_size": PAGE, "machine": platform.node(),
                               "parse_process": options.parse_process}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-exchanges-") as tmp:
            database_url = options.database_url or f"sqlite:///{tmp}/hashsvc.db"
            results["store"] = database_url.split(":", 1)[0]
            upgrade(database_url)
            settings = load_settings(
                {"database_url": database_url, "exchange_key": Fernet.generate_key().decode(),
                 "exchange_allowed_networks": "127.0.0.0/8",  # the fake NCMEC listens on loopback
                 "exchange_parse_process": options.parse_process},
                environ={},
            )
            store = Store(database_url)
            admin = Actor("bench")
            store.create_bank("feed", category="csam", actor=admin)
            store.create_bank("import", category="csam", actor=admin)
            service = ExchangeService(store, settings)
            service.add(
                {"name": "ncmec", "type": "ncmec", "bank": "feed", "config": {"base_url": url},
                 "credentials": {"username": "esp", "password": "secret"}},
                admin,
            )

            if not options.skip_baseline:
                csv_path = Path(tmp) / "feed.csv"
                write_csv(csv_path, options.entries)
                before = load()

                def baseline() -> Any:
                    with csv_path.open() as lines:
                        records = transfer.read_records(lines, "csv")
                        return transfer.import_records(store, "import", records, admin)

                summary, wall, cpu = timed(baseline)
                results["baseline_csv_import"] = {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
                                                  "added": summary.added, "load": [before, load()]}
                print(f"baseline: CSV import of the same entries: {wall:.1f} s wall, {cpu:.1f} s CPU, "
                      f"{summary.added} added (load {before} -> {load()})", flush=True)

            before = load()
            served_before = server_cpu(server.pid)
            parser_before = children_cpu()
            first, wall, cpu = timed(lambda: service.sync("ncmec", "bench"))
            if not first.ok:
                raise SystemExit(f"the first sync failed: {first.error}")
            served = server_cpu(server.pid) - served_before
            parser = children_cpu() - parser_before
            results["first_sync"] = {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
                                     "parser_process_cpu_s": round(parser, 1), "pages": first.pages,
                                     "added": first.counts["added"], "fake_server_cpu_s": round(served, 1),
                                     "load": [before, load()]}
            print(f"first sync: {wall:.1f} s wall, {cpu:.1f} s CPU + {parser:.1f} s in the parser process "
                  f"(the fake NCMEC server: {served:.1f} s CPU), {first.pages} pages, {first.counts['added']} added, "
                  f"{options.entries / wall:,.0f} entries/s (load {before} -> {load()})", flush=True)

            walls = []
            before = load()
            for _ in range(options.no_change_runs):
                again, wall, _cpu = timed(lambda: service.sync("ncmec", "bench"))
                assert again.ok and again.counts["fetched"] == 0, again
                walls.append(wall)
            results["no_change_sync"] = {"median_s": round(statistics.median(walls), 3),
                                         "max_s": round(max(walls), 3), "runs": len(walls), "load": [before, load()]}
            print(f"no-change sync: median {statistics.median(walls):.3f} s, max {max(walls):.3f} s over "
                  f"{len(walls)} runs (load {before} -> {load()})", flush=True)
            if "baseline_csv_import" in results:
                ratio = results["first_sync"]["wall_s"] / max(results["baseline_csv_import"]["wall_s"], 0.1)
                results["sync_vs_import_wall_ratio"] = round(ratio, 2)
                print(f"first sync / CSV import wall time: {ratio:.2f}", flush=True)
            store.close()
    finally:
        stop.set()
        server.join(timeout=10)
    if options.json:
        options.json.parent.mkdir(parents=True, exist_ok=True)
        options.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
