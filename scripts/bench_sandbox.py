"""The cost of the sandbox: ~1 MP JPEG uploads through `Service.match_image` hashed in-process vs in the sandbox.

A/B in one sitting: rounds alternate in-process and sandbox, each a closed loop of `--clients` threads (the
API admits max_inflight = 2 per process) for `--seconds`; the table gives each round, the medians and their
ratio. Then the pool's RSS at rest, and the peak RSS of the whole process tree (serving process, fork server,
workers) while the heavy 9,990 x 9,990 PNGs (grey+alpha, 16-bit grey) are hashed.

    .venv/bin/python scripts/bench_sandbox.py --rounds 5 --seconds 8 --json results/bench_sandbox.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from hashsvc.bench.samples import mosaic, require_images, to_jpeg
from hashsvc.config import load_settings
from hashsvc.errors import MediaError
from hashsvc.service.service import Service
from hashsvc.store import upgrade

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
MIB = 1024 * 1024


def make_service(data_dir: Path, sandbox: bool) -> Service:
    settings = load_settings({"data_dir": str(data_dir), "sandbox": sandbox, "snapshot_interval_s": 0}, environ={})
    upgrade(settings.resolved_database_url)
    service = Service(settings)
    service.live.load()
    if service.sandbox is not None:
        service.sandbox.start()
    return service


def closed_loop(service: Service, uploads: list[bytes], clients: int, seconds: float) -> float:
    """Uploads per second over `seconds` with `clients` threads each sending one upload after another."""
    done = [0] * clients
    stop = time.monotonic() + seconds

    def client(n: int) -> None:
        while time.monotonic() < stop:
            service.match_image(uploads[(done[n] * clients + n) % len(uploads)])
            done[n] += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(done) / (time.monotonic() - started)


def tree_rss(process: psutil.Process) -> int:
    total = 0
    for member in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += member.memory_info().rss
    return total


def heavy_peak(service: Service) -> dict[str, object]:
    from hostile import png_of_zeros

    me = psutil.Process()
    before = tree_rss(me)
    peak = [before]
    running = threading.Event()
    running.set()

    def watch() -> None:
        while running.is_set():
            peak[0] = max(peak[0], tree_rss(me))
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    outcomes = {}
    for mode in ("LA", "I;16"):
        data = png_of_zeros(9990, 9990, mode)
        started = time.monotonic()
        try:
            service.hash_image(data)
            outcome = "hashed"
        except MediaError as error:
            outcome = error.code
        outcomes[mode] = {"outcome": outcome, "seconds": round(time.monotonic() - started, 2)}
    time.sleep(0.2)
    running.clear()
    watcher.join()
    after = tree_rss(me)
    return {"tree_rss_before_mib": before / MIB, "tree_peak_mib": peak[0] / MIB, "tree_rss_after_mib": after / MIB,
            "outcomes": outcomes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    sources = require_images(args.corpus)
    uploads = [to_jpeg(mosaic(sources, 1, seed)) for seed in range(8)]
    with tempfile.TemporaryDirectory() as tmp:
        services = {"in-process": make_service(Path(tmp) / "a", False), "sandbox": make_service(Path(tmp) / "b", True)}
        for service in services.values():
            closed_loop(service, uploads, args.clients, 1.0)  # warm both
        rates: dict[str, list[float]] = {name: [] for name in services}
        for round_number in range(args.rounds):
            for name, service in services.items():
                rates[name].append(closed_loop(service, uploads, args.clients, args.seconds))
            print(f"round {round_number + 1}: " + ", ".join(f"{n} {r[-1]:.1f}/s" for n, r in rates.items()))
        medians = {name: statistics.median(values) for name, values in rates.items()}
        ratio = medians["sandbox"] / medians["in-process"]
        pool = services["sandbox"].sandbox
        assert pool is not None
        pool_rss = sum(psutil.Process(pid).memory_info().rss for pid in pool.pids())
        pool_uss = sum(psutil.Process(pid).memory_full_info().uss for pid in pool.pids())
        workers = len(pool.pids())
        heavy = heavy_peak(services["sandbox"])
        for service in services.values():
            service.close()
    result = {
        "rates": rates,
        "medians": medians,
        "ratio": ratio,
        "pool_rss_at_rest_mib": pool_rss / MIB,
        "pool_uss_at_rest_mib": pool_uss / MIB,
        "heavy": heavy,
    }
    print(f"median uploads/s: in-process {medians['in-process']:.1f}, sandbox {medians['sandbox']:.1f}, "
          f"ratio {ratio:.3f}")
    print(f"pool at rest: RSS {pool_rss / MIB:.0f} MiB, USS {pool_uss / MIB:.0f} MiB ({workers} workers)")
    print(f"heavy PNGs: {json.dumps(heavy)}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
