"""The robustness benchmark's command line, shared by `scripts/bench_robustness.py` and `hashsvc bench robustness`.

hashsvc bench robustness ../shared/corpus
.venv/bin/python scripts/bench_robustness.py ../shared/corpus
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hashsvc.bench.robustness import RunOptions, Thresholds, run


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Example:\n    hashsvc bench robustness ../shared/corpus --limit 50 --results results/robustness",
    )
    parser.add_argument("folder", type=Path, help="folder of original images (searched recursively)")
    parser.add_argument("--cache", type=Path, default=Path("bench-cache"), help="where edited files are kept")
    parser.add_argument("--results", type=Path, default=Path("results/robustness"), help="output folder")
    parser.add_argument("--transforms", nargs="*", help="only these transforms (default: the whole suite)")
    parser.add_argument("--processes", type=int, default=2, help="worker processes (default 2: a 2-core box)")
    parser.add_argument(
        "--scheduler",
        help="hash on the Dask cluster at this address (as `hashsvc scan --scheduler`); the folder and the cache "
        "must be at the same paths on every worker",
    )
    parser.add_argument(
        "--every", type=int, default=1, help="edit every k-th image (all are hashed as originals for false positives)"
    )
    parser.add_argument("--limit", type=int, help="use at most this many images")
    defaults = Thresholds()
    for name in ("pdq", "phash", "dhash", "naive_pdq", "naive_phash"):
        parser.add_argument(f"--{name.replace('_', '-')}-threshold", type=int, default=getattr(defaults, name))
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument(
        "--reuse-hashes",
        action="store_true",
        help="re-evaluate the hashes saved in --results by the previous run (no re-hashing)",
    )
    parser.add_argument("--no-negatives", action="store_true", help="skip the hard negatives")
    parser.add_argument("--quick-negatives", action="store_true", help="a few hard negatives per family only")
    parser.add_argument(
        "--extra-evidence",
        metavar="MODULE:FUNCTION",
        help="a callable (original path, query path) -> [policy.Evidence] whose evidence the full policy adds "
        "(e.g. a local-feature stage)",
    )
    parser.add_argument("--calibrate", action="store_true", help="sweep the policy's constants on the tune half")
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        parser.error(f"{args.folder} is not a folder")
    thresholds = Thresholds(**{n: getattr(args, f"{n}_threshold") for n in defaults.__dict__})
    document = run(
        RunOptions(
            args.folder,
            args.cache,
            args.results,
            args.transforms,
            args.processes,
            args.every,
            args.limit,
            thresholds,
            not args.no_plots,
            args.reuse_hashes,
            negatives=not args.no_negatives,
            quick_negatives=args.quick_negatives,
            extra_evidence=_load_callable(args.extra_evidence) if args.extra_evidence else None,
            calibrate=args.calibrate,
            scheduler=args.scheduler,
        )
    )
    print((args.results / "robustness.md").read_text())
    print(
        f"hashing {document['seconds_hashing']} s, total {document['seconds_total']} s; "
        f"written to {args.results}/ (robustness.json, robustness.md, *.png)"
    )
    return 0


def _load_callable(spec: str) -> Callable[..., Any]:
    """`package.module:function` -> the function."""
    module, _, name = spec.partition(":")
    if not module or not name:
        raise SystemExit(f"--extra-evidence wants MODULE:FUNCTION, got {spec!r}")
    return getattr(importlib.import_module(module), name)
