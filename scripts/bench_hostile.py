#!/usr/bin/env python
"""Normal traffic with and without each attack running alongside, against a real `hashsvc serve`.

It prepares a store with N random PDQ hashes (default 1M, as scripts/bench_service.py does), starts the server
with its defaults (2 worker processes), and runs a steady open loop of normal traffic from one key: ~1 MP JPEG
matches at --rate requests/s. For each scenario it records that traffic's p50/p99 and how many of its requests
failed (anything but 200), the whole server's RSS (every process, sampled every 0.1 s) and what the attack got:

- quiet: no attack (the baseline every other row is compared with, measured in the same run);
- slow headers: 64, 256 and 1,024 sockets that each send one header line every 2 s, reconnecting when cut off;
- heavy images: 2 clients of another key loop near-limit PNGs and TIFFs (99.8 MP of zeros, a few hundred KB
  each) in every heavy pixel mode; each answer's status, code and time is recorded;
- probing: a third key runs the 2-request oracle attack (a query within the threshold of a stored PDQ, then a
  batch of its 256 single-bit flips) over and over; we report how close its best reconstruction gets to the
  stored code (0 bits: recovered exactly).

    .venv/bin/python scripts/bench_hostile.py --hashes 1000000 --json results/bench_hostile.json
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import random
import resource
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_service import Outcome, Request, Server, open_loop, percentile, prepare_store

from hashsvc.bench.samples import list_images, mosaic, require_free_port, require_images, to_jpeg
from hashsvc.store import NewItem, Store

ROOT = Path(__file__).resolve().parents[1]
HEAVY_SIDE = 9_990  # 99.8 MP: just under the default 100 MP limit
HEAVY_PNG_MODES = ("LA", "I;16", "RGBA", "RGB", "L")
HEAVY_TIFF_MODES = ("F", "I;16", "I", "CMYK", "RGBA")


# ------------------------------------------------------------------------------------------------ attacks


class Background:
    """A thread that runs `_run` from `with` entry until exit; `_run` watches `self.stop`."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True)]

    def __enter__(self) -> Background:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()

    def _run(self) -> None:
        raise NotImplementedError


class SlowHeaders(Background):
    """`count` sockets that each send one more header line every `interval_s`, never finishing the request."""

    def __init__(self, port: int, count: int, interval_s: float = 2.0) -> None:
        super().__init__()
        self.port, self.count, self.interval_s = port, count, interval_s
        self.reconnects = 0

    def __enter__(self) -> SlowHeaders:
        super().__enter__()
        time.sleep(self.interval_s + 0.5)  # every socket is open and has started its request
        return self

    def _open(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port))
        sock.sendall(b"POST /v1/match HTTP/1.1\r\nHost: localhost\r\n")
        return sock

    def _run(self) -> None:
        sockets = [self._open() for _ in range(self.count)]
        line = 0
        while not self.stop.wait(self.interval_s):
            line += 1
            for n, sock in enumerate(sockets):
                try:
                    sock.sendall(b"X-Slow-%d: a\r\n" % line)
                except OSError:
                    sock.close()
                    self.reconnects += 1
                    with contextlib.suppress(OSError):
                        sockets[n] = self._open()
        for sock in sockets:
            sock.close()


def heavy_images(cache: Path) -> list[tuple[str, bytes]]:
    """Near-limit images of zeros in every heavy mode, cached (each takes seconds to encode)."""
    cache.mkdir(parents=True, exist_ok=True)
    images = []
    for fmt, modes in (("PNG", HEAVY_PNG_MODES), ("TIFF", HEAVY_TIFF_MODES)):
        for mode in modes:
            path = cache / f"heavy-{mode.replace(';', '')}.{fmt.lower()}"
            if not path.exists():
                image = Image.new(mode, (HEAVY_SIDE, HEAVY_SIDE))
                options = {"compression": "tiff_deflate"} if fmt == "TIFF" else {"compress_level": 9}
                image.save(path, fmt, **options)
                del image
            images.append((f"{fmt} {mode}", path.read_bytes()))
    return images


class HeavyClients(Background):
    """`clients` threads posting heavy images in turn; each answer is (name, status, code, seconds)."""

    def __init__(self, port: int, token: str, images: list[tuple[str, bytes]], clients: int = 2) -> None:
        super().__init__()
        self.port, self.token, self.images = port, token, images
        self.answers: list[tuple[str, int, str, float]] = []
        self.threads = [threading.Thread(target=self._client, args=(n,), daemon=True) for n in range(clients)]

    def _client(self, offset: int) -> None:
        n = offset
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        while not self.stop.is_set():
            name, body = self.images[n % len(self.images)]
            n += 1
            started = time.perf_counter()
            try:
                connection.request(
                    "POST", "/v1/match", body=body,
                    headers={"Content-Type": "application/octet-stream", "Authorization": f"Bearer {self.token}"},
                )
                response = connection.getresponse()
                raw = response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                status, raw = 0, b""
            code = _error_code(raw)
            self.answers.append((name, status, code, time.perf_counter() - started))


