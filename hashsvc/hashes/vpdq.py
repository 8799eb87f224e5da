"""vPDQ: Meta's video hash, one PDQ per sampled frame, matched by the share of frames that agree.

Pure functions: a frame's PDQ from its grey pixels, the `pdq,quality,timestamp` serialization that
python-threatexchange and HMA exchange for `vpdq` signals (a JSON list of such strings), vPDQ's clean-up of a
frame list (exact duplicates removed, frames below the quality threshold dropped), and its two match shares.

The rule, as vPDQ defines it: after clean-up, the query share is the percentage of the query's frames that lie
within the distance threshold of some frame of the candidate, the item (compared) share the percentage of the
candidate's frames within the threshold of some query frame. A video matches when the query share reaches the
query threshold and the item share the item threshold. Meta's defaults: distance 31, quality 50, query share 80 %,
item share 0 %.

One departure, for a query hashed here (never for a hash from elsewhere): a sampled query frame may bring its
neighbours, the frames a quarter second either side of it, and counts as matched when one of them does
(`hits`); the shares keep vPDQ's denominators. Why: see `hits` and docs/video.md ("Neighbouring frames").
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from hashsvc.errors import InvalidHashError
from hashsvc.hashes import pdq_geometry

DISTANCE_THRESHOLD = 31
QUALITY_THRESHOLD = 50
QUERY_SHARE = 80.0
ITEM_SHARE = 0.0
SECONDS_PER_HASH = 1.0
# A query's neighbours (`hits`): frames this far either side of each sampled frame. A quarter second: a frame
# 0.25 s from the item's sample is 2-50 bits off in panning footage (mostly under 31), 0.5 s off 50-120.
NEIGHBOUR_S = 0.25
MAX_FEATURES = 100_000  # frames one serialized vPDQ hash may list (a day of video at 1 fps)
_TIMESTAMP_PRECISION = 3  # python-threatexchange writes f"{timestamp:.3}"


@dataclass(frozen=True)
class Feature:
    """One sampled frame's hash."""

    code: bytes  # 32 bytes, PDQ packed MSB-first (its hex is the ecosystem's 64-char PDQ hex)
    quality: int
    timestamp: float  # seconds from the start
    frame: int = 0  # frame number in decoding order (not part of the exchange format)

    @property
    def hex(self) -> str:
        return self.code.hex()

    def __str__(self) -> str:
        """The exchange form `pdq,quality,timestamp`, written exactly as python-threatexchange writes it."""
        return f"{self.hex},{self.quality},{self.timestamp:.{_TIMESTAMP_PRECISION}}"


def frame_pdq(gray: np.ndarray, full_height: int, full_width: int) -> tuple[bytes, int]:
    """PDQ and quality of a frame of full_height x full_width whose (possibly box-reduced) grey is `gray`.

    On an unreduced frame this is PDQ as pdqhash computes it on the same grey; on a reduced one PDQ's
    full-resolution filter grid is evaluated on the reduced pixels (pdq_geometry), as for still images.
    """
    if full_height < pdq_geometry.MIN_HASHABLE_DIM or full_width < pdq_geometry.MIN_HASHABLE_DIM:
        return bytes(32), 0
    dct16, buffer64 = pdq_geometry.pdq_dct16(np.asarray(gray, dtype=np.float32), full_height, full_width)
    quality = pdq_geometry.quality_metric(buffer64.astype(np.float32))
    return pdq_geometry.dct16_to_code(dct16.astype(np.float32)), quality


# ------------------------------------------------------------------------------------------ exchange format


def dumps(features: Iterable[Feature]) -> str:
    """The `vpdq` signal string of python-threatexchange / HMA: a JSON list of "pdq,quality,timestamp"."""
    return json.dumps([str(f) for f in features])


