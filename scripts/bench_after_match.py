#!/usr/bin/env python
"""What happens after a match, measured: event recording cost, retro-hunt speed, webhook delivery latency.

    # A/B in one sitting: the same server with HASHSVC_RECORD_EVENTS=0 and =1, rounds in the order A B B A, every
    # request matching a `block` item (the worst case: an event per upload, per hash set)
    .venv/bin/python scripts/bench_after_match.py recording --seconds 10
    # 3 rounds per mode (off on on off off on), only the hash-lookup scenarios; every round also reports the
    # server's CPU per request (its processes' user + system time), steadier than throughput on a shared machine
    .venv/bin/python scripts/bench_after_match.py recording --seconds 10 --rounds 3 --scenarios single batch
    # the same lookups with 100%, 10% and 1% of the hash sets matching (the rest match nothing: no event)
    .venv/bin/python scripts/bench_after_match.py recording --seconds 8 --rounds 2 --scenarios single batch \
        --match-shares 1 0.1 0.01

    # side by side: the off and on servers at once, each on its own copy of the store and half the clients, their
    # CPU per request compared window by window (12 windows of 8 s); steadier on a shared machine than rounds
    .venv/bin/python scripts/bench_after_match.py recording --side-by-side --seconds 8 --rounds 12 \
        --scenarios single batch --match-shares 1 0.1 0.01

    # 100k newly added items searched against 10M retained upload hashes (synthesized)
    .venv/bin/python scripts/bench_after_match.py retrohunt --retained 10000000 --new 100000

    # webhook delivery lag from the decision (the event's time) to the receiver, at 200 events/s: through a real
    # server, and with the service in-process (what the writer and the deliverer add by themselves)
    .venv/bin/python scripts/bench_after_match.py webhooks --rate 200 --seconds 20
    .venv/bin/python scripts/bench_after_match.py webhooks --rate 200 --batch 20 --seconds 20   # 10 requests/s
    .venv/bin/python scripts/bench_after_match.py webhooks-in-process --rate 200 --seconds 20

    # any other setting A/B in the same way: here the read-your-writes check of every match, off and on
    .venv/bin/python scripts/bench_after_match.py recording --seconds 10 --rounds 3 --scenarios single batch \
        --toggle fresh_read_timeout_s=0,2 --setting record_events=0

    # the retention pruner over 1M events and 1M webhook deliveries: every minute's pass when nothing is old, then
    # a backlog of 10% (after downtime), with the longest a concurrent write had to wait for it
    .venv/bin/python scripts/bench_after_match.py prune --events 1000000 --old-share 0.1 --rounds 3

    # the event writer's CPU per event in one thread (no server): writes of 8 and of 1,000 events, and a flood
    # check; run it from this checkout with PYTHONPATH=<other checkout> to measure another version of the writer
    .venv/bin/python scripts/bench_after_match.py writer --rounds 5
    # the same once the store holds 300k events, in writes of 1,000 and of 10,000
    .venv/bin/python scripts/bench_after_match.py writer --rounds 3 --prefill 300000 --sizes 1000 10000

Client, receiver and server share this machine; `uptime` is printed with every result.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_service import Request, closed_loop, open_loop, percentile, summarize

from hashsvc.bench.samples import list_images, mosaic, to_jpeg
from hashsvc.store import NewItem, Store, upgrade

ROOT = Path(__file__).resolve().parents[1]
HASHSVC = str(Path(sys.executable).with_name("hashsvc"))


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


class Server:
    def __init__(self, url: str, data_dir: Path, port: int, **settings: Any) -> None:
        self.port = port
        data_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "HASHSVC_DATABASE_URL": url,
            "HASHSVC_DATA_DIR": str(data_dir),
            "HASHSVC_PORT": str(port),
            "HASHSVC_SNAPSHOT_INTERVAL_S": "0",
            **{f"HASHSVC_{k.upper()}": str(v) for k, v in settings.items()},
        }
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.log = (data_dir / f"server-{port}.log").open("ab")
        self.process = subprocess.Popen([HASHSVC, "serve"], env=env, stdout=self.log, stderr=self.log)

    def wait_ready(self, timeout_s: float = 120) -> None:
        import http.client

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                connection.request("GET", "/readyz")
                if connection.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.25)
        raise TimeoutError("server not ready")

    def cpu_s(self) -> float:
        """CPU seconds (user + system) used so far by the server and its worker processes: what a request costs
        the machine, far steadier than throughput when other work shares the cores."""
        root = psutil.Process(self.process.pid)
        total = 0.0
        for process in [root, *root.children(recursive=True)]:
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(60)
        self.log.close()


# ---------------------------------------------------------------------------------------------- recording


def prepare_recording_store(url: str, count: int, uploads: list[bytes]) -> tuple[str, list[str]]:
    """A block bank with `count` random items (PDQ + MD5) and the uploads' MD5s; a match key. Returns the key and
    the stored MD5s that lookups use (every lookup then matches)."""
    upgrade(url)
    rng = np.random.default_rng(1)
    md5s: list[str] = []
    with Store(url) as store:
        store.create_bank("bench", category="other", actor="bench")
        for start in range(0, count, 20_000):
            codes = rng.integers(0, 256, (min(20_000, count - start), 48), dtype=np.uint8)
            store.add_items(
                "bench", (NewItem([("pdq", bytes(c[:32])), ("md5", bytes(c[32:]))]) for c in codes), actor="bench"
            )
            md5s += [bytes(c[32:]).hex() for c in codes[:1000]]
        store.add_items("bench", (NewItem([("md5", hashlib.md5(u).hexdigest())]) for u in uploads), actor="bench")
        token = store.create_api_key("bench", ["match"], actor="bench")[1]
    return token, md5s


def recording(args: argparse.Namespace) -> dict[str, Any]:
    sources = list_images(args.corpus)
    uploads = [to_jpeg(mosaic(sources, 1, seed)) for seed in range(8)]
    folder = Path(tempfile.mkdtemp(prefix="bench-after-"))
    url = args.database_url or f"sqlite:///{folder}/store.db"
    token, md5s = prepare_recording_store(url, args.items, uploads)
    rng = random.Random(7)

    def lookup_md5(share: float) -> str:
        # a stored item's MD5 with probability `share`, else one nothing holds (an allowed upload: no event)
        return rng.choice(md5s) if rng.random() < share else f"{rng.getrandbits(128):032x}"

    scenarios: dict[str, tuple[Any, int, int]] = {
        "~1 MP JPEG upload": (lambda: Request("/v1/match?content_id=u", rng.choice(uploads), "image/jpeg"), 1, 8)
    }
    for share in args.match_shares:
        label = "" if share == 1 else f", {share:.0%} matching"
        # bound as defaults: each scenario keeps its own share and batch body
        batch = json.dumps(
            {"items": [{"md5": md5s[n] if rng.random() < share else f"{rng.getrandbits(128):032x}",
                        "content_id": f"c{n}"} for n in range(1000)]}
        ).encode()
        scenarios[f"single hash lookup{label}"] = (
            lambda share=share: Request(
                "/v1/match/hashes",
                json.dumps({"md5": lookup_md5(share), "content_id": f"p{rng.getrandbits(40)}"}).encode(),
                "application/json",
            ),
            1,
            8,
        )
        scenarios[f"batch of 1000 hash sets{label}"] = (
            lambda batch=batch: Request("/v1/match/hashes", batch, "application/json"), 1000, 2
        )
    # The flood guard still counts (its cost is part of recording) but never trips: the same few uploads match
    # thousands of times here, which in production would quarantine them.
    # Nor does the key's rate limit (20,000 hash sets a second per process by default) apply: at that limit, most
    # batch requests were answered 429, and the CPU their rejection cost was charged to the sets that got through.
    common: dict[str, Any] = {
        "flood_max_contents": 10**9, "workers": 2, "key_rate_per_s": 10**9, "key_burst": 10**9, **dict(args.setting)
    }
    toggled, (off_value, on_value) = args.toggle
    if args.events_flush_s is not None:  # the writer's batch interval (the most a SIGKILL can lose)
        common["events_flush_s"] = args.events_flush_s
    if args.scenarios:
        scenarios = {name: scenario for name, scenario in scenarios.items() if name.split()[0] in args.scenarios}
    if args.side_by_side:
        if args.database_url:
            raise SystemExit("--side-by-side runs two SQLite stores; drop --database-url")
        settings = {mode: {**common, toggled: value} for mode, value in (("off", off_value), ("on", on_value))}
        return side_by_side(args, folder, token, scenarios, settings)
    results: dict[str, dict[str, list[dict[str, Any]]]] = {name: {"off": [], "on": []} for name in scenarios}
    loads = []
    # off, on, on, off, off, on, ...: each mode gets as many rounds early as late, so a load that drifts during the
    # sitting does not favour either
    order = [("off", "on", "on", "off")[n % 4] for n in range(2 * args.rounds)]
    for round_number, mode in enumerate(order):
        server = Server(
            url, folder / f"data-{round_number}", args.port + round_number,
            **{**common, toggled: on_value if mode == "on" else off_value},
        )
        try:
            server.wait_ready()
            for name, (make, per_request, clients) in scenarios.items():
                closed_loop(server.port, token, make, clients, 2)  # warm up
                cpu_before = server.cpu_s()
                outcome = closed_loop(server.port, token, make, clients, args.seconds)
                summary = summarize(outcome, args.seconds, per_request)
                ok = outcome.statuses.get(200, 0) * per_request
                # 5 decimals: a hash set of a batch costs about 0.02 ms, which 3 decimals cut to steps of 5%
                summary["server_cpu_ms_per"] = round((server.cpu_s() - cpu_before) * 1000 / ok, 5) if ok else None
                results[name][mode].append(summary)
                wal = Path(f"{folder}/store.db-wal")
                wal_mb = f"; WAL {wal.stat().st_size / 1e6:.1f} MB" if wal.exists() else ""
                print(f"round {round_number} {mode:3} {name}: {summary}{wal_mb}", file=sys.stderr)
        finally:
            server.stop()
        loads.append(load())
    table = {}
    for name, by_mode in results.items():
        off = float(np.median([r["ok_per_s"] for r in by_mode["off"]]))
        on = float(np.median([r["ok_per_s"] for r in by_mode["on"]]))
        table[name] = {
            "off_per_s": round(off, 1),
            "on_per_s": round(on, 1),
            "ratio": round(on / off, 3) if off else None,
            "off_p50_ms": float(np.median([r["p50_ms"] for r in by_mode["off"]])),
            # server CPU per upload or hash set: on / off is the share recording adds to what the machine spends
            "off_cpu_ms_per": float(np.median([r["server_cpu_ms_per"] for r in by_mode["off"]])),
            "on_cpu_ms_per": float(np.median([r["server_cpu_ms_per"] for r in by_mode["on"]])),
            "on_p50_ms": float(np.median([r["p50_ms"] for r in by_mode["on"]])),
            "cpu_on_over_off": None,
            "runs": by_mode,
        }
    for row in table.values():
        if row["off_cpu_ms_per"]:
            row["cpu_on_over_off"] = round(row["on_cpu_ms_per"] / row["off_cpu_ms_per"], 3)
    with Store(url) as store, store.engine.connect() as conn:
        recorded = conn.exec_driver_sql("SELECT count(*) FROM events").scalar()
    return {"scenarios": table, "events_recorded": recorded, "uptime": loads}


def load_together(servers: dict[str, Server], token: str, make: Any, clients: int, seconds: float) -> dict[str, Any]:
    """`clients` closed-loop clients on each server, all over the same `seconds`."""
    with ThreadPoolExecutor(len(servers)) as pool:
        running = {mode: pool.submit(closed_loop, s.port, token, make, clients, seconds) for mode, s in servers.items()}
        return {mode: future.result() for mode, future in running.items()}


def side_by_side(
    args: argparse.Namespace,
    folder: Path,
    token: str,
    scenarios: dict[str, tuple[Any, int, int]],
    settings: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """Both servers at once, each on its own copy of the store and loaded by half the clients, over the same
    windows: whatever else the machine does in a window falls on both, so the ratio of their CPU per request in
    one window is far steadier than that of rounds taken minutes apart (same-mode rounds differed by 15-30%)."""
    for suffix in ("", "-wal"):
        if Path(f"{folder}/store.db{suffix}").exists():
            shutil.copy(f"{folder}/store.db{suffix}", f"{folder}/store-on.db{suffix}")
    urls = {"off": f"sqlite:///{folder}/store.db", "on": f"sqlite:///{folder}/store-on.db"}
    servers = {
        mode: Server(urls[mode], folder / f"data-{mode}", args.port + n, **settings[mode])
        for n, mode in enumerate(("off", "on"))
    }
    table: dict[str, Any] = {}
    try:
        for server in servers.values():
            server.wait_ready()
        for name, (make, per_request, clients) in scenarios.items():
            each = max(1, clients // 2)
            windows: list[dict[str, Any]] = []
            for window in range(args.rounds + 1):  # the first one warms both up and is not counted
                cpu_before = {mode: server.cpu_s() for mode, server in servers.items()}
                outcomes = load_together(servers, token, make, each, args.seconds if window else 2)
                if not window:
                    continue
                row: dict[str, Any] = {}
                for mode, server in servers.items():
                    ok = outcomes[mode].statuses.get(200, 0) * per_request
                    spent = server.cpu_s() - cpu_before[mode]
                    row[f"{mode}_cpu_ms_per"] = round(spent * 1000 / ok, 5) if ok else None
                    row[f"{mode}_per_s"] = round(ok / args.seconds, 1)
                    row[f"{mode}_statuses"] = outcomes[mode].statuses
                if row["off_cpu_ms_per"] and row["on_cpu_ms_per"]:
                    row["cpu_on_over_off"] = round(row["on_cpu_ms_per"] / row["off_cpu_ms_per"], 3)
                row["uptime"] = load()
                windows.append(row)
                print(f"window {window} {name}: {row}", file=sys.stderr)
            # a window in which a server answered nothing with 200 has no CPU per request and no ratio
            ratios = [w["cpu_on_over_off"] for w in windows if "cpu_on_over_off" in w]
            answered = {mode: [w[f"{mode}_cpu_ms_per"] for w in windows if w[f"{mode}_cpu_ms_per"]] for mode in servers}
            table[name] = {
                "cpu_on_over_off_median": round(float(np.median(ratios)), 3) if ratios else None,
                "cpu_on_over_off_range": [min(ratios), max(ratios)] if ratios else None,
                **{f"{mode}_cpu_ms_per_median": float(np.median(v)) if v else None for mode, v in answered.items()},
                "windows": windows,
            }
    finally:
        for server in servers.values():
            server.stop()
    with Store(urls["on"]) as store, store.engine.connect() as conn:
        recorded = conn.exec_driver_sql("SELECT count(*) FROM events").scalar()
    return {"side_by_side": table, "events_recorded": recorded, "uptime": load()}


# ---------------------------------------------------------------------------------------------- retro-hunt


def synthesize_retained(rng: np.random.Generator, count: int, reposts: float) -> np.ndarray:
    """`count` PDQ codes of uploads: most distinct (random), a share `reposts` near-duplicates (1-12 bits
    flipped) of an earlier upload, as re-posts of one picture are on a real platform."""
    codes = rng.integers(0, 256, (count, 32), dtype=np.uint8)
    copies = np.flatnonzero(rng.random(count) < reposts)
    copies = copies[copies > 0]
    originals = (rng.random(copies.shape[0]) * copies).astype(np.int64)  # an earlier upload
    codes[copies] = codes[originals]
    bits = rng.integers(1, 13, copies.shape[0])
    for flips in range(1, 13):  # flip `flips` random bits (a repeated bit only cancels: still near)
        rows = copies[bits == flips]
        for _ in range(flips):
            position = rng.integers(0, 256, rows.shape[0])
            codes[rows, position >> 3] ^= (128 >> (position & 7)).astype(np.uint8)
    return codes


def retrohunt(args: argparse.Namespace) -> dict[str, Any]:
    """Retained uploads written to the store, read and indexed by the hunter (its start-up on taking the lease),
    then `new` items hunted in one call (a bulk import), with `hits` planted near-duplicates of retained uploads."""
    from hashsvc.service.retrohunt import RetroHunter
    from hashsvc.store.bulk import insert_rows
    from hashsvc.store.records import HashRow
    from hashsvc.store.schema import recent_uploads
    from hashsvc.store.transactions import utcnow

    folder = Path(tempfile.mkdtemp(prefix="bench-retro-"))
    url = args.database_url or f"sqlite:///{folder}/store.db"
    upgrade(url)
    rng = np.random.default_rng(3)
    store = Store(url)
    bank = store.create_bank("known", category="csam", actor="bench")
    retained = synthesize_retained(rng, args.retained, args.reposts)
    targets = rng.choice(args.retained, args.hits, replace=False)
    now = utcnow()
    columns = ("id", "at", "key_name", "content_id", "metadata", "algorithm", "code")

    def store_rows(numbers: Any) -> None:
        with store.engine.begin() as conn:
            rows = [(int(n) + 1, now, "bench", f"upload-{n}", {}, "pdq", retained[n].tobytes()) for n in numbers]
            insert_rows(conn, recent_uploads, columns, rows)

    hunter = RetroHunter(store, retention_days=30)
    write_s = None
    if args.index_only:
        # The hunter's index built straight from the codes (what refresh does after reading them); only the rows
        # the planted hits point at go to the store, since the hunt reads those. Writing 10M rows to SQLite at
        # load 12 took longer than the rest of the run.
        store_rows(sorted(set(targets.tolist())))
        started = time.perf_counter()
        hunter.index.add(np.arange(1, args.retained + 1, dtype=np.int64), retained)
        hunter.loaded_upto = args.retained
    else:
        started = time.perf_counter()
        for start in range(0, args.retained, 200_000):
            store_rows(range(start, min(start + 200_000, args.retained)))
        write_s = round(time.perf_counter() - started, 1)
        print(f"stored {args.retained} retained hashes in {write_s} s; {load()}", file=sys.stderr)
        started = time.perf_counter()
        hunter.refresh()
    build_s = time.perf_counter() - started
    print(f"{'indexed' if args.index_only else 'read and indexed'} them in {build_s:.1f} s; {load()}", file=sys.stderr)

    # New items: `hits` of them are near-duplicates (0-20 bits flipped) of retained uploads, the rest random.
    new = rng.integers(0, 256, (args.new, 32), dtype=np.uint8)
    for n, target in enumerate(targets):
        code = np.unpackbits(retained[target])
        flip = rng.choice(256, int(rng.integers(0, 21)), replace=False)
        code[flip] ^= 1
        new[n] = np.packbits(code)
    rows = [HashRow(n + 1, n + 1, bank.id, "pdq", new[n].tobytes()) for n in range(args.new)]
    started, cpu_started = time.perf_counter(), time.process_time()
    events = hunter.hunt(rows)
    hunt_s, hunt_cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
    found = {(e.matches[0]["item_id"], e.content_id) for e in events}
    missing = [t for n, t in enumerate(targets) if (n + 1, f"upload-{t}") not in found]
    store.close()
    return {
        "retained": args.retained,
        "reposts_share": args.reposts,
        "new_items": args.new,
        "planted_hits": args.hits,
        "hit_events": len(events),
        "planted_hits_missed": len(missing),
        "store_write_s": write_s,
        "index_only": args.index_only,
        ("index_s" if args.index_only else "read_and_index_s"): round(build_s, 1),
        "hunt_s": round(hunt_s, 1),
        "hunt_cpu_s": round(hunt_cpu_s, 1),  # CPU seconds of all threads: what a machine of its own would need
        "uptime": load(),
    }


# ------------------------------------------------------------------------------------------------ webhooks


def _receiver_process(control: Any) -> None:
    """The webhook receiver in a process of its own (apart from the load generator's threads and their GIL):
    sends its URL, takes the secret, and after "stop" sends back every arrival as (key, event time, arrival)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from webhook_receiver import receiving

    with receiving() as receiver:
        control.send(receiver.url)
        receiver.secret = control.recv()
        expected = control.recv()  # sent when the load is over: how many events to wait for
        deadline = time.monotonic() + 120
        while len(receiver.unique) < expected and time.monotonic() < deadline:
            time.sleep(0.1)
        arrivals = [(r["key"], r["body"]["event"]["at"], r["at"]) for r in receiver.requests]
        control.send((arrivals, receiver.bad_signatures))


def webhooks(args: argparse.Namespace) -> dict[str, Any]:
    import multiprocessing
    import urllib.request

    folder = Path(tempfile.mkdtemp(prefix="bench-hooks-"))
    url = args.database_url or f"sqlite:///{folder}/store.db"
    upgrade(url)
    rng = np.random.default_rng(5)
    md5s = [bytes(c).hex() for c in rng.integers(0, 256, (5000, 16), dtype=np.uint8)]
    with Store(url) as store:
        store.create_bank("known", category="csam", actor="bench")
        store.add_items("known", (NewItem([("md5", m)]) for m in md5s), actor="bench")
        token = store.create_api_key("bench", ["match"], actor="bench")[1]
        admin = store.create_api_key("bench-admin", ["admin"], actor="bench")[1]
    control, child_end = multiprocessing.get_context("spawn").Pipe()
    receiver = multiprocessing.get_context("spawn").Process(target=_receiver_process, args=(child_end,))
    receiver.start()
    server = Server(
        url,
        folder / "data",
        args.port,
        webhook_allowed_networks="127.0.0.0/8",
        flood_max_contents=10**9,
        workers=2,
        **dict(args.setting),
    )
    try:
        receiver_url = control.recv()
        server.wait_ready()
        request = urllib.request.Request(
            f"http://127.0.0.1:{args.port}/v1/webhooks",
            data=json.dumps({"url": receiver_url, "events": ["block"]}).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {admin}"},
            method="POST",
        )
        with urllib.request.urlopen(request) as answer:
            control.send(json.loads(answer.read())["secret"])
        pick = random.Random(9)

        def one() -> dict[str, str]:
            return {"md5": pick.choice(md5s), "content_id": f"p{pick.getrandbits(40)}"}

        def make() -> Request:
            body = one() if args.batch == 1 else {"items": [one() for _ in range(args.batch)]}
            return Request("/v1/match/hashes", json.dumps(body).encode(), "application/json")

        # --batch N sends the same events/s as N hash sets per request (a pipeline that batches its lookups):
        # the decisions and their events are the same, the server spends less of the machine on HTTP.
        outcome = open_loop(args.port, token, make, args.rate / args.batch, args.seconds)
        sent = outcome.statuses.get(200, 0) * args.batch
        control.send(sent)
        arrivals, bad_signatures = control.recv()
    finally:
        server.stop()
        receiver.join(30)
    first: dict[str, tuple[str, float]] = {}
    for key, decided_at, arrived in arrivals:
        first.setdefault(key, (decided_at, arrived))
    lags = [(arrived - dt.datetime.fromisoformat(at).timestamp()) * 1000 for at, arrived in first.values()]
    return {
        "rate_per_s": args.rate,
        "hash_sets_per_request": args.batch,
        "seconds": args.seconds,
        "events_sent": sent,
        "achieved_rate_per_s": round(sent / args.seconds, 1),
        "match_p50_ms": percentile(outcome.latencies_ms, 50),
        "match_p99_ms": percentile(outcome.latencies_ms, 99),
        "events_received": len(first),
        "duplicates": len(arrivals) - len(first),
        "bad_signatures": bad_signatures,
        "lag_p50_ms": percentile(lags, 50),
        "lag_p99_ms": percentile(lags, 99),
        "lag_max_ms": round(max(lags), 1) if lags else None,
        "uptime": load(),
    }


def webhooks_in_process(args: argparse.Namespace) -> dict[str, Any]:
    """The same lag with the service in this process (no HTTP front, no worker processes): what the event writer
    and the deliverer add by themselves, apart from a server saturated by the load generator on the same cores."""
    sys.path.insert(0, str(ROOT / "tests"))
    from webhook_receiver import receiving

    from hashsvc.config import load_settings
    from hashsvc.service.service import Service
    from hashsvc.store import Actor

    folder = Path(tempfile.mkdtemp(prefix="bench-hooks-"))
    url = args.database_url or f"sqlite:///{folder}/store.db"
    upgrade(url)
    total = int(args.rate * args.seconds)
    with Store(url) as store:
        store.create_bank("known", category="csam", actor="bench")
        store.add_items("known", (NewItem([("md5", f"{n:032x}")]) for n in range(1, total + 1)), actor="bench")
    settings = {"database_url": url, "data_dir": str(folder), "webhook_allowed_networks": "127.0.0.0/8"}
    service = Service(load_settings({**settings, "sandbox": False, "flood_max_contents": 10**9}, {}))
    service.live.load()
    service.after.start_background()
    try:
        with receiving() as receiver:
            hook = service.after.webhooks.create({"url": receiver.url, "events": ["block"]}, Actor("bench"))
            receiver.secret = hook["secret"]
            started = time.time()
            for n in range(1, total + 1):
                service.match_hashes({"md5": f"{n:032x}", "content_id": f"c{n}"})
                time.sleep(max(0.0, started + n / args.rate - time.time()))
            achieved = total / (time.time() - started)
            receiver.wait_for(total, 120)
            lags = [
                (got["at"] - dt.datetime.fromisoformat(got["body"]["event"]["at"]).timestamp()) * 1000
                for got in receiver.unique.values()
            ]
            duplicates = len(receiver.requests) - len(receiver.unique)
    finally:
        service.close()
    return {
        "rate_per_s": args.rate,
        "achieved_rate_per_s": round(achieved, 1),
        "events": total,
        "duplicates": duplicates,
        "lag_p50_ms": percentile(lags, 50),
        "lag_p99_ms": percentile(lags, 99),
        "lag_max_ms": round(max(lags), 1),
        "uptime": load(),
    }


def writer(args: argparse.Namespace) -> dict[str, Any]:
    """The event writer's CPU per event, in this process and thread (no server, no other thread to share the GIL
    with): `--sizes` events per write (a 50 ms flush under single lookups holds 5-10, a batch request makes 1,000),
    then one flood check of the items 1,000 new events blocked on (the writer runs one a second at most). The
    events are what real match results make: 1,000 hash sets, each matching one `block` item."""
    from hashsvc.config import load_settings
    from hashsvc.service import service as service_module
    from hashsvc.service.events import EventRecorder, match_event
    from hashsvc.service.service import Service
    from hashsvc.store.aftermatch import FloodRule

    folder = Path(tempfile.mkdtemp(prefix="bench-writer-"))
    url = args.database_url or f"sqlite:///{folder}/store.db"
    upgrade(url)
    with Store(url) as store:
        store.create_bank("known", category="csam", actor="bench")
        store.add_items("known", (NewItem([("md5", f"{n:032x}")]) for n in range(1, 1001)), actor="bench")
    service = Service(load_settings({"database_url": url, "data_dir": str(folder), "sandbox": False}, {}))
    service.live.load()
    sets = [({"md5": f"{n:032x}", "content_id": f"c{n}"}) for n in range(1, 1001)]
    split = [service_module._split_context(entry, "") for entry in sets]
    queries = [service_module._query_from_hash_set(entry, "") for entry, _ in split]
    results = service._match_many(queries)
    summaries = [service_module._hash_set_summary(query) for query in queries]
    recorder = EventRecorder(service.store, flush_s=3600, buffer=10**6, flood=FloodRule(10**9, 3600))

    def made() -> list[Any]:
        return [
            match_event("bench", context, summary, result, 0.0)
            for (_, context), summary, result in zip(split, summaries, results, strict=True)
        ]

    # A store that has been recording a while: its random-key indexes (content_id; item and time) outgrow what
    # one write touches, so each event's entries land on pages of their own
    for _ in range(args.prefill // 1000):
        recorder._pending.extend(made())
        if len(recorder._pending) >= 10_000:
            recorder._write_batch()
    recorder._write_batch()

    out: dict[str, Any] = {}
    for size in args.sizes:
        per_event = []
        for _ in range(args.rounds):
            batch = [event for _ in range(max(1, size // 1000)) for event in made()]  # made() gives 1,000
            spent = 0.0
            for start in range(0, len(batch), size):
                recorder._pending.extend(batch[start : start + size])  # the writer's own buffer, no thread
                started = time.thread_time()
                recorder._write_batch()
                spent += time.thread_time() - started
            per_event.append(spent * 1000 / len(batch))
        out[f"write_ms_per_event_batches_of_{size}"] = round(float(np.median(per_event)), 4)
        out[f"write_ms_per_event_batches_of_{size}_runs"] = [round(v, 4) for v in per_event]
    checks = []
    for _ in range(args.rounds):
        recorder._pending.extend(made())
        recorder._write_batch()
        started = time.thread_time()
        recorder._check_flood(force=True)
        checks.append((time.thread_time() - started) * 1000)
    out["flood_check_ms_after_1000_events"] = round(float(np.median(checks)), 2)
    out["flood_check_ms_runs"] = [round(v, 2) for v in checks]
    service.close()
    return {**out, "uptime": load()}


# ---------------------------------------------------------------------------------------------- pruning


def prune(args: argparse.Namespace) -> dict[str, Any]:
    """The retention pruner over a store that has run a while: `--events` events (each with an item row) and as
    many settled webhook deliveries (each with an attempt), spread over the retention period.

    Two passes: a steady one (nothing is old yet: the pruner's every-minute pass), then one with `--old-share` of
    the rows past retention (a backlog: after downtime, or retention shortened). During each, another thread
    writes one small transaction every 5 ms, as the event writer would, and the longest it waited is reported:
    how long a prune keeps everything else out of the store.

    Between them, lookups by content_id (`GET /v1/events?content_id=`) are timed. Event ids are `--id-stride`
    apart, so that with a stride of 100, 1M events span the ids (and the content_id index's buckets) of a store
    that kept 100M."""
    import threading

    from hashsvc.store import aftermatch
    from hashsvc.store import webhooks as webhook_table
    from hashsvc.store.bulk import insert_rows, json_text, timestamp_value
    from hashsvc.store.schema import event_items, events, job_checkpoints, webhook_attempts, webhook_outbox
    from hashsvc.store.transactions import write_connection

    folder = Path(tempfile.mkdtemp(prefix="bench-prune-"))
    url = args.database_url or f"sqlite:///{folder}/store.db"
    upgrade(url)
    now = dt.datetime.now(dt.UTC)
    count = args.events
    old = int(count * args.old_share)
    retention = dt.timedelta(days=90)
    matches = json_text([{"bank": "known", "item_id": 1, "algorithm": "md5", "distance": 0, "action": "block"}])
    bucket = getattr(aftermatch, "CONTENT_BUCKET", 1)  # a checkout before the bucketed content_id index has none

    def event_row(n: int, at: str) -> tuple[Any, ...]:
        # by column name: the columns differ between checkouts compared with PYTHONPATH
        values = {"id": n * args.id_stride, "at": at, "type": "match", "key_name": "bench", "content_id": f"c{n}",
                  "content_bucket": n * args.id_stride // bucket, "decision": "block", "metadata": "{}",
                  "hashes": json_text({"md5": f"{n:032x}"}), "matches": matches, "details": "{}"}
        return tuple(values[column] for column in aftermatch.EVENT_COLUMNS)

    def item_row(n: int, at: str, at_ms: int) -> tuple[Any, ...]:
        values = {"event_id": n * args.id_stride, "item_id": n % 5000, "bank": "known", "content_key": f"c{n}",
                  "at": at, "at_ms": at_ms}  # at_ms: since migration 0010
        return tuple(values[column] for column in aftermatch.ITEM_COLUMNS)

    with Store(url) as store:
        with store.engine.begin() as conn:
            stamp = timestamp_value(conn)
            for start in range(0, count, 50_000):
                numbers = range(start + 1, min(count, start + 50_000) + 1)
                # the oldest `old` rows are past retention by a day, the rest spread over the retention period
                times = {n: now - retention - dt.timedelta(days=1) if n <= old
                         else now - retention * (1 - n / count) + dt.timedelta(minutes=1) for n in numbers}
                ats = {n: stamp(at) for n, at in times.items()}
                at_ms = {n: int(at.timestamp() * 1000) for n, at in times.items()}
                insert_rows(conn, events, aftermatch.EVENT_COLUMNS, [
                    event_row(n, ats[n]) for n in numbers], rows_per_statement=200, prepared=True)
                insert_rows(conn, event_items, aftermatch.ITEM_COLUMNS,
                            [item_row(n, ats[n], at_ms[n]) for n in numbers], rows_per_statement=200, prepared=True)
                insert_rows(conn, webhook_outbox, (*aftermatch.OUTBOX_COLUMNS, "delivered_at"), [
                    (1, f"evt-{n}-wh-1", "block", "{}", ats[n], "delivered", 1, ats[n], ats[n]) for n in numbers],
                    rows_per_statement=200, prepared=True)
                insert_rows(conn, webhook_attempts,
                            ("outbox_id", "webhook_id", "at", "status_code", "error", "duration_ms"),
                            [(n, 1, ats[n], 200, None, 3.0) for n in numbers], rows_per_statement=200, prepared=True)
            conn.execute(sa.insert(job_checkpoints).values(name="bench-writer", value=0))
        with store.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")  # the planner's view of a store that has been running a while
            conn.commit()

        def one_pass(label: str, before: dt.datetime) -> dict[str, Any]:
            waits: list[float] = []
            stop = threading.Event()

            def writer_thread() -> None:
                bump = sa.update(job_checkpoints).where(job_checkpoints.c.name == "bench-writer").values(
                    value=job_checkpoints.c.value + 1)
                while not stop.is_set():
                    started = time.perf_counter()
                    with write_connection(store.engine) as conn:  # as the event writer's transactions
                        conn.execute(bump)
                    waits.append(time.perf_counter() - started)
                    time.sleep(0.005)

            thread = threading.Thread(target=writer_thread)
            thread.start()
            try:
                time.sleep(0.2)
                started, cpu = time.perf_counter(), time.process_time()
                pruned = aftermatch.prune(store.engine, before)
                webhook_table.prune(store.engine, before)
                took, cpu_took = time.perf_counter() - started, time.process_time() - cpu
                time.sleep(0.2)
            finally:
                stop.set()
                thread.join()
            row = {"events_pruned": pruned, "seconds": round(took, 3), "cpu_s": round(cpu_took, 3),
                   "longest_write_wait_ms": round(max(waits) * 1000, 1), "writes_during": len(waits)}
            print(f"{label}: {row}", file=sys.stderr)
            return row

        steady = [one_pass("steady", now - retention - dt.timedelta(days=2)) for _ in range(args.rounds)]
        lookups = {}
        for label, content_id in (("one_event", f"c{count // 2}"), ("none", "nobody")):
            took = []
            for _ in range(5):
                started = time.perf_counter()
                aftermatch.list_events(store.engine, aftermatch.EventFilter(content_id=content_id), 50)
                took.append(time.perf_counter() - started)
            lookups[f"content_id_lookup_ms_{label}"] = round(float(np.median(took)) * 1000, 2)
        print(f"lookups: {lookups}", file=sys.stderr)
        backlog = one_pass("backlog", now - retention)
    return {"events": count, "old": old, "steady": steady, "lookups": lookups, "backlog": backlog, "uptime": load()}


def _setting(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected SETTING=VALUE, got {text!r}")
    return name, value


def _toggle(text: str) -> tuple[str, tuple[str, str]]:
    name, values = _setting(text)
    off, sep, on = values.partition(",")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected SETTING=OFF,ON, got {text!r}")
    return name, (off, on)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "what", choices=["recording", "retrohunt", "webhooks", "webhooks-in-process", "writer", "prune"]
    )
    parser.add_argument("--database-url", help="default: a SQLite file in a fresh temporary folder")
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus")
    parser.add_argument("--items", type=int, default=100_000, help="recording: stored items")
    parser.add_argument("--events-flush-s", type=float, help="recording: HASHSVC_EVENTS_FLUSH_S (default: the default)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2, help="recording: rounds per mode (off and on)")
    parser.add_argument(
        "--scenarios", nargs="+", choices=["~1", "single", "batch"], help="recording: only these (first word)"
    )
    parser.add_argument(
        "--match-shares",
        type=float,
        nargs="+",
        default=[1.0],
        help="recording: share of hash sets that match a block item (default 1: every set, the worst case); "
        "several values run the lookup scenarios once per share",
    )
    parser.add_argument(
        "--toggle",
        type=_toggle,
        default=("record_events", ("0", "1")),
        metavar="SETTING=OFF,ON",
        help="recording: the setting whose two values are compared (default record_events=0,1)",
    )
    parser.add_argument(
        "--setting",
        type=_setting,
        action="append",
        default=[],
        metavar="SETTING=VALUE",
        help="recording and webhooks: a server setting (for both modes), e.g. record_events=0 (repeatable)",
    )
    parser.add_argument(
        "--side-by-side",
        action="store_true",
        help="recording: run the off and on servers at once, each on its own copy of the SQLite store and half "
        "the clients, and compare their CPU per request window by window (--rounds windows of --seconds)",
    )
    parser.add_argument("--port", type=int, default=18280)
    parser.add_argument("--retained", type=int, default=10_000_000)
    parser.add_argument("--new", type=int, default=100_000)
    parser.add_argument("--hits", type=int, default=1000)
    parser.add_argument("--index-only", action="store_true", help="retrohunt: index the codes, skip the store read")
    parser.add_argument("--reposts", type=float, default=0.2, help="retrohunt: share of retained near-duplicates")
    parser.add_argument("--rate", type=float, default=200.0, help="webhooks: events (matching hash sets) per second")
    parser.add_argument("--batch", type=int, default=1, help="webhooks: hash sets per request")
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[8, 1000], help="writer: events per write (default 8 and 1000)"
    )
    parser.add_argument("--events", type=int, default=1_000_000, help="prune: events in the store")
    parser.add_argument("--id-stride", type=int, default=1, help="prune: event ids this far apart")
    parser.add_argument("--prefill", type=int, default=0, help="writer: events recorded before measuring")
    parser.add_argument("--old-share", type=float, default=0.1, help="prune: share of them past retention")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    benches = {
        "recording": recording,
        "retrohunt": retrohunt,
        "webhooks": webhooks,
        "webhooks-in-process": webhooks_in_process,
        "writer": writer,
        "prune": prune,
    }
    result = benches[args.what](args)
    text = json.dumps(result, indent=2, default=str)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text)


if __name__ == "__main__":
    main()
