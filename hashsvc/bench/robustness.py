"""Robustness benchmark: how often does an edited re-upload still match its original, and at what false-positive cost.

Three stages, each a plain function so the CLI, the script and the tests share them:

1. `collect`: for every original, hash it (as stored: itself plus the index-time variants of
   `hashsvc.hashes.augment`) and hash each edit of `hashsvc.bench.transforms` (as queried: the query and its
   trimmed-borders version, 8 dihedral PDQ variants each), plus the two baselines (naive HMA PDQ, plain pHash).
   Edited files are written once to a cache folder and reused. Runs on `processes` worker processes.
2. `evaluate`: distance tables (query x original) per algorithm; recall per transform at the configured
   thresholds; the service's decision through `hashsvc.service.policy.decide`; false positives over every pair
   of distinct originals (minus known near-duplicates) and over every (edit, other original) pair; a threshold
   sweep with recall at 99.99% precision; a tail fit to extrapolate the false-positive rate to 10M hashes.
3. `write_report`: markdown table, JSON and PNG plots.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import pickle
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from hashsvc.bench.naive import naive_hashes
from hashsvc.bench.samples import list_images
from hashsvc.bench.transforms import Transform, select
from hashsvc.hashes import ALGORITHMS, compute
from hashsvc.hashes.augment import ANCHORS, DEFAULT_CROPS, QUERY_LABELS, crop_label
from hashsvc.service.hashing import ImageHashes, hash_image
from hashsvc.service.policy import Evidence, corroborated_limit, decide

# Stored hashes per original: the image itself, then its index-time variants (missing ones repeat "original",
# which leaves every minimum unchanged). The tables keep the minimum over each group of labels, which is all the
# ablation needs and keeps them small. Query probes: the query as uploaded, then its query-time views.
LABELS: tuple[str, ...] = (
    "original",
    "trim",
    "strict",
    *(crop_label(keep, anchor) for keep in DEFAULT_CROPS for anchor in ANCHORS),
    "square",
)
LABEL_GROUPS: dict[str, tuple[str, ...]] = {
    "original": ("original",),
    "trim": ("trim", "strict"),
    "centre crops": (*(crop_label(keep, "centre") for keep in DEFAULT_CROPS), "square"),
    "corner crops": tuple(crop_label(keep, a) for keep in DEFAULT_CROPS for a in ANCHORS if a != "centre"),
}
GROUPS: tuple[str, ...] = tuple(LABEL_GROUPS)
PROBES: tuple[str, ...] = ("raw", *QUERY_LABELS)
EXT = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}

# Known near-duplicates in ../shared/corpus (its README): the same photo twice, consecutive video frames, stereo
# pairs, a tampered copy. A match between them is not a false positive, so such pairs are left out of the
# negatives. Paths relative to the corpus root; pairs whose files are absent are ignored.
CORPUS_NEAR_DUPLICATES: tuple[tuple[str, str], ...] = (
    ("gcompris/categorization__monuments__brandenburgGate.webp",
     "gcompris/explore_monuments__germany__brandenburgGate.webp"),
    ("gcompris/categorization__monuments__colosseum.webp", "gcompris/explore_monuments__wonders__colosseum.webp"),
    ("gcompris/categorization__monuments__greatPyramid.webp",
     "gcompris/explore_monuments__egypt__greatPyramidOfGiza.webp"),
    ("opencv-samples/rubberwhale1.png", "opencv-samples/rubberwhale2.png"),
    ("opencv-samples/basketball1.png", "opencv-samples/basketball2.png"),
    ("opencv-samples/aloeL.jpg", "opencv-samples/aloeR.jpg"),
    ("opencv-samples/left.jpg", "opencv-samples/right.jpg"),
    *((f"opencv-samples/left{i:02d}.jpg", f"opencv-samples/right{i:02d}.jpg") for i in range(1, 15)),
    ("opencv-samples/graf1.png", "opencv-samples/graf3.png"),
    ("opencv-samples/aero1.jpg", "opencv-samples/aero3.jpg"),
    ("opencv-samples/box.png", "opencv-samples/box_in_scene.png"),
    ("opencv-samples/ela_original.jpg", "opencv-samples/ela_modified.jpg"),
    ("pypi-bundled/skimage__motorcycle_left.png", "pypi-bundled/skimage__motorcycle_right.png"),
)

TARGET_PRECISION = 0.9999  # Thorn's operating point


# ----------------------------------------------------------------------------------------------------- collect


@dataclass
class HashSet:
    """Hashes of one or more images, as uint64 words so distances are XOR + popcount."""

    pdq: np.ndarray  # (..., 8, 4) dihedral PDQ for probes, (..., 4) for stored
    quality: np.ndarray  # (...,)
    phash: np.ndarray  # (...,) uint64
    dhash: np.ndarray  # (...,) uint64


@dataclass
class OriginalRecord:
    name: str
    stored: HashSet  # over LABELS
    probes: HashSet  # the original used as a query (for pairs of originals), over PROBES
    md5: bytes
    naive_pdq: np.ndarray  # (4,)
    naive_phash: np.ndarray  # () uint64
    queries: dict[str, QueryRecord] = field(default_factory=dict)


@dataclass
class QueryRecord:
    probes: HashSet  # over PROBES
    views: tuple[str, ...]  # the query-time views this query had (a subset of QUERY_LABELS)
    md5: bytes
    naive_pdq: np.ndarray
    naive_phash: np.ndarray


def _words(code: bytes) -> np.ndarray:
    return np.frombuffer(code, dtype=">u8").astype(np.uint64)


def _pdq_words(result: compute.PdqResult) -> np.ndarray:
    """(8, 4): the dihedral variants when computed, else the one code repeated (which leaves minima unchanged)."""
    if result.variants is None:
        return np.repeat(_words(result.code)[None], len(compute.DIHEDRAL_VARIANTS), axis=0)
    return np.stack([_words(result.variants[name]) for name in compute.DIHEDRAL_VARIANTS])


def _hash_set(rows: Sequence[tuple[compute.PdqResult, bytes, bytes]], dihedral: bool) -> HashSet:
    return HashSet(
        np.stack([_pdq_words(pdq) if dihedral else _words(pdq.code) for pdq, _, _ in rows]),
        np.array([pdq.quality for pdq, _, _ in rows], dtype=np.int16),
        np.array([_words(phash)[0] for _, phash, _ in rows], dtype=np.uint64),
        np.array([_words(dhash)[0] for _, _, dhash in rows], dtype=np.uint64),
    )


def _view_rows(hashes: ImageHashes) -> dict[str, tuple[compute.PdqResult, bytes, bytes]]:
    """Label -> (PDQ, pHash, dHash); a view stored without 64-bit hashes (a crop) takes the image's own, which
    leaves every minimum over labels as the service sees it."""
    return {"original": (hashes.pdq, hashes.phash, hashes.dhash)} | {
        extra.label: (extra.pdq, extra.phash or hashes.phash, extra.dhash or hashes.dhash) for extra in hashes.extras
    }


def probe_hashes(data: bytes) -> tuple[HashSet, tuple[str, ...]]:
    """A query exactly as the service hashes it (`hash_image` with the query views), over PROBES; and the
    labels of the views the query actually had."""
    hashes = hash_image(data, dihedral=True, extras="query")
    views = _view_rows(hashes)
    rows = [views.get(p, views["original"]) for p in ("original", *PROBES[1:])]
    return _hash_set(rows, dihedral=True), tuple(extra.label for extra in hashes.extras)


def stored_hashes(data: bytes) -> HashSet:
    """An item added from an image, exactly as the service stores it (`hash_image` with the index views)."""
    views = _view_rows(hash_image(data, extras="index"))
    return _hash_set([views.get(label, views["original"]) for label in LABELS], dihedral=False)


def _cached_edit(transform: Transform, source: Image.Image, key: str, cache_dir: Path) -> bytes:
    path = cache_dir / transform.name / f"{key.replace('/', '__')}.{EXT[transform.fmt]}"
    if path.exists():
        return path.read_bytes()
    data = transform.encode(source, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)  # atomic: a concurrent or interrupted run never leaves half a file in the cache
    return data


def _collect_one(job: tuple[Path, str, Sequence[str], Path]) -> OriginalRecord:
    path, key, names, cache_dir = job
    # By name: transforms hold lambdas, which do not pickle to worker processes. No names: original only
    # (select() would read an empty list as "the whole suite").
    transforms = select(names) if names else []
    data = path.read_bytes()
    with Image.open(path) as opened:
        source = opened.convert("RGB")
    naive = naive_hashes(data)
    record = OriginalRecord(
        key,
        stored_hashes(data),
        probe_hashes(data)[0],
        compute.md5(data),
        _words(naive.pdq),
        _words(naive.phash)[0],
    )
    for transform in transforms:
        edited = _cached_edit(transform, source, key, cache_dir)
        probes, views = probe_hashes(edited)
        naive = naive_hashes(edited)
        record.queries[transform.name] = QueryRecord(
            probes, views, compute.md5(edited), _words(naive.pdq), _words(naive.phash)[0]
        )
    return record


def collect(
    images: Sequence[Path], root: Path, transforms: Sequence[Transform], cache_dir: Path, processes: int = 2,
    edit_every: int = 1,
) -> list[OriginalRecord]:
    """Hash every original, and every edit of every `edit_every`-th one; order follows `images`.

    All originals are always hashed: false positives are counted over all their pairs, which is cheap; the
    edits are what cost time, so quick runs edit a systematic sample of the originals."""
    names = [tr.name for tr in transforms]
    jobs = [(p, p.relative_to(root).as_posix(), names if i % edit_every == 0 else [], cache_dir)
            for i, p in enumerate(images)]
    if processes <= 1:
        return [_collect_one(job) for job in jobs]
    # spawn, not fork: the parent may hold threads (numba, BLAS) that fork would copy in a locked state.
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        return list(pool.imap(_collect_one, jobs, chunksize=1))


# ------------------------------------------------------------------------------------------------ distances


def hamming_words(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamming distance between codes stored as uint64 words in the last axis (broadcasting)."""
    return np.bitwise_count(np.bitwise_xor(a, b)).sum(axis=-1, dtype=np.uint16)


