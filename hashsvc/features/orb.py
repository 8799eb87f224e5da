"""Pixels -> ORB keypoints and descriptors, a bounded number per image.

ORB (oriented FAST corners, rotated BRIEF descriptors; OpenCV) is free of patents, fast (a few ms on the
working image) and gives 256-bit binary descriptors that compare by Hamming distance, like the rest of the
service. Every image is first brought to the same working size (its long side WORK_SIDE pixels, up or down),
so that the same picture uploaded at any resolution is described at the same scale; what is left, the scale
change of a crop (a 30% crop is enlarged 1.43x), is within ORB's 5-level pyramid (factor 1.2 per level, 2.1x in
all). Uploads are described one level smaller than stored items (QUERY_WORK_SIDE), which costs less and meets a
crop's enlargement half-way; the RANSAC similarity absorbs the fixed 1.2x between the two.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from hashsvc.features.native import opencv

ALGORITHM = "orb"
# Long side of a stored item's working image, pixels. Every stored blob's positions are at this scale and
# verify's RANSAC tolerance is a share of it: changing it would need every stored item re-extracted, which the
# store cannot do (it keeps no pixels).
WORK_SIDE = 384
# Long side of an upload's working image: one pyramid level (1.2x) below WORK_SIDE. A 10-30% crop is enlarged
# 1.1-1.4x against its original, so its corners land closer to the stored scale, at two thirds of the pixels
# (extraction CPU about 3.9 -> 3.1 ms per ~1 MP upload). In-between sides (352) lost recall: half a level off.
QUERY_WORK_SIDE = 320
MAX_STORED = 256  # descriptors kept per stored item: 256 x (32 B descriptor + 8 B position) = 10 KiB
# Descriptors extracted from an upload. The lookup's cost grows linearly with it; extraction barely changes
# (FAST and the pyramid dominate). The strongest 160 kept the crop recall of 256 on the tune half. 128 (round 4):
# a fifth less lookup; through the 10,000-item IVF index the tune half's random-offset crops stayed at 95.6% and
# 4 of its 456 crop edits (side and chained crops) were lost; 100 lost random-offset crops too (93.9%).
MAX_QUERY = 128
DESCRIPTOR_BYTES = 32

# FAST threshold 10 instead of OpenCV's 20: smooth photos (sky, skin, studio backdrops) otherwise give too
# few corners to verify a crop. Pyramid levels: see docs/local-features.md (cost vs recall).
FAST_THRESHOLD = 10
PYRAMID_LEVELS = 5
# How the working image is brought to its side: Pillow's bilinear and box filters (antialiased: every source
# pixel contributes), or OpenCV's bilinear interpolation ("linear": 2 x 2 source pixels per output pixel).
RESAMPLERS = {"bilinear": Image.Resampling.BILINEAR, "box": Image.Resampling.BOX}
# Stored items: Pillow's bilinear (their blobs were extracted so, and new items must match them). Uploads:
# OpenCV's bilinear interpolation: Pillow's filter costs about 0.8 ms of the 1.0 ms the grey working image takes
# per ~1 MP upload, OpenCV's about 0.3, and the tune half's crop recall was the same (92.4%, exact matching);
# Pillow's box filter saved less and lost 1.3 points (docs/local-features.md, round 4).
STORED_RESAMPLE = "bilinear"
QUERY_RESAMPLE = "linear"

@dataclass(frozen=True)
class Features:
    """Keypoints of one image at the working size: positions (n, 2) float32 and descriptors (n, 32) uint8."""

    positions: np.ndarray
    descriptors: np.ndarray

    def __len__(self) -> int:
        return int(self.descriptors.shape[0])

    @classmethod
    def empty(cls) -> Features:
        return cls(np.zeros((0, 2), np.float32), np.zeros((0, DESCRIPTOR_BYTES), np.uint8))


def working_gray(image: Image.Image, side: int = WORK_SIDE, resample: str = STORED_RESAMPLE) -> np.ndarray:
    """The greyscale working image: long side `side` pixels, aspect ratio kept. `resample` is how it is brought
    to that size (RESAMPLERS)."""
    gray = image.convert("L")
    scale = side / max(gray.size)
    size = (max(1, round(gray.width * scale)), max(1, round(gray.height * scale)))
    if size == gray.size:
        return np.asarray(gray)
    if resample == "linear":
        return opencv().resize(np.asarray(gray), size, interpolation=opencv().INTER_LINEAR)
    return np.asarray(gray.resize(size, RESAMPLERS[resample], reducing_gap=2.0))


def extract(
    image: Image.Image, max_features: int = MAX_STORED, side: int = WORK_SIDE, levels: int = PYRAMID_LEVELS,
    resample: str = STORED_RESAMPLE,
) -> Features:
    """ORB features of a decoded image, strongest first, at most `max_features` (an empty set for flat images),
    positions in the working image of long side `side`, found on `levels` pyramid levels."""
    gray = working_gray(image, side, resample)
    orb = opencv().ORB_create(nfeatures=max_features, fastThreshold=FAST_THRESHOLD, nlevels=levels)
    keypoints, descriptors = orb.detectAndCompute(gray, None)
    if descriptors is None or not keypoints:
        return Features.empty()
    order = np.argsort([-kp.response for kp in keypoints], kind="stable")[:max_features]
    positions = np.array([keypoints[i].pt for i in order], dtype=np.float32).reshape(-1, 2)
    return Features(positions, np.ascontiguousarray(descriptors[order], dtype=np.uint8))


def extract_query(image: Image.Image) -> Features:
    """An upload's features, as the match path extracts them (MAX_QUERY at QUERY_WORK_SIDE, QUERY_RESAMPLE)."""
    return extract(image, MAX_QUERY, QUERY_WORK_SIDE, resample=QUERY_RESAMPLE)