class Prober(Background):
    """The 2-request oracle attack, repeated: how many bits of the stored PDQ do the answers give away?"""

    def __init__(self, port: int, token: str, stored: bytes, start_distance: int = 10) -> None:
        super().__init__()
        self.port, self.token, self.stored = port, token, int.from_bytes(stored, "big")
        rng = random.Random(3)
        self.query = self.stored
        for bit in rng.sample(range(256), start_distance):
            self.query ^= 1 << bit
        self.start_distance = start_distance
        self.rounds = 0
        self.best_error = 256
        self.statuses: dict[int, int] = {}

    def _post(self, connection: http.client.HTTPConnection, body: object) -> tuple[int, object]:
        connection.request(
            "POST", "/v1/match/hashes", body=json.dumps(body),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"},
        )
        response = connection.getresponse()
        raw = response.read()
        self.statuses[response.status] = self.statuses.get(response.status, 0) + 1
        return response.status, json.loads(raw) if raw else None

    def _run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        while not self.stop.is_set():
            try:
                status, base = self._post(connection, {"pdq": f"{self.query:064x}"})
                flips = [{"pdq": f"{self.query ^ (1 << bit):064x}"} for bit in range(256)]
                status2, batch = self._post(connection, {"items": flips})
            except (OSError, http.client.HTTPException, ValueError):
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                continue
            self.rounds += 1
            if status == 200 and status2 == 200:
                self.best_error = min(self.best_error, self._reconstruction_error(base, batch["results"]))
            time.sleep(0.2)

    def _reconstruction_error(self, base: dict, results: list[dict]) -> int:
        """Bits by which the attacker's best reconstruction misses the stored code (0: fully recovered).

        The attacker flips each bit of its query whose flip made the answer closer (a smaller distance, or a
        more severe decision); any other answer, frozen or unchanged, leaves the bit as it was.
        """
        base_key = _answer_signature(base)
        guess = self.query
        for bit, result in enumerate(results):
            if _closer(_answer_signature(result), base_key):
                guess ^= 1 << bit
        return (guess ^ self.stored).bit_count()


def _answer_signature(result: dict) -> tuple[str, int | None]:
    distances = [m["distance"] for m in result.get("matches", []) if m.get("algorithm") == "pdq" and "distance" in m]
    return result.get("decision", "?"), (min(distances) if distances else None)


def _closer(signature: tuple[str, int | None], base: tuple[str, int | None]) -> bool:
    severity = {"allow": 0, "review": 1, "block": 2}
    if signature[1] is not None and base[1] is not None:
        return signature[1] < base[1]
    return severity.get(signature[0], 0) > severity.get(base[0], 0)


