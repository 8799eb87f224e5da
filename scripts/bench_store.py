"""Benchmark the store: bulk-add PDQ + MD5 items, stream the active PDQ hashes, tail the change log, look up.

Usage:
    .venv/bin/python scripts/bench_store.py                       # both back ends, 1M items
    .venv/bin/python scripts/bench_store.py --backend sqlite --items 100000

Targets (issue 4): adding 1M PDQ hashes (each item with pdq + md5) <= 60 s; streaming 1M active hashes <= 10 s.
Prints a table and writes JSON to results/bench_store.json. `*_cpu_s` is this process's CPU time (the client
side; PostgreSQL's own work runs in the server) and `load_avg_1m` the machine's load when the run ended: on a
shared machine, wall time above CPU time is mostly waiting for a core. PostgreSQL runs in a throw-away database
(`hashsvc_bench_<random>`) on the server given by --postgres-url, dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from hashsvc.store import NewItem, Store, upgrade

DEFAULT_POSTGRES = os.environ.get("HASHSVC_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@contextmanager
def sqlite_url() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="hashsvc-bench-") as folder:
        yield f"sqlite:///{folder}/bench.db"


@contextmanager
def postgres_url(server: str) -> Iterator[str]:
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    name = f"hashsvc_bench_{secrets.token_hex(4)}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield sa.make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def make_codes(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random PDQ and MD5 codes, generated before the clock starts."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(count, 32), dtype=np.uint8), rng.integers(
        0, 256, size=(count, 16), dtype=np.uint8
    )


def batches_of(pdq: np.ndarray, md5: np.ndarray, batch: int) -> Iterator[list[NewItem]]:
    """Items as an importer reads them from a partner's list, one batch at a time: hex PDQ, hex MD5, a reference.

    Built batch by batch (inside the timing: reading the list is part of an import), so that memory holds one
    batch, not a million item objects that Python's garbage collector would walk over and over.
    """
    for start in range(0, len(pdq), batch):
        stop = min(start + batch, len(pdq))
        pdq_hex = pdq[start:stop].tobytes().hex()
        md5_hex = md5[start:stop].tobytes().hex()
        yield [
            NewItem(
                {"pdq": pdq_hex[64 * k : 64 * k + 64], "md5": md5_hex[32 * k : 32 * k + 32]},
                external_ref=f"ref-{start + k}",
            )
            for k in range(stop - start)
        ]


def run(backend: str, url: str, count: int, batch: int) -> dict[str, float | int | str]:
    pdq, md5 = make_codes(count, seed=1)
    upgrade(url)
    with Store(url) as store:
        store.create_bank("bench", category="other", actor="bench")
        started, cpu = time.perf_counter(), time.process_time()
        for chunk in batches_of(pdq, md5, batch):
            store.add_items("bench", chunk, actor="bench")
        add_s, add_cpu_s = time.perf_counter() - started, time.process_time() - cpu

        started, cpu = time.perf_counter(), time.process_time()
        streamed = 0
        with store.active_hashes("pdq") as snapshot:
            for part in snapshot:
                streamed += len(part)
        stream_s, stream_cpu_s = time.perf_counter() - started, time.process_time() - cpu
        assert streamed == count, (streamed, count)

        started = time.perf_counter()
        after, tailed = 0, 0
        while page := store.changes_since(after, limit=10_000, algorithms=["pdq"]):
            tailed += sum(len(c.hashes) for c in page)
            after = page[-1].sequence
        tail_s = time.perf_counter() - started
        assert tailed == count, (tailed, count)

        probes = [md5[i * (count // 200)].tobytes() for i in range(200)]
        latencies = []
        for code in probes:
            t0 = time.perf_counter()
            assert store.find_items_by_hash("md5", code)
            latencies.append((time.perf_counter() - t0) * 1000)
    load = os.getloadavg()[0]
    return {
        "backend": backend,
        "load_avg_1m": round(load, 1),
        "items": count,
        "hashes_added": 2 * count,
        "batch_items": batch,
        "add_s": round(add_s, 2),
        "add_items_per_s": round(count / add_s),
        "add_cpu_s": round(add_cpu_s, 2),
        "stream_pdq_s": round(stream_s, 2),
        "stream_cpu_s": round(stream_cpu_s, 2),
        "tail_all_s": round(tail_s, 2),
        "lookup_md5_p50_ms": round(statistics.median(latencies), 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--items", type=int, default=1_000_000, help="items to add, each with a pdq and an md5")
    parser.add_argument("--batch", type=int, default=50_000, help="items per transaction")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES, help="server to create the bench database on")
    parser.add_argument("--out", type=Path, default=Path("results/bench_store.json"))
    args = parser.parse_args()

    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    rows = []
    for backend in backends:
        opener = sqlite_url() if backend == "sqlite" else postgres_url(args.postgres_url)
        with opener as url:
            rows.append(run(backend, url, args.items, args.batch))
        print(f"{backend}: done", file=sys.stderr)

    columns = list(rows[0])
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in rows:
        print("  ".join(str(row[c]).ljust(w) for c, w in zip(columns, widths, strict=True)))

    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "sqlalchemy": sa.__version__},
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "results": rows,
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
