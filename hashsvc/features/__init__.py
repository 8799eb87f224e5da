"""Local features: the crop- and shift-robust second stage for items added from images.

PDQ and the 64-bit hashes see the whole frame, so a crop that moves the picture by more than a few per cent
changes them past any safe threshold. Keypoint descriptors describe small patches around corners wherever they
are, so a crop keeps most of them; a geometric check (one similarity transform that carries many of the query's
keypoints onto the stored ones) turns descriptor hits into evidence that survives chance agreement.

* `extract`: pixels -> `Features` (ORB keypoints and 256-bit descriptors, at most a fixed number per image);
  `extract_query` the same for an upload (fewer, from a smaller working image: see orb.QUERY_WORK_SIDE);
* `verify`: stored features + query features -> `Verification` (inliers, inlier ratio): the pure function the
  benchmark and the service share;
* `codec`: `Features` <-> bytes, the form stored in the store and in snapshots;
* `index.FeatureIndex`: every stored item's descriptors in one FAISS binary index, for the lookup.

The numbers behind every bound are in docs/local-features.md.
"""

from hashsvc.features.orb import (
    ALGORITHM,
    MAX_QUERY,
    MAX_STORED,
    QUERY_RESAMPLE,
    QUERY_WORK_SIDE,
    Features,
    extract,
    extract_query,
)
from hashsvc.features.verify import Verification, correspondences, verify, verify_pairs

__all__ = [
    "ALGORITHM",
    "MAX_QUERY",
    "MAX_STORED",
    "QUERY_RESAMPLE",
    "QUERY_WORK_SIDE",
    "Features",
    "Verification",
    "correspondences",
    "extract",
    "extract_query",
    "verify",
    "verify_pairs",
]
