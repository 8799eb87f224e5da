"""Local features of videos: keyframes of a video item, frames of a query video, and the rule that joins them.

PDQ sees the whole frame, so a 10 % crop, an opaque caption band or a logo moves a video's frames past vPDQ's
distance (docs/video.md, "Edited clips"). ORB keypoints survive those edits as they survive crops of photos
(docs/local-features.md). For a video item added from a video file, the sandbox worker that hashes its frames
also extracts the ORB features of a bounded set of *keyframes* (`KeyframePicker`); for a query video that the
hash stage did not block, of a bounded set of its sampled frames. Each query frame's descriptors are looked up
among all keyframes (`FeatureIndex` with one row owner per keyframe, `keyframe_key`), each candidate (query
frame, keyframe) is verified geometrically with the image stage's RANSAC, and a video item matches when enough
*distinct* query frames verify against its keyframes (`VideoRule`): one frame can match by chance far more
easily than several frames of the same clip.

Everything here is pure (no store, no service) so that scripts/bench_video_robustness.py evaluates exactly the
rule the service applies. The numbers behind every bound are in docs/video.md ("Local features").
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from hashsvc.features import codec, orb
from hashsvc.features.index import FeatureIndex
from hashsvc.features.orb import Features
from hashsvc.features.verify import Verification, verify_pairs

ALGORITHM = "orb-video"  # item_features.algorithm of a video item's keyframes (an image item's is "orb")
MAX_KEYFRAMES = 16  # per video item: a blob of at most 16 x 10 KiB, 16 x ~14 KiB of feature index
MAX_QUERY_FRAMES = 12  # per query video: lookups and RANSACs grow linearly with it
KEYFRAME_CHANGE = 40  # PDQ bits between a new keyframe and the last one (a scene change or a clear move)
MIN_FEATURES = 30  # a frame with fewer keypoints can never give the rule's 30 inliers: not worth keeping
# keyframe_key stride: more than MAX_KEYFRAMES, so an item's keys never overlap the next's (item ids below 2^57
# keep the keys within int64, the feature index's owner type).
KEYS_PER_ITEM = 64
CANDIDATES_PER_FRAME = 8  # keyframes verified per query frame (several may be of the same item)
# Stored descriptors looked at per query descriptor: more than the image stage's 4, because a video's keyframes
# overlap (a pan shows the same corners in several), and the nearest few would otherwise be spread over them.
NEIGHBOURS = 16


def keyframe_key(item_id: int, keyframe: int) -> int:
    """The feature-index owner of one keyframe of one item."""
    return item_id * KEYS_PER_ITEM + keyframe


def item_of_key(key: int) -> int:
    return key // KEYS_PER_ITEM


def add_item(index: FeatureIndex, item_id: int, keyframes: Sequence[Keyframe]) -> None:
    """Make a video item's keyframes matchable, each under its own key."""
    for number, keyframe in enumerate(keyframes):
        index.add(keyframe_key(item_id, number), keyframe.features)


def keys_in_range(keys: Iterable[int], first_item: int, last_item: int) -> set[int]:
    """Those of `keys` that belong to items first_item..last_item (a 'deactivate' change's range, which can span
    a whole bank: scanning the held keys is bounded by the index, generating the range's keys is not)."""
    return {k for k in keys if first_item <= item_of_key(k) <= last_item}


@dataclass(frozen=True)
class Keyframe:
    timestamp: float
    features: Features


def features_of_gray(gray: np.ndarray, max_features: int = orb.MAX_STORED) -> Features:
    """ORB features of one decoded frame (PDQ's float grey, as media_video yields it)."""
    pixels = np.clip(np.rint(gray), 0, 255).astype(np.uint8)
    return orb.extract(Image.fromarray(pixels, mode="L"), max_features)


@dataclass
class KeyframePicker:
    """Chooses at most `limit` frames of a stream, spread over its whole length, without knowing the length.

    A frame is a candidate when its PDQ is more than `min_change` bits from the last candidate's (0 takes every
    frame). Candidates are numbered; those whose number is a multiple of `stride` are kept, and when more than
    `limit` are kept the stride doubles and every other one goes. So the kept frames are always evenly spaced
    among the candidates, memory stays at `limit` feature sets, and ORB runs only on frames that may be kept
    (about 2 x `limit` extractions over a video of any length, plus one per stride doubling's worth)."""

    limit: int
    min_change: int = KEYFRAME_CHANGE
    extract: Callable[[np.ndarray], Features] = features_of_gray
    kept: list[tuple[int, Keyframe]] = field(default_factory=list)  # (candidate number, keyframe)
    _stride: int = 1
    _candidates: int = 0
    _last_code: bytes | None = None

    def offer(self, code: bytes, timestamp: float, gray: np.ndarray) -> None:
        if self.limit <= 0:
            return
        if self._last_code is not None and self.min_change and _bits(code, self._last_code) <= self.min_change:
            return
        self._last_code = code
        number = self._candidates
        self._candidates += 1
        if number % self._stride:
            return
        features = self.extract(gray)
        if len(features) < MIN_FEATURES:
            return  # a flat frame (a fade, a title card) can never verify a match
        self.kept.append((number, Keyframe(timestamp, features)))
        while len(self.kept) > self.limit:
            self._stride *= 2
            self.kept = [(n, k) for n, k in self.kept if n % self._stride == 0]

    def keyframes(self) -> tuple[Keyframe, ...]:
        return tuple(k for _, k in self.kept)



