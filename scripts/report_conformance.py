#!/usr/bin/env python
"""Print every PDQ conformance distance that tests/test_pdq_conformance.py checks.

.venv/bin/python scripts/report_conformance.py [--data ../shared/pdq-conformance]
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from hashsvc.hashes import hamming, parse_hex
from hashsvc.hashes.compute import DIHEDRAL_VARIANTS, PdqResult, pdq
from hashsvc.media import PixelRules
from hashsvc.service.hashing import hash_image


def rows(path: Path) -> list[list[str]]:
    return list(csv.reader(line for line in path.read_text().splitlines() if line.strip() and line[0] != "#"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/pdq-conformance")
    data = parser.parse_args().data
    if not (data / "expected").is_dir():
        raise SystemExit(
            f"error: {data} is not Meta's PDQ test data (no expected/ folder); it lives in ../shared/pdq-conformance, "
            "which is not in the repository: pass --data with its location"
        )

    def ours(path: Path, rules: PixelRules = PixelRules.HASHSVC, dihedral: bool = False) -> PdqResult:
        return hash_image(path.read_bytes(), rules=rules, dihedral=dihedral).pdq

    print("python-threatexchange test_pdq_hasher (file: bits with threatexchange rules / with hashsvc rules)")
    for name, _mode, expected, quality in rows(data / "expected/pytx-test_pdq_hasher_expected.csv"):
        path = data / "pytx-resources" / name
        tx, hs = ours(path, PixelRules.THREATEXCHANGE), ours(path)
        print(
            f"  {name}: {hamming(tx.code, parse_hex('pdq', expected))} (q {tx.quality} vs {quality})"
            f" / {hamming(hs.code, parse_hex('pdq', expected))} (q {hs.quality})"
        )

    examples = [
        line.split()
        for line in (data / "expected/pytx-PdqSignal_get_examples.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    exact = [
        hamming(hash_image((data / "images" / rel).read_bytes(), work_size=None).pdq.code, parse_hex("pdq", e))
        for e, rel in examples
    ]
    fast = [hamming(ours(data / "images" / rel).code, parse_hex("pdq", e)) for e, rel in examples]
    print(f"PdqSignal examples ({len(examples)}): full resolution {exact}; default fast path {fast}")

    cpp = []
    for expected, relative in rows(data / "expected/cpp-bin-README_pdq-photo-hasher_dih.csv"):
        path = data / "images/reg-test-input" / relative.removeprefix("reg_test/input/")
        cpp.append(hamming(ours(path).code, parse_hex("pdq", expected)))
    print(f"C++ reference, dih/ files: {cpp}")

    folder = data / "images/reg-test-input/dih"
    variants = ours(folder / "bridge-1-original.jpg", dihedral=True).variants or {}
    files = sorted(folder.glob("bridge-*.jpg"))
    dih = [hamming(ours(p).code, variants[v]) for v, p in zip(DIHEDRAL_VARIANTS, files, strict=True)]
    print(f"dih/ files vs dihedral variants of the original: {dict(zip(DIHEDRAL_VARIANTS, dih, strict=True))}")

    exif = {}
    for path in sorted((data / "images/reg-test-input/exif-rotn").glob("*.jpg")):
        with Image.open(path) as stored:
            upright = np.asarray(ImageOps.exif_transpose(stored).convert("RGB"))
        exif[path.name] = hamming(ours(path).code, pdq(upright).code)
    print(f"exif-rotn vs full-resolution upright rendering: {exif}")

    modes = data / "images/misc-images/modes"
    reference = ours(modes / "RGB.jpg").code
    print(
        "modes/ vs RGB.jpg:",
        {p.name: hamming(ours(p).code, reference) for p in sorted(modes.iterdir()) if p.suffix != ".md"},
    )


if __name__ == "__main__":
    main()