def _error_code(raw: bytes) -> str:
    try:
        return str(json.loads(raw)["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return ""


# ---------------------------------------------------------------------------------------------- harness


class RssPeak(Background):
    def __init__(self, server: Server) -> None:
        super().__init__()
        self.server, self.peak = server, 0.0

    def _run(self) -> None:
        while not self.stop.wait(0.1):
            try:
                self.peak = max(self.peak, self.server.rss_mib())
            except Exception:  # noqa: BLE001 - a process that exits between listing and reading
                continue


def normal_traffic(port: int, token: str, jpegs: list[bytes], rate: float, seconds: float) -> Outcome:
    rng = random.Random(11)

    def make() -> Request:
        return Request("/v1/match", rng.choice(jpegs), "image/jpeg")

    return open_loop(port, token, make, rate, seconds)


def row(name: str, outcome: Outcome, rss_quiet: float, rss_peak: float, **extra: object) -> dict[str, object]:
    total = sum(outcome.statuses.values()) + outcome.errors
    failed = total - outcome.statuses.get(200, 0)
    return {
        "scenario": name,
        "normal_requests": total,
        "normal_failed": failed,
        "normal_answered_pct": round(100 * (total - failed) / total, 1) if total else float("nan"),
        "p50_ms": percentile(outcome.latencies_ms, 50),
        "p99_ms": percentile(outcome.latencies_ms, 99),
        "statuses": dict(sorted(outcome.statuses.items())),
        "rss_quiet_mib": rss_quiet,
        "rss_peak_mib": rss_peak,
        **extra,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hashes", type=int, default=1_000_000)
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "hashsvc-bench-hostile")
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=10.0, help="normal ~1 MP uploads per second")
    parser.add_argument("--port", type=int, default=18090)
    parser.add_argument("--slow", default="64,256,1024", help="slow-header socket counts")
    parser.add_argument("--only", help="run only the scenarios whose name contains this text")
    parser.add_argument("--json", type=Path, default=ROOT / "results" / "bench_hostile.json")
    args = parser.parse_args()
    require_images(args.corpus)
    require_free_port(args.port)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))

    args.data_dir.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{args.data_dir / 'bench.db'}"
    prepare_store(url, args.hashes)
    stored = _probe_target(url)
    tokens = _keys(url)
    sources = list_images(args.corpus)
    jpegs = [to_jpeg(mosaic(sources, 1, seed)) for seed in range(8)]
    heavy = heavy_images(args.data_dir / "heavy")

    server = Server(url, args.data_dir, args.port, [])
    rows: list[dict[str, object]] = []
    try:
        ready_s = server.wait_ready(900)
        print(f"ready after {ready_s:.1f} s", file=sys.stderr)
        normal_traffic(args.port, tokens["normal"], jpegs, args.rate, 3)  # warm both workers
        rss_quiet = server.rss_mib()

        def run(name: str, attack: Callable[[], object] | None) -> None:
            if args.only and args.only not in name:
                return
            print(f"{name}...", file=sys.stderr)
            with RssPeak(server) as rss:
                if attack is None:
                    outcome, extra = normal_traffic(args.port, tokens["normal"], jpegs, args.rate, args.seconds), {}
                else:
                    with attack() as running:  # type: ignore[attr-defined]
                        outcome = normal_traffic(args.port, tokens["normal"], jpegs, args.rate, args.seconds)
                    extra = _attack_summary(running)
            rows.append(row(name, outcome, rss_quiet, rss.peak, **extra))
            print(json.dumps(rows[-1]), file=sys.stderr)

        run("quiet", None)
        for count in (int(c) for c in args.slow.split(",") if c):
            run(f"slow headers x{count}", lambda count=count: SlowHeaders(args.port, count))
        run("heavy images, 2 clients", lambda: HeavyClients(args.port, tokens["heavy"], heavy))
        run("probing key", lambda: Prober(args.port, tokens["probe"], stored))
        run("quiet again", None)
    finally:
        server.stop()

    print("| scenario | normal p50 ms | normal p99 ms | failed / sent | server RSS peak MiB (quiet) | attack |")
    print("|---|---:|---:|---:|---:|---|")
    for r in rows:
        print(
            f"| {r['scenario']} | {r['p50_ms']} | {r['p99_ms']} | {r['normal_failed']} / {r['normal_requests']}"
            f" | {r['rss_peak_mib']} ({r['rss_quiet_mib']}) | {r.get('attack', '')} |"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"hashes": args.hashes, "rate": args.rate, "rows": rows}, indent=2))


def _attack_summary(running: object) -> dict[str, object]:
    if isinstance(running, SlowHeaders):
        return {"attack": f"{running.count} sockets held, {running.reconnects} cut off by the server and reopened"}
    if isinstance(running, HeavyClients):
        answers = running.answers
        codes: dict[str, int] = {}
        for _, status, code, _seconds in answers:
            codes[f"{status} {code}"] = codes.get(f"{status} {code}", 0) + 1
        slowest = max((seconds for *_, seconds in answers), default=float("nan"))
        per_mode = {name: sorted({f"{s} {c}" for n, s, c, _ in answers if n == name}) for name, _ in running.images}
        return {
            "attack": f"{len(answers)} heavy uploads answered {codes}, slowest {slowest:.2f} s",
            "heavy_answers": codes,
            "heavy_slowest_s": round(slowest, 2),
            "heavy_per_mode": per_mode,
        }
    if isinstance(running, Prober):
        return {
            "attack": f"{running.rounds} rounds; best reconstruction {running.best_error} bits from the stored PDQ"
            f" (the first query: {running.start_distance}); statuses {running.statuses}",
            "probe_reconstruction_error_bits": running.best_error,
        }
    return {}


def _probe_target(url: str) -> bytes:
    """A bank with one known PDQ that the prober starts 10 bits away from."""
    code = bytes(np.random.default_rng(5).integers(0, 256, 32, dtype=np.uint8))
    with Store(url) as store:
        if not any(bank.name == "probe-target" for bank in store.list_banks()):
            store.create_bank("probe-target", category="csam", actor="bench")
            store.add_items("probe-target", [NewItem([("pdq", code)], external_ref="TARGET")], actor="bench")
    return code


def _keys(url: str) -> dict[str, str]:
    stamp = int(time.time())
    with Store(url) as store:
        return {
            role: store.create_api_key(f"{role}-{stamp}", ["match"], actor="bench")[1]
            for role in ("normal", "heavy", "probe")
        }


if __name__ == "__main__":
    main()