def _bits(a: bytes, b: bytes) -> int:
    return int.from_bytes(bytes(x ^ y for x, y in zip(a, b, strict=True)), "big").bit_count()


# ------------------------------------------------------------------------------------------------- codec

_HEAD = struct.Struct("<BB")
_FRAME = struct.Struct("<fI")
VERSION = 1


def encode(keyframes: Sequence[Keyframe]) -> bytes:
    """version u8 | count u8 | per keyframe: timestamp f32, blob length u32, features.codec blob."""
    if len(keyframes) > MAX_KEYFRAMES:
        raise ValueError(f"a video item stores at most {MAX_KEYFRAMES} keyframes, got {len(keyframes)}")
    parts = [_HEAD.pack(VERSION, len(keyframes))]
    for keyframe in keyframes:
        blob = codec.encode(keyframe.features)
        parts += [_FRAME.pack(keyframe.timestamp, len(blob)), blob]
    return b"".join(parts)


def decode(blob: bytes) -> tuple[Keyframe, ...]:
    """The inverse of `encode`; raises codec.FeatureCodecError on any damage (version, bound, lengths)."""
    if len(blob) < _HEAD.size:
        raise codec.FeatureCodecError("video features blob is truncated (header)")
    version, count = _HEAD.unpack_from(blob)
    if version != VERSION:
        raise codec.FeatureCodecError(f"video features blob has version {version}; this code reads {VERSION}")
    if count > MAX_KEYFRAMES:
        raise codec.FeatureCodecError(f"video features blob holds {count} keyframes, more than {MAX_KEYFRAMES}")
    offset, keyframes = _HEAD.size, []
    for _ in range(count):
        if offset + _FRAME.size > len(blob):
            raise codec.FeatureCodecError("video features blob is truncated (keyframe header)")
        timestamp, size = _FRAME.unpack_from(blob, offset)
        offset += _FRAME.size
        if offset + size > len(blob) or not np.isfinite(timestamp):
            raise codec.FeatureCodecError("video features blob is truncated or holds a bad timestamp")
        keyframes.append(Keyframe(float(timestamp), codec.decode(blob[offset : offset + size])))
        offset += size
    if offset != len(blob):
        raise codec.FeatureCodecError("video features blob has trailing bytes")
    return tuple(keyframes)


# -------------------------------------------------------------------------------------------------- rule


@dataclass(frozen=True)
class FrameHit:
    """One query frame verified against one keyframe of an item."""

    query_time: float
    keyframe: int  # its position among the item's stored keyframes (their times are in the item's blob)
    verification: Verification


@dataclass(frozen=True)
class VideoRule:
    """A video item matches when at least `min_frames` distinct query frames each verify against one of its
    keyframes with `min_inliers` inliers at `min_ratio` (the image rule's numbers per frame)."""

    min_frames: int = 2
    min_inliers: int = 30
    min_ratio: float = 0.30

    def frame_counts(self, verification: Verification) -> bool:
        return verification.inliers >= self.min_inliers and verification.ratio >= self.min_ratio

    def passes(self, hits: Sequence[FrameHit]) -> bool:
        return len({h.query_time for h in hits if self.frame_counts(h.verification)}) >= self.min_frames


RULE = VideoRule()


def frame_hits(
    index: FeatureIndex,
    query: Sequence[Keyframe],
    min_pairs: int,
    allowed: Callable[[set[int]], set[int]] | None = None,
) -> dict[int, list[FrameHit]]:
    """Per item: each query frame's best verified keyframe of that item (the query frame's candidates come from
    `index`, a FeatureIndex whose owners are `keyframe_key`s). `allowed`, given the candidate items, returns
    those that may match now (the service's store check); None allows all."""
    candidates = [(frame, index.candidates(frame.features, neighbours=NEIGHBOURS, max_items=CANDIDATES_PER_FRAME,
                                      min_pairs=min_pairs))
                  for frame in query]  # fmt: skip
    items = {item_of_key(c.item_id) for _, found in candidates for c in found}
    permitted = items if allowed is None else allowed(items)
    best: dict[tuple[int, float], FrameHit] = {}
    for frame, found in candidates:
        for candidate in found:
            item = item_of_key(candidate.item_id)
            if item not in permitted:
                continue
            verification = verify_pairs(candidate.query_xy, candidate.stored_xy)
            hit = FrameHit(frame.timestamp, candidate.item_id % KEYS_PER_ITEM, verification)
            current = best.get((item, frame.timestamp))
            if current is None or verification.inliers > current.verification.inliers:
                best[item, frame.timestamp] = hit
    found_hits: dict[int, list[FrameHit]] = {}
    for (item, _), hit in sorted(best.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        found_hits.setdefault(item, []).append(hit)
    return found_hits
