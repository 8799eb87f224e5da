#!/usr/bin/env python
"""Write the issue-12 robustness figures into docs/robustness.md from the benchmarks' own output.

Nothing here is typed by hand: each block between `<!-- issue12:NAME -->` and `<!-- /issue12:NAME -->` is
replaced by tables generated from the JSON/markdown the benchmarks wrote:

    results/robustness/robustness.{json,md}, calibration.md      scripts/bench_robustness.py ../shared/corpus ...
    results/hard-negatives-pairs/robustness.json, calibration.md scripts/bench_robustness.py <hard negatives> ...
    results/bench_dihedral_short.json                             scripts/bench_dihedral_short.py ...

    .venv/bin/python scripts/update_robustness_docs.py
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

FULL = "ours + all + local features"  # the service's full policy (hashsvc.bench.robustness.FULL)
HASH_SIDE = "ours + all"  # its hash stage alone
ROOT = Path(__file__).resolve().parent.parent


def pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def methods(document: dict, half: str) -> dict[str, dict]:
    return {m["name"]: m for m in document["methods"][half]}


def summary(document: dict) -> str:
    lines = ["| half | originals / edits / hard negatives | recall (block) | recall (block or review) "
             "| hash stage alone (block) | PDQ naive (HMA) | recall @ 99.99% precision, PDQ every view (threshold) "
             "| FP pairs of originals (block / any) | FP (edit, other original) (block / any) "
             "| hard negatives (block / any) |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for half in ("held-out", "tune"):
        if half not in document["methods"]:
            continue
        by = methods(document, half)
        ours, info = by[FULL], document["halves"][half]
        rap = by["PDQ ours + all"]
        lines.append(
            f"| {half} | {info['originals']} / {info['queries']} / {info['hard_negatives']} | {pct(ours['overall'])} "
            f"| {pct(ours['overall_review'])} | {pct(by[HASH_SIDE]['overall'])} "
            f"| {pct(by['PDQ naive (HMA)']['overall'])} "
            f"| {pct(rap['recall_at_precision'])} ({rap['threshold_at_precision']}) "
            f"| {ours['fp_pairs']} / {ours['fp_pairs_review']} of {ours['pairs']:,} "
            f"| {ours['fp_cross']} / {ours['fp_cross_review']} of {ours['cross_pairs']:,} "
            f"| {ours['fp_negatives']} / {ours['fp_negatives_review']} of {ours['negatives']} |")
    return "\n".join(lines) + "\n"


def family_rows(document: dict, families: tuple[str, ...]) -> str:
    lines = ["| edit | held-out: block (block or review) | tune: block (block or review) "
             "| held-out, hash stage alone | PDQ naive, held-out |", "|---|---:|---:|---:|---:|"]
    held, tune = methods(document, "held-out"), methods(document, "tune")
    for name, value in held[FULL]["recall"].items():
        if not any(f in name for f in families):
            continue
        lines.append(f"| {name} | {pct(value)} ({pct(held[FULL]['recall_review'][name])}) | "
                     f"{pct(tune[FULL]['recall'][name])} ({pct(tune[FULL]['recall_review'][name])}) | "
                     f"{pct(held[HASH_SIDE]['recall'][name])} | {pct(held['PDQ naive (HMA)']['recall'][name])} |")
    return "\n".join(lines) + "\n"


def targets(document: dict) -> str:
    lines = ["| target (held-out half, full policy) | measured | met |", "|---|---:|:---:|"]
    for row in document["halves"]["held-out"]["targets"]:
        value = row["value"]
        shown = f"{pct(value)}%" if isinstance(value, float) else str(value)
        lines.append(f"| {row['target']} | {shown} | {'yes' if row['met'] else '**no**'} |")
    return "\n".join(lines) + "\n"


def negatives(document: dict) -> str:
    lines = ["| family | hard negatives | blocked | sent to review |", "|---|---:|---:|---:|"]
    totals: dict[str, list[int]] = {}
    for half in document["methods"]:
        for family, row in (methods(document, half)[FULL]["negatives_by_family"] or {}).items():
            total = totals.setdefault(family, [0, 0, 0])
            total[0] += row["images"]
            total[1] += row["block"]
            total[2] += row["review"] - row["block"]
    for family, (images, block, review) in sorted(totals.items()):
        lines.append(f"| {family} | {images} | {block} | {review} |")
    return "\n".join(lines) + "\n"


def negative_pairs(document: dict) -> str:
    lines = ["| half | hard negatives | ordered pairs looked up | blocked | blocked or sent to review |",
             "|---|---:|---:|---:|---:|"]
    for half in document["methods"]:
        ours = methods(document, half)[FULL]
        lines.append(f"| {half} | {document['halves'][half]['originals']} | {ours['pairs']:,} unordered "
                     f"| {ours['fp_pairs']} | {ours['fp_pairs_review']} |")
    return "\n".join(lines) + "\n"


def cost(report: dict) -> str:
    previous = all("P_median_ms" in row for row in report["rows"].values())
    lines = ["| input | images x runs per arm | A: with turned pHash/dHash (median ms) | B: upright only (median ms) "
             "| added (ms) | A/B |" + (" P: turned by 8 resizes, the previous build (median ms) | A/P | P/B |"
                                       if previous else ""),
             "|---|---:|---:|---:|---:|---:|" + ("---:|---:|---:|" if previous else "")]
    for name, row in report["rows"].items():
        lines.append(f"| {name} | {row['images']} x {row['runs_per_arm'] // row['images']} | {row['A_median_ms']} | "
                     f"{row['B_median_ms']} | {row['added_ms']} | {row['ratio']} |"
                     + (f" {row['P_median_ms']} | {row['A_over_P']} | {row['P_over_B']} |" if previous else ""))
    before = ", ".join(f"{x:.1f}" for x in report["load_before"])
    after = ", ".join(f"{x:.1f}" for x in report["load_after"])
    return "\n".join(lines) + f"\n\nLoad average (1, 5, 15 min) before: {before}; after: {after}.\n"


def splice(path: Path, blocks: dict[str, str]) -> None:
    text = path.read_text()
    for name, body in blocks.items():
        pattern = re.compile(rf"(<!-- issue12:{name} -->\n).*?(<!-- /issue12:{name} -->)", re.S)
        if not pattern.search(text):
            raise SystemExit(f"{path}: no block issue12:{name}")
        text = pattern.sub(lambda m, body=body: m.group(1) + body + m.group(2), text)
    path.write_text(text)


def main() -> int:
    results = ROOT / "results"
    corpus = json.loads((results / "robustness" / "robustness.json").read_text())
    blocks = {
        "summary": summary(corpus),
        "targets": targets(corpus),
        "chains": family_rows(corpus, ("+resize_50+jpeg_q60", "crop_random", "crop_side")),
        "negatives": negatives(corpus),
    }
    full = dict(blocks)
    full["tables"] = (results / "robustness" / "robustness.md").read_text()
    full["calibration"] = (results / "robustness" / "calibration.md").read_text()
    pairs = results / "hard-negatives-pairs" / "robustness.json"
    if pairs.exists():
        full["negative_pairs"] = negative_pairs(json.loads(pairs.read_text()))
        full["negative_pairs_calibration"] = (results / "hard-negatives-pairs" / "calibration.md").read_text()
    short = results / "bench_dihedral_short.json"
    if short.exists():
        full["cost"] = blocks["cost"] = cost(json.loads(short.read_text()))
    splice(ROOT / "docs" / "robustness.md", full)
    return 0


if __name__ == "__main__":
    sys.exit(main())