@dataclass
class Tables:
    """Distances of every query (and every original used as a query) to every original's stored hashes."""

    names: list[str]  # originals
    transforms: list[str]
    own: np.ndarray  # (Q,) index of the query's original
    transform_of: np.ndarray  # (Q,) index into transforms
    pdq: np.ndarray  # (Q, P, N, G) min over the 8 dihedral variants of the probe and the labels of each group
    phash: np.ndarray  # (Q, P, N, G)
    dhash: np.ndarray  # (Q, P, N, G)
    quality: np.ndarray  # (Q, P)
    md5_equal: np.ndarray  # (Q, N) bool
    views: np.ndarray  # (Q, len(QUERY_LABELS)) bool: which query-time views each query had
    naive_pdq: np.ndarray  # (Q, N)
    naive_phash: np.ndarray  # (Q, N)
    # the same for the originals as queries: (N, P, N, G) etc.
    o_pdq: np.ndarray
    o_phash: np.ndarray
    o_dhash: np.ndarray
    o_quality: np.ndarray
    o_md5_equal: np.ndarray
    o_naive_pdq: np.ndarray
    o_naive_phash: np.ndarray
    o_plain_pdq: np.ndarray  # (N, N) one comparison: original's PDQ vs original's PDQ (no dihedral), for tail fits