def loads(signal: str | list[str]) -> list[Feature]:
    """Parse a `vpdq` signal (the JSON text or the already-parsed list). Raises InvalidHashError."""
    if isinstance(signal, str):
        try:
            signal = json.loads(signal or "[]")
        except (ValueError, RecursionError):
            raise InvalidHashError("vpdq: not a JSON list of \"pdq,quality,timestamp\" strings") from None
    if not isinstance(signal, list):
        raise InvalidHashError("vpdq: expected a list of \"pdq,quality,timestamp\" strings")
    if len(signal) > MAX_FEATURES:
        raise InvalidHashError(f"vpdq: at most {MAX_FEATURES:,} frames per hash, got {len(signal):,}")
    return [parse_feature(entry, n) for n, entry in enumerate(signal)]


def parse_feature(entry: object, position: int = 0) -> Feature:
    """One "pdq,quality,timestamp" string. Raises InvalidHashError."""
    where = f"vpdq[{position}]"
    if not isinstance(entry, str) or len(entry) > 128:
        raise InvalidHashError(f"{where}: expected a \"pdq,quality,timestamp\" string")
    parts = entry.split(",")
    if len(parts) != 3:
        raise InvalidHashError(f"{where}: expected 3 comma-separated fields, got {len(parts)}")
    hex_code, quality_text, time_text = (p.strip() for p in parts)
    if len(hex_code) != 64:
        raise InvalidHashError(f"{where}: the PDQ hash must be 64 hex characters")
    try:
        code = bytes.fromhex(hex_code)
        quality = int(quality_text)
        timestamp = float(time_text)
    except ValueError:
        raise InvalidHashError(f"{where}: malformed field in {entry[:80]!r}") from None
    if not 0 <= quality <= 100:
        raise InvalidHashError(f"{where}: quality must be 0..100")
    if not math.isfinite(timestamp) or not 0 <= timestamp < 1e7:
        raise InvalidHashError(f"{where}: timestamp must be a non-negative number of seconds")
    return Feature(code, quality, timestamp, position)


# ------------------------------------------------------------------------------------------------ matching


def prepare(features: Iterable[Feature], quality_threshold: int = QUALITY_THRESHOLD) -> list[Feature]:
    """vPDQ's clean-up: frames below the quality threshold dropped, then exact repeats of a hash (first kept)."""
    seen: set[bytes] = set()
    kept = []
    for feature in features:
        if feature.quality >= quality_threshold and feature.code not in seen:
            seen.add(feature.code)
            kept.append(feature)
    return kept


def shares(matched_query: int, query_total: int, matched_item: int, item_total: int) -> tuple[float, float]:
    """(query share, item share) in percent; a side with no frames has share 0."""
    return (
        100.0 * matched_query / query_total if query_total else 0.0,
        100.0 * matched_item / item_total if item_total else 0.0,
    )


def passes(query_share: float, item_share: float, query_threshold: float, item_threshold: float) -> bool:
    return query_share >= query_threshold and item_share >= item_threshold


def frames_needed(query_threshold: float, total: int) -> int:
    """The fewest of `total` query frames that must match for the query share to reach `query_threshold`
    (at least 1: a video is only a candidate once one of its frames is hit). Computed with `shares`' own
    arithmetic, so the count agrees with the share test to the last float rounding."""
    needed = max(0, min(total, math.ceil(query_threshold * total / 100.0) - 1))
    while needed < total and shares(needed, total, 0, 0)[0] < query_threshold:
        needed += 1
    return max(1, needed)


def probe_frames(query: Sequence[Feature], rules: Iterable[tuple[float, int]]) -> list[int]:
    """Positions in `query` of the frames to look up so that every video a rule can match is hit (pigeonhole).

    `rules` are (query share threshold, quality threshold) pairs, one per rule in force. Under a rule, a
    matching video needs `frames_needed` of the query's n frames of sufficient quality to match, so at most
    n - needed of them do not: any n - needed + 1 of those frames include a matching one, whose lookup names the
    video as a candidate. Its shares are then computed exactly over all frames, so the answer is the same as
    looking up every frame. At Meta's 80 % that is 13 of 60 frames. Frames of higher quality are taken first
    (they count under every rule); a rule with a low query share may need every frame.
    """
    order = sorted(range(len(query)), key=lambda i: -query[i].quality)  # stable: ties keep time order
    chosen = 0
    for share, quality in rules:
        # By falling quality, a rule's eligible frames are a prefix of `order`: taking the first k frames of
        # `order` takes k of them.
        eligible = sum(1 for f in query if f.quality >= quality)
        if eligible:
            chosen = max(chosen, eligible - frames_needed(share, eligible) + 1)
    return sorted(order[:chosen])


