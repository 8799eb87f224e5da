"""Import benchmark: a generated N-line PDQ CSV through `hashsvc import`, in a fresh process, timed, with its
peak RSS; then a re-import (must add nothing) and a check that the imported hashes match.

    .venv/bin/python scripts/bench_import.py --lines 1000000 --json results/bench_import.json

The store is a fresh embedded SQLite file in a temporary folder unless --database-url names another (which must
be empty: the script creates the schema and the bank).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HASHSVC = str(Path(sys.executable).with_name("hashsvc"))
BANK = "bench-import"


def generate(path: Path, lines: int, seed: int = 7) -> None:
    """`algorithm,hash,reference` rows of random PDQ hashes, written in chunks (the generator stays small too)."""
    rng = np.random.default_rng(seed)
    with path.open("w") as out:
        out.write("algorithm,hash,reference,category\n")
        for start in range(0, lines, 100_000):
            count = min(100_000, lines - start)
            codes = rng.integers(0, 256, (count, 32), dtype=np.uint8)
            out.writelines(f"pdq,{codes[i].tobytes().hex()},partner-{start + i},A1\n" for i in range(count))


def run(args: list[str], env: dict[str, str]) -> tuple[float, float, int, str]:
    """Run one hashsvc command in a fresh process: (wall s, CPU s, peak RSS in MB, stdout).

    CPU time (user + system) is reported next to wall time because the benchmark machines are shared: under
    load, wall time measures the neighbours as much as the import.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([HASHSVC, *args], env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"hashsvc {' '.join(args)} failed ({done.returncode}): {done.stderr[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    # ru_maxrss of children is the largest child so far (KiB on Linux); the import is the largest process run
    return elapsed, cpu, after.ru_maxrss // 1024, done.stdout


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def check_matchable(database_url: str, data_dir: Path, csv_path: Path, samples: int) -> dict[str, Any]:
    """Load the index as a serving process would, and match sampled imported hashes with 8 bits flipped."""
    from hashsvc.config import load_settings
    from hashsvc.service.service import Service

    settings = load_settings({"database_url": database_url, "data_dir": str(data_dir)}, environ={})
    service = Service(settings)
    try:
        started = time.perf_counter()
        service.live.load()
        load_s = time.perf_counter() - started
        rng = np.random.default_rng(1)
        wanted = set(rng.choice(service.live.sizes()["pdq"], size=samples, replace=False).tolist())
        hashes = []
        with csv_path.open() as handle:
            next(handle)
            for number, line in enumerate(handle):
                if number in wanted:
                    hashes.append(line.split(",")[1])
        matched = 0
        for value in hashes:
            code = bytearray(bytes.fromhex(value))
            for bit in rng.choice(256, size=8, replace=False):
                code[bit // 8] ^= 0x80 >> (bit % 8)
            result = service.match_hashes({"pdq": code.hex()})
            matched += any(m["bank"] == BANK and m["distance"] == 8 for m in result["matches"])
        return {"index_load_s": round(load_s, 2), "sampled": len(hashes), "matched": matched}
    finally:
        service.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--database-url", help="default: a fresh SQLite file in a temporary folder")
    parser.add_argument("--samples", type=int, default=1000, help="hashes to match after the import")
    parser.add_argument("--json", type=Path, help="write the results here too")
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        folder = Path(tmp)
        data_dir = folder / "data"
        data_dir.mkdir()
        database_url = options.database_url or f"sqlite:///{data_dir}/hashsvc.db"
        env = {**os.environ, "HASHSVC_DATA_DIR": str(data_dir), "HASHSVC_DATABASE_URL": database_url}
        csv_path = folder / "pdq.csv"
        started = time.perf_counter()
        generate(csv_path, options.lines)
        print(
            f"generated {options.lines} lines ({csv_path.stat().st_size / 1e6:.0f} MB) in "
            f"{time.perf_counter() - started:.1f} s",
            flush=True,
        )
        run(["migrate"], env)
        run(["bank", "create", BANK, "--category", "csam"], env)
        load_before = load_average()
        command = ["import", "--json", "--bank", BANK, "--format", "csv", str(csv_path)]
        import_s, import_cpu, import_rss, out = run(command, env)
        first = json.loads(out)
        print(
            f"import: {import_s:.1f} s wall, {import_cpu:.1f} s CPU, peak RSS {import_rss} MB, "
            f"{first['added']} added (load average {load_before} -> {load_average()})",
            flush=True,
        )
        again_s, again_cpu, _, out = run(command, env)
        second = json.loads(out)
        print(
            f"re-import: {again_s:.1f} s wall, {again_cpu:.1f} s CPU, {second['added']} added, "
            f"{second['present']} present",
            flush=True,
        )
        matchable = check_matchable(database_url, data_dir, csv_path, options.samples)
        print(
            f"index load {matchable['index_load_s']} s; matched {matchable['matched']}/{matchable['sampled']} "
            "sampled hashes (8 bits flipped)",
            flush=True,
        )

    result = {
        "command": "python scripts/bench_import.py " + " ".join(sys.argv[1:]),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "backend": database_url.split(":", 1)[0],
        "lines": options.lines,
        "load_average_at_start": load_before,
        "import_s": round(import_s, 1),
        "import_cpu_s": round(import_cpu, 1),
        "import_lines_per_s": round(options.lines / import_s),
        "import_peak_rss_mb": import_rss,
        "added": first["added"],
        "bad": first["bad"],
        "reimport_s": round(again_s, 1),
        "reimport_cpu_s": round(again_cpu, 1),
        "reimport_added": second["added"],
        "reimport_present": second["present"],
        **matchable,
    }
    print(json.dumps(result, indent=2))
    if options.json:
        options.json.parent.mkdir(parents=True, exist_ok=True)
        options.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