def _probe_tables(
    probes: HashSet, stored: HashSet, chunk: int = 32
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(queries, PROBES, originals, GROUPS) distances: min over the probe's 8 dihedral variants and over the
    stored labels of each group."""
    count = probes.pdq.shape[0]
    n = stored.pdq.shape[0]
    groups = [[LABELS.index(label) for label in LABEL_GROUPS[g]] for g in GROUPS]

    def grouped(dist: np.ndarray) -> np.ndarray:  # (..., L) -> (..., G)
        return np.stack([dist[..., g].min(axis=-1) for g in groups], axis=-1)

    pdq = np.empty((count, len(PROBES), n, len(GROUPS)), dtype=np.uint16)
    phash = np.empty((count, len(PROBES), n, len(GROUPS)), dtype=np.uint8)
    dhash = np.empty((count, len(PROBES), n, len(GROUPS)), dtype=np.uint8)
    for start in range(0, count, chunk):
        part = probes.pdq[start : start + chunk]  # (c, P, 8, 4)
        dist = hamming_words(part[:, :, :, None, None, :], stored.pdq[None, None, None])  # (c, P, 8, N, L)
        pdq[start : start + chunk] = grouped(dist.min(axis=2))
        for table, words, stored_words in ((phash, probes.phash, stored.phash), (dhash, probes.dhash, stored.dhash)):
            part64 = words[start : start + chunk]  # (c, P)
            table[start : start + chunk] = grouped(hamming_words(part64[:, :, None, None, None],
                                                                 stored_words[None, None, :, :, None]))
    return pdq, phash, dhash


def _stack(sets: Iterable[HashSet]) -> HashSet:
    sets = list(sets)
    return HashSet(*(np.stack([getattr(s, f) for s in sets]) for f in ("pdq", "quality", "phash", "dhash")))


def build_tables(records: Sequence[OriginalRecord], transforms: Sequence[str]) -> Tables:
    stored = _stack(r.stored for r in records)
    queries = [(i, t, r.queries[name]) for i, r in enumerate(records) if r.queries
               for t, name in enumerate(transforms)]
    probes = _stack(q.probes for _, _, q in queries)
    pdq, phash, dhash = _probe_tables(probes, stored)
    o_probes = _stack(r.probes for r in records)
    o_pdq, o_phash, o_dhash = _probe_tables(o_probes, stored)
    md5s = np.array([r.md5 for r in records], dtype=object)
    naive_stored = np.stack([r.naive_pdq for r in records])
    naive_phash = np.array([r.naive_phash for r in records], dtype=np.uint64)
    q_naive = np.stack([q.naive_pdq for _, _, q in queries]) if queries else np.zeros((0, 4), np.uint64)
    q_naive_ph = np.array([q.naive_phash for _, _, q in queries], dtype=np.uint64)
    return Tables(
        names=[r.name for r in records],
        transforms=list(transforms),
        own=np.array([i for i, _, _ in queries], dtype=np.int64),
        transform_of=np.array([t for _, t, _ in queries], dtype=np.int64),
        pdq=pdq,
        phash=phash,
        dhash=dhash,
        quality=probes.quality,
        md5_equal=np.array([[q.md5 == m for m in md5s] for _, _, q in queries], dtype=bool).reshape(-1, len(records)),
        views=np.array([[label in q.views for label in QUERY_LABELS] for _, _, q in queries],
                       dtype=bool).reshape(-1, len(QUERY_LABELS)),
        naive_pdq=hamming_words(q_naive[:, None, :], naive_stored[None]),
        naive_phash=hamming_words(q_naive_ph[:, None, None], naive_phash[None, :, None]).astype(np.uint8),
        o_pdq=o_pdq,
        o_phash=o_phash,
        o_dhash=o_dhash,
        o_quality=o_probes.quality,
        o_md5_equal=md5s[:, None] == md5s[None, :],
        o_naive_pdq=hamming_words(naive_stored[:, None, :], naive_stored[None]),
        o_naive_phash=hamming_words(naive_phash[:, None, None], naive_phash[None, :, None]).astype(np.uint8),
        o_plain_pdq=hamming_words(o_probes.pdq[:, None, 0, 0, :], stored.pdq[None, :, 0, :]),
    )


# ------------------------------------------------------------------------------------------------- methods


@dataclass(frozen=True)
class Augment:
    """Which probes and groups of stored labels a configuration of our service uses."""

    name: str
    probes: tuple[str, ...]
    labels: tuple[str, ...]

    def probe_index(self) -> list[int]:
        return [PROBES.index(p) for p in self.probes]

    def label_index(self) -> list[int]:
        return [GROUPS.index(label) for label in self.labels]


AUGMENTS: tuple[Augment, ...] = (
    Augment("ours (dihedral only)", ("raw",), ("original",)),
    Augment("ours + query trim", ("raw", "trim"), ("original",)),
    Augment("ours + strict trim", ("raw", "trim", "strict"), ("original",)),
    Augment("ours + frame candidates", ("raw", "trim", "strict", *(p for p in PROBES if p.startswith("frame"))),
            ("original",)),
    Augment("ours + upright", ("raw", "upright", "upright90"), ("original", "centre crops")),
    Augment("ours + index trim", ("raw",), ("original", "trim")),
    Augment("ours + centre crops", ("raw",), ("original", "centre crops")),
    Augment("ours + all crops", ("raw",), ("original", "centre crops", "corner crops")),
    Augment("ours + all", PROBES, GROUPS),
)
FULL = AUGMENTS[-1].name


def near_duplicate_mask(names: Sequence[str], pairs: Iterable[tuple[str, str]]) -> np.ndarray:
    """(N, N) bool: True where a pair counts as the same image (the diagonal and the known near-duplicates)."""
    index = {name: i for i, name in enumerate(names)}
    mask = np.eye(len(names), dtype=bool)
    for a, b in pairs:
        if a in index and b in index:
            mask[index[a], index[b]] = mask[index[b], index[a]] = True
    return mask


@dataclass(frozen=True)
class Thresholds:
    pdq: int = ALGORITHMS["pdq"].default_threshold
    phash: int = ALGORITHMS["phash"].default_threshold
    dhash: int = ALGORITHMS["dhash"].default_threshold
    naive_pdq: int = 31  # HMA / python-threatexchange
    naive_phash: int = 8


def _evidence(pdq: np.ndarray, quality: np.ndarray, phash: np.ndarray, dhash: np.ndarray, md5: bool,
              th: Thresholds) -> list[Evidence]:
    """The evidence one (query, item) pair gives the policy: per probe, the best PDQ / pHash / dHash match, all
    pointing at the same item (so a pHash match can corroborate a PDQ one, as in the service)."""
    evidence = []
    for p in range(len(pdq)):
        evidence.append(Evidence("pdq", int(pdq[p]), th.pdq, "block", int(quality[p]), item=0))
        evidence.append(Evidence("phash", int(phash[p]), th.phash, "block", item=0))
        evidence.append(Evidence("dhash", int(dhash[p]), th.dhash, "block", item=0))
    if md5:
        evidence.append(Evidence("md5", 0, 0, "block", item=0))
    return evidence


def policy_decisions(
    pdq: np.ndarray, phash: np.ndarray, dhash: np.ndarray, quality: np.ndarray, md5: np.ndarray, th: Thresholds
) -> np.ndarray:
    """Decisions (0 allow, 1 review, 2 block) through the service's `decide`, for arrays of (pair, probe)
    distances (already minimised over stored labels). Pairs with nothing within any threshold are `allow`
    without a call: no evidence counts for them, so `decide` could only say allow."""
    out = np.zeros(pdq.shape[0], dtype=np.int8)
    pdq_reach = corroborated_limit(th.pdq)  # beyond its threshold PDQ counts only if corroborated
    candidates = np.flatnonzero(
        (pdq <= pdq_reach).any(axis=1) | (phash <= th.phash).any(axis=1) | (dhash <= th.dhash).any(axis=1) | md5
    )
    severity = {"allow": 0, "review": 1, "block": 2}
    for k in candidates:
        out[k] = severity[decide(_evidence(pdq[k], quality[k], phash[k], dhash[k], bool(md5[k]), th))]
    return out


def _select(table: np.ndarray, augment: Augment) -> np.ndarray:
    """(rows, P, N, L) -> (rows, P', N): restrict to the augment's probes, minimise over its labels."""
    return table[:, augment.probe_index()][:, :, :, augment.label_index()].min(axis=3)


@dataclass
class MethodResult:
    name: str
    kind: str  # "distance" (one algorithm, one threshold) or "policy" (the service's decision)
    threshold: int | None
    recall: dict[str, float]  # per transform: matched (distance within threshold / decision block)
    recall_review: dict[str, float] | None  # policy: block or review
    overall: float
    overall_review: float | None
    fp_pairs: int  # unordered pairs of distinct originals that match (block, for the policy)
    fp_pairs_review: int | None
    fp_cross: int  # (edit, other original) pairs that match
    pairs: int
    cross_pairs: int
    sweep: dict[str, list[float]] | None = None  # threshold -> recall, FP, precision
    recall_at_precision: float | None = None
    threshold_at_precision: int | None = None
    positives: np.ndarray | None = None  # own distances, for histograms
    negatives: np.ndarray | None = None  # distances between distinct originals


def _per_transform(hit: np.ndarray, t: Tables) -> dict[str, float]:
    return {name: float(hit[t.transform_of == i].mean()) if (t.transform_of == i).any() else math.nan
            for i, name in enumerate(t.transforms)}


def _pair_values(matrix: np.ndarray, same: np.ndarray) -> np.ndarray:
    """Unordered pairs of distinct originals (i < j, not near-duplicates): min over both directions."""
    sym = np.minimum(matrix, matrix.T)
    upper = np.triu(np.ones_like(same), k=1) & ~same
    return sym[upper]


def sweep(positives: np.ndarray, negatives: np.ndarray, max_threshold: int) -> dict[str, list[float]]:
    """Recall, false positives and precision at every threshold 0..max_threshold (distance <= threshold)."""
    pos = np.bincount(positives.astype(np.int64), minlength=max_threshold + 1)[: max_threshold + 1].cumsum()
    neg = np.bincount(negatives.astype(np.int64).ravel(), minlength=max_threshold + 1)[: max_threshold + 1].cumsum()
    recall = pos / max(1, len(positives))
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(pos + neg > 0, pos / (pos + neg), 1.0)
    return {"threshold": list(range(max_threshold + 1)), "recall": recall.tolist(), "fp": neg.tolist(),
            "precision": precision.tolist()}


def recall_at_precision(curve: dict[str, list[float]], target: float = TARGET_PRECISION) -> tuple[float, int]:
    """Best recall over thresholds whose precision is at least `target` (Thorn's metric), and that threshold."""
    best, at = 0.0, -1
    for threshold, recall, precision in zip(curve["threshold"], curve["recall"], curve["precision"], strict=True):
        if precision >= target and recall >= best:
            best, at = recall, int(threshold)
    return best, at


def _distance_method(name: str, pos: np.ndarray, cross: np.ndarray, pairs: np.ndarray, threshold: int,
                     t: Tables, max_threshold: int) -> MethodResult:
    hit = pos <= threshold
    curve = sweep(pos, cross, max_threshold)
    rap, at = recall_at_precision(curve)
    return MethodResult(
        name, "distance", threshold, _per_transform(hit, t), None, float(hit.mean()) if hit.size else math.nan,
        None, int((pairs <= threshold).sum()), None, int((cross <= threshold).sum()), int(pairs.size),
        int(cross.size), curve, rap, at, pos, pairs,
    )


def evaluate(t: Tables, th: Thresholds, near_duplicates: Iterable[tuple[str, str]] = ()) -> list[MethodResult]:
    same = near_duplicate_mask(t.names, near_duplicates)
    q = np.arange(len(t.own))
    cross_mask = ~same[t.own]  # (Q, N): negatives for each query; its own original's near-duplicates excluded
    results: list[MethodResult] = []

    def distance(name: str, table: np.ndarray, o_table: np.ndarray, threshold: int, bits: int) -> None:
        pos = table[q, t.own]
        results.append(_distance_method(name, pos, table[cross_mask], _pair_values(o_table, same), threshold, t,
                                        bits // 2))

    distance("PDQ naive (HMA)", t.naive_pdq, t.o_naive_pdq, th.naive_pdq, 256)
    distance("pHash naive (imagehash)", t.naive_phash, t.o_naive_phash, th.naive_phash, 64)
    base, full = AUGMENTS[0], AUGMENTS[-1]
    distance("PDQ ours (dihedral)", _select(t.pdq, base)[:, 0], _select(t.o_pdq, base)[:, 0], th.pdq, 256)
    distance("PDQ ours + all", _select(t.pdq, full).min(axis=1), _select(t.o_pdq, full).min(axis=1), th.pdq, 256)
    distance("pHash ours", _select(t.phash, base)[:, 0], _select(t.o_phash, base)[:, 0], th.phash, 64)
    distance("dHash ours", _select(t.dhash, base)[:, 0], _select(t.o_dhash, base)[:, 0], th.dhash, 64)

    for augment in AUGMENTS:
        results.append(_policy_method(t, augment, th, same, cross_mask))
    return results


def _policy_method(t: Tables, augment: Augment, th: Thresholds, same: np.ndarray,
                   cross_mask: np.ndarray) -> MethodResult:
    probes = augment.probe_index()
    pdq, phash, dhash = (_select(x, augment) for x in (t.pdq, t.phash, t.dhash))  # (Q, P', N)
    q = np.arange(len(t.own))
    quality = t.quality[:, probes]
    own = policy_decisions(pdq[q, :, t.own], phash[q, :, t.own], dhash[q, :, t.own], quality,
                           t.md5_equal[q, t.own], th)
    # Cross pairs: every (query, original) that is not the query's own image or a near-duplicate of it.
    qi, ni = np.nonzero(cross_mask)
    cross = policy_decisions(pdq[qi, :, ni], phash[qi, :, ni], dhash[qi, :, ni], quality[qi], t.md5_equal[qi, ni], th)
    # Pairs of distinct originals, both directions; a pair is a false positive if either direction matches.
    opdq, ophash, odhash = (_select(x, augment) for x in (t.o_pdq, t.o_phash, t.o_dhash))
    ai, bi = np.nonzero(~same)
    o = policy_decisions(opdq[ai, :, bi], ophash[ai, :, bi], odhash[ai, :, bi], t.o_quality[ai][:, probes],
                         t.o_md5_equal[ai, bi], th)
    pair = np.zeros(same.shape, dtype=np.int8)
    pair[ai, bi] = o
    pair = np.maximum(pair, pair.T)[np.triu(~same, k=1)]
    block, review = own == 2, own >= 1
    return MethodResult(
        augment.name, "policy", None, _per_transform(block, t), _per_transform(review, t), float(block.mean()),
        float(review.mean()), int((pair == 2).sum()), int((pair >= 1).sum()), int((cross == 2).sum()),
        int(pair.size), int(cross.size),
    )


# ----------------------------------------------------------------------------------------------- tail model


def tail_model(distances: np.ndarray, bits: int, stored: float = 1e7, comparisons: int = 1) -> dict[str, object]:
    """Extrapolate the chance that two unrelated images fall within a threshold, from the bulk of the observed
    distance distribution (one comparison per pair), with two models:

    * binomial(bits, p): independent bits; p from the mean. Underestimates tails when bits are correlated.
    * normal(mean, sd) with the observed sd (wider than binomial because of the correlation). Still a guess
      beyond the data: with ~89k pairs nothing below ~1e-5 is observed, so these are extrapolations.

    Per threshold: per-comparison rate, and the expected false matches per query against `stored` items when
    each item is compared `comparisons` times (dihedral variants x probes x stored hashes; a union bound).
    """
    from scipy import stats

    values = distances.astype(np.float64)
    mean, sd = float(values.mean()), float(values.std())
    p = mean / bits
    thresholds = np.arange(0, bits // 2 + 1)
    empirical = np.searchsorted(np.sort(values), thresholds, side="right") / max(1, values.size)
    # The bulk models miss real tails (related scenes, simple images sit far closer than a normal predicts), so
    # a third model fits the observed lower tail itself: log10 F(t) linear in t over the thresholds where F is
    # between 20 pairs and 1%, extrapolated downwards. Slowest-decaying of the three is used for advice.
    fit = (empirical >= 20 / max(1, values.size)) & (empirical <= 0.01)
    slope, intercept = np.polyfit(thresholds[fit], np.log10(empirical[fit]), 1) if fit.sum() >= 2 else (0.0, -99.0)
    rows = []
    for threshold, observed in zip(thresholds.tolist(), empirical.tolist(), strict=True):
        binom = float(stats.binom.cdf(threshold, bits, p))
        normal = float(stats.norm.cdf(threshold + 0.5, mean, sd))
        tail = float(min(1.0, 10 ** (intercept + slope * threshold)))
        worst = max(normal, tail)
        rows.append({"threshold": threshold, "empirical": observed, "binomial": binom, "normal": normal,
                     "tail_fit": tail, "expected_per_query_normal": normal * stored * comparisons,
                     "expected_per_query_binomial": binom * stored * comparisons,
                     "expected_per_query": worst * stored * comparisons})
    return {"mean": mean, "sd": sd, "binomial_sd": math.sqrt(bits * p * (1 - p)), "pairs": int(values.size),
            "min": int(values.min()) if values.size else None, "stored": stored, "comparisons": comparisons,
            "tail_fit": {"log10_slope": float(slope), "log10_intercept": float(intercept), "points": int(fit.sum())},
            "rows": rows}


def largest_safe_threshold(model: dict[str, object], budget: float, key: str = "expected_per_query") -> int:
    """Largest threshold whose expected false matches per query stay within `budget`."""
    safe = -1
    for row in model["rows"]:  # type: ignore[union-attr]
        if row[key] <= budget:
            safe = row["threshold"]
    return safe


# --------------------------------------------------------------------------------------------------- report


FAMILY_TARGETS = {"photometric": 0.99, "resize": 0.99, "reencode": 0.99, "flip": 0.99, "rotate90": 0.99}


def targets(results: Sequence[MethodResult], transforms: Sequence[Transform]) -> list[dict[str, object]]:
    """The issue's targets for the service's policy (full augmentation), each with its measured value."""
    by_name = {r.name: r for r in results}
    ours, baseline = by_name[FULL], by_name["PDQ naive (HMA)"]
    out: list[dict[str, object]] = [
        {"target": "no block among distinct-original pairs", "value": ours.fp_pairs, "met": ours.fp_pairs == 0},
        {"target": "overall recall >= 95%", "value": ours.overall, "met": ours.overall >= 0.95,
         "baseline": baseline.overall},
    ]
    for tr in transforms:
        need = FAMILY_TARGETS.get(tr.family)
        if tr.name in {"pad_black_20", "pad_white_20", "pad_blur_20", "letterbox_black_20", "letterbox_white_20",
                       "letterbox_blur_20"}:
            need = 0.95
        if tr.name in {"crop_centre_10", "crop_offcentre_10"}:
            need = 0.80
        if tr.family == "small_rotation":
            value, base = ours.recall[tr.name], baseline.recall[tr.name]
            out.append({"target": f"{tr.name} improved over baseline", "value": value, "baseline": base,
                        "met": value > base})
        elif need is not None:
            value = ours.recall[tr.name]
            out.append({"target": f"{tr.name} >= {need:.0%}", "value": value, "met": value >= need})
    return out


def _pct(x: float | None) -> str:
    return "–" if x is None or math.isnan(x) else f"{100 * x:.1f}"


def markdown(results: Sequence[MethodResult], transforms: Sequence[Transform], meta: dict[str, object]) -> str:
    by_name = {r.name: r for r in results}
    cols = [FULL, AUGMENTS[0].name, "PDQ naive (HMA)", "pHash naive (imagehash)"]
    lines = [
        f"Originals: {meta['originals']}, edits: {meta['queries']}, transforms: {len(transforms)}; "
        f"pairs of distinct originals: {by_name[FULL].pairs}; "
        f"(edit, other original) pairs: {by_name[FULL].cross_pairs}.",
        "",
        "Recall (%) per transform. *ours* = the service's decision is `block` (in brackets: block or review).",
        "",
        "| transform | family | ours + all | ours (dihedral only) | PDQ naive (HMA, <=31) | pHash naive (<=8) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for tr in transforms:
        row = [tr.name, tr.family]
        for c in cols:
            r = by_name[c]
            cell = _pct(r.recall[tr.name])
            if r.recall_review is not None:
                cell += f" ({_pct(r.recall_review[tr.name])})"
            row.append(cell)
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "| method | threshold | recall (block) | recall (block or review) | FP pairs of originals (block)"
              " | FP pairs (block or review) | FP (edit, other original) | recall @ 99.99% precision (threshold) |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        rap = "–" if r.recall_at_precision is None else f"{_pct(r.recall_at_precision)} ({r.threshold_at_precision})"
        lines.append(
            f"| {r.name} | {r.threshold if r.threshold is not None else 'policy'} | {_pct(r.overall)} | "
            f"{_pct(r.overall_review)} | {r.fp_pairs} | {r.fp_pairs_review if r.fp_pairs_review is not None else '–'}"
            f" | {r.fp_cross} | {rap} |"
        )
    return "\n".join(lines) + "\n"


def plots(results: Sequence[MethodResult], transforms: Sequence[Transform], folder: Path) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_name = {r.name: r for r in results}
    out: dict[str, Path] = {}
    methods = [FULL, AUGMENTS[0].name, "PDQ naive (HMA)", "pHash naive (imagehash)"]
    colours = ["#1b7837", "#7fbf7b", "#c51b7d", "#999999"]
    names = [t.name for t in transforms]
    fig, ax = plt.subplots(figsize=(7, 0.17 * len(names) + 1.2), dpi=72)
    height = 0.8 / len(methods)
    y = np.arange(len(names))
    for k, (m, colour) in enumerate(zip(methods, colours, strict=True)):
        ax.barh(y + k * height, [100 * by_name[m].recall[n] for n in names], height, label=m, color=colour)
    ax.set_yticks(y + 0.4 - height / 2, names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("recall (%) at the configured thresholds")
    ax.set_xlim(0, 100)
    ax.legend(fontsize=7, loc="lower left")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    out["recall"] = folder / "recall.png"
    fig.savefig(out["recall"])
    plt.close(fig)

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2), dpi=80)
    for ax, m in zip(axes, ["PDQ naive (HMA)", "PDQ ours + all", "pHash naive (imagehash)"], strict=True):
        r = by_name[m]
        top = 256 if "PDQ" in m else 64
        bins = np.arange(0, top + 2, 2 if top == 256 else 1)
        ax.hist(r.positives, bins=bins, alpha=0.6, density=True, label="edit vs its original")
        ax.hist(r.negatives, bins=bins, alpha=0.6, density=True, label="distinct originals")
        ax.axvline(r.threshold, color="k", ls="--", lw=1)
        ax.set_title(m, fontsize=9)
        ax.set_yscale("log")
        ax.set_xlabel("Hamming distance")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    out["distances"] = folder / "distances.png"
    fig.savefig(out["distances"])
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=80)
    for m in ["PDQ naive (HMA)", "PDQ ours (dihedral)", "PDQ ours + all", "pHash naive (imagehash)", "pHash ours"]:
        r = by_name[m]
        assert r.sweep is not None
        scale = 256 if "PDQ" in m else 64
        ax.plot(np.array(r.sweep["threshold"]) / scale, 100 * np.array(r.sweep["recall"]), label=m)
    ax.set_xlabel("threshold / bits")
    ax.set_ylabel("recall (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    out["sweep"] = folder / "recall_vs_threshold.png"
    fig.savefig(out["sweep"])
    plt.close(fig)
    return out


def to_json(results: Sequence[MethodResult], extra: dict[str, object]) -> dict[str, object]:
    methods = []
    for r in results:
        entry = {k: v for k, v in r.__dict__.items() if k not in {"positives", "negatives"}}
        methods.append(entry)
    return {**extra, "methods": methods}


# ---------------------------------------------------------------------------------------------------- run


@dataclass
class RunOptions:
    folder: Path
    cache_dir: Path = Path("bench-cache")
    results_dir: Path = Path("results/robustness")
    transforms: Sequence[str] | None = None
    processes: int = 2
    every: int = 1  # edit every k-th image (quick runs); all images are hashed as originals
    limit: int | None = None
    thresholds: Thresholds = field(default_factory=Thresholds)
    plots: bool = True
    reuse_hashes: bool = False  # evaluate the hashes saved by the previous run of the same options
    fp_budget: float = 1e-4  # expected false blocks per query at 10M stored items, for the threshold advice


def run(options: RunOptions) -> dict[str, object]:
    """The whole benchmark; returns the JSON document it writes (and writes markdown and plots beside it)."""
    started = time.perf_counter()
    images = list_images(options.folder)[: options.limit]
    transforms = select(options.transforms)
    saved = options.results_dir / "hashes.pickle"
    if options.reuse_hashes and saved.exists():
        # Re-evaluating (other thresholds, report changes) without re-hashing; stale if augment.py changed.
        records = pickle.loads(saved.read_bytes())
    else:
        records = collect(images, options.folder, transforms, options.cache_dir, options.processes, options.every)
        options.results_dir.mkdir(parents=True, exist_ok=True)
        saved.write_bytes(pickle.dumps(records))
    hashed = time.perf_counter()
    tables = build_tables(records, [tr.name for tr in transforms])
    results = evaluate(tables, options.thresholds, CORPUS_NEAR_DUPLICATES)
    same = near_duplicate_mask(tables.names, CORPUS_NEAR_DUPLICATES)
    single = _pair_values(tables.o_plain_pdq, same)
    full = AUGMENTS[-1]
    comparisons = 8 * len(full.probes) * len(LABELS)
    pdq_tail = tail_model(single, 256, comparisons=comparisons)
    phash_single = _pair_values(tables.o_phash[:, 0, :, 0], same)
    phash_tail = tail_model(phash_single, 64, comparisons=len(full.probes) * len(LABELS))
    meta: dict[str, object] = {
        "originals": len(records),
        "queries": int(tables.own.size),
        "folder": str(options.folder),
        "thresholds": options.thresholds.__dict__,
        "query_views": {name: {label: float(tables.views[tables.transform_of == i, k].mean())
                                for k, label in enumerate(QUERY_LABELS)}
                         for i, name in enumerate(tables.transforms)},
        "trimmed_originals": int(sum(bool((r.stored.pdq[1] != r.stored.pdq[0]).any()) for r in records)),
        "seconds_hashing": round(hashed - started, 1),
        "processes": options.processes,
        "tail_pdq": pdq_tail,
        "tail_phash": phash_tail,
        "pdq_safe_threshold": largest_safe_threshold(pdq_tail, options.fp_budget),
        "fp_budget_per_query": options.fp_budget,
        "targets": targets(results, transforms),
    }
    options.results_dir.mkdir(parents=True, exist_ok=True)
    table = markdown(results, transforms, meta)
    meta["seconds_total"] = round(time.perf_counter() - started, 1)
    document = to_json(results, meta)
    (options.results_dir / "robustness.json").write_text(json.dumps(document, indent=1, default=_json_default))
    (options.results_dir / "robustness.md").write_text(table + "\n" + _targets_md(meta["targets"]))  # type: ignore[arg-type]
    if options.plots:
        plots(results, transforms, options.results_dir)
    return document


def _targets_md(rows: Sequence[dict[str, object]]) -> str:
    lines = ["| target | measured | met |", "|---|---:|:---:|"]
    for row in rows:
        value = row["value"]
        shown = _pct(value) + "%" if isinstance(value, float) else str(value)
        if "baseline" in row:
            shown += f" (PDQ baseline {_pct(row['baseline'])}%)"  # type: ignore[arg-type]
        lines.append(f"| {row['target']} | {shown} | {'yes' if row['met'] else '**no**'} |")
    return "\n".join(lines) + "\n"


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, float) and math.isnan(value):
        return None
    raise TypeError(f"not JSON serialisable: {type(value)}")