def time_ranges(timestamps: Iterable[float], gap_s: float) -> list[tuple[float, float]]:
    """Merge sorted sample times into [start, end] ranges: samples at most `gap_s` apart join one range."""
    ranges: list[list[float]] = []
    for t in sorted(set(timestamps)):
        if ranges and t - ranges[-1][1] <= gap_s + 1e-6:
            ranges[-1][1] = t
        else:
            ranges.append([t, t])
    return [(round(a, 3), round(b, 3)) for a, b in ranges]


def brute_shares(
    query: Sequence[Feature],
    item: Sequence[Feature],
    distance: int = DISTANCE_THRESHOLD,
    neighbours: Iterable[Neighbour] = (),
) -> tuple[float, float]:
    """The two shares by comparing every frame with every frame (for tests and the benchmark's ground truth;
    the service gets the same numbers from the index). `neighbours` as for `hits`."""
    if not query or not item:
        return 0.0, 0.0
    query_hit, item_hit, _ = hits(query, item, distance, neighbours)
    return shares(int(query_hit.sum()), len(query), int(item_hit.sum()), len(item))


Neighbour = tuple[int, Feature]  # (frame number of the sampled query frame it flanks, its hash)


def hits(
    query: Sequence[Feature], item: Sequence[Feature], distance: int, neighbours: Iterable[Neighbour] = ()
) -> tuple[np.ndarray, np.ndarray, int]:
    """Which query frames and which item frames match (bool arrays), and the smallest matching distance.

    Without `neighbours` this is vPDQ's comparison. With them (a query's frames a fraction of a second either
    side of its sampled frames, media_video.sample), a sampled query frame also counts as matched when one of
    its neighbours is within `distance` of an item frame, and an item frame when it is within `distance` of a
    neighbour. Why: the item was sampled at whole seconds of *its* timeline; a sped-up, slowed or re-timed copy
    shows those moments between its own whole seconds, and in moving footage a frame half a second away is
    50-120 bits off (bench_video_robustness, 1.25x speed-up: 61-69 % of sampled frames matched, 85-100 % with
    neighbours at +-0.25 s). The shares keep vPDQ's denominators: the query's sampled frames and the item's.
    """
    query_hit, item_hit = np.zeros(len(query), bool), np.zeros(len(item), bool)
    if not query or not item:
        return query_hit, item_hit, distance + 1
    position = {f.frame: i for i, f in enumerate(query)}
    flanking = [(position[anchor], f) for anchor, f in neighbours if anchor in position]
    # Rows: the sampled frames, then the neighbours; each row counts for the sampled frame at `owner`.
    owner = np.array(list(range(len(query))) + [i for i, _ in flanking], dtype=np.intp)
    distances = distance_matrix([*query, *(f for _, f in flanking)], item)
    within = distances <= distance
    np.logical_or.at(query_hit, owner, within.any(axis=1))
    item_hit = within.any(axis=0)
    best = int(distances[within].min()) if within.any() else distance + 1
    return query_hit, item_hit, best


def distance_matrix(first: Sequence[Feature], second: Sequence[Feature]) -> np.ndarray:
    """Hamming distances (len(first), len(second)) between the frames' PDQs, 64 bits at a time."""
    a = np.frombuffer(b"".join(f.code for f in first), dtype=np.uint64).reshape(len(first), 4)
    b = np.frombuffer(b"".join(f.code for f in second), dtype=np.uint64).reshape(len(second), 4)
    return np.bitwise_count(a[:, None, :] ^ b[None, :, :]).sum(axis=2, dtype=np.int32)
