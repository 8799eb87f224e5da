"""Descriptor hits -> a geometric verdict: how many keypoints one similarity transform carries onto the item.

Chance agreement between descriptors of unrelated images is common (256-bit ORB descriptors of two unrelated
corners are within 64 bits of each other now and then, and textures repeat), but chance agreement on *where*
the keypoints are is not: RANSAC looks for one rotation + uniform scale + shift that maps many query keypoints
onto their matched stored keypoints within a few pixels. A crop, a rescale, a recompression and a small rotation
all are such a transform; an unrelated picture is not.

`verify(stored, query)` is the whole rule for one (item, upload) pair, the function the benchmark evaluates;
the service gets its correspondences from the global index instead (`FeatureIndex.candidates`) and calls
`verify_pairs` with them, so both apply the same descriptor radius and the same geometry.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hashsvc.features import orb
from hashsvc.features.native import opencv
from hashsvc.features.orb import Features

MAX_DESCRIPTOR_DISTANCE = 64  # of 256 bits: a correspondence is a query descriptor's nearest stored one within this
REPROJECTION_SHARE = 1 / 128  # RANSAC's inlier distance, as a share of the working image's long side (3 px at 384)
MIN_PAIRS = 6  # fewer correspondences cannot make a match under any threshold the policy uses
_RANSAC_ITERATIONS = 500
_CONFIDENCE = 0.995


@dataclass(frozen=True)
class Verification:
    inliers: int  # correspondences the best similarity transform explains
    pairs: int  # correspondences found (query descriptors with a stored one within the radius)

    @property
    def ratio(self) -> float:
        return self.inliers / self.pairs if self.pairs else 0.0


NO_MATCH = Verification(0, 0)



def one_to_one(query_rows: np.ndarray, stored_rows: np.ndarray, distances: np.ndarray) -> np.ndarray:
    """Indexes of the candidate pairs to keep: per stored keypoint only its closest query keypoint.

    Without it, one distinctive stored corner that many query descriptors land on (a repeated texture, a
    logo) would count as many inliers."""
    order = np.lexsort((query_rows, distances, stored_rows))
    first = np.ones(len(order), dtype=bool)
    first[1:] = stored_rows[order][1:] != stored_rows[order][:-1]
    return np.sort(order[first])


def correspondences(stored: Features, query: Features) -> tuple[np.ndarray, np.ndarray]:
    """(query positions, stored positions): each query descriptor's nearest stored descriptor within
    MAX_DESCRIPTOR_DISTANCE bits, then one query keypoint per stored keypoint."""
    if not len(stored) or not len(query):
        return np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32)
    cv2 = opencv()
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING)  # exact nearest neighbour (SIMD popcount); cheap to make
    matches = matcher.match(np.ascontiguousarray(query.descriptors), np.ascontiguousarray(stored.descriptors))
    found = np.array([(m.queryIdx, m.trainIdx, m.distance) for m in matches], dtype=np.int64).reshape(-1, 3)
    found = found[found[:, 2] <= MAX_DESCRIPTOR_DISTANCE]
    keep = one_to_one(found[:, 0], found[:, 1], found[:, 2])
    return query.positions[found[keep, 0]], stored.positions[found[keep, 1]]


def verify_pairs(query_xy: np.ndarray, stored_xy: np.ndarray) -> Verification:
    """RANSAC over one similarity transform (cv2.estimateAffinePartial2D) mapping query to stored positions."""
    pairs = len(query_xy)
    if pairs < MIN_PAIRS:
        return Verification(0, pairs)
    cv2 = opencv()
    _, mask = cv2.estimateAffinePartial2D(
        np.ascontiguousarray(query_xy, dtype=np.float32).reshape(-1, 1, 2),
        np.ascontiguousarray(stored_xy, dtype=np.float32).reshape(-1, 1, 2),
        method=cv2.RANSAC,
        ransacReprojThreshold=orb.WORK_SIDE * REPROJECTION_SHARE,
        maxIters=_RANSAC_ITERATIONS,
        confidence=_CONFIDENCE,
        refineIters=0,
    )
    if mask is None:
        return Verification(0, pairs)
    return Verification(int(mask.sum()), pairs)


def verify(stored: Features, query: Features) -> Verification:
    """The geometric verdict for one stored item and one upload (the pure rule the benchmark evaluates)."""
    return verify_pairs(*correspondences(stored, query))
