"""How long `hashsvc --help` takes from a cold interpreter, this checkout against another one, alternating.

    .venv/bin/python scripts/bench_cli_start.py --baseline ../base-checkout [--rounds 7]

Each round starts a fresh Python for each checkout (imports from that checkout by PYTHONPATH) and runs the
command line's `--help`; the medians and their ratio are printed. Run both in one sitting: the machine is shared.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROBE = "import sys; sys.argv = ['hashsvc', '--help']; from hashsvc.cli import main; main()"


def once(checkout: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=checkout,
        env={"PYTHONPATH": str(checkout), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        check=True,
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, required=True, help="another checkout of hashsvc")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    if not (args.baseline / "hashsvc" / "cli").is_dir():
        raise SystemExit(f"error: {args.baseline} is not a hashsvc checkout (no hashsvc/cli)")
    times: dict[str, list[float]] = {"baseline": [], "this": []}
    for _ in range(args.rounds):
        times["baseline"].append(once(args.baseline))
        times["this"].append(once(ROOT))
    for name, values in times.items():
        print(f"{name:<9} median {statistics.median(values):.2f} s  {[round(v, 2) for v in values]}")
    print(f"ratio this/baseline {statistics.median(times['this']) / statistics.median(times['baseline']):.2f}")


if __name__ == "__main__":
    main()
