"""The local-feature stage of a video match: after the hash stage (vPDQ), for query videos it did not block.

Flow: the query's frames' ORB features were extracted in the sandbox job that hashed it (`hash_video(keyframes=
...)`, at most features.video.MAX_QUERY_FRAMES frames); each frame's descriptors are looked up among the video
items' keyframes (`LiveFeatures.video`), the store says which candidate items may match now (active, enabled
bank, the bank's feature stage on: the same switch as for images), every (query frame, keyframe) candidate is
verified with RANSAC, and `features.video.RULE` decides: enough distinct query frames verified against one
item. A match is reported with algorithm "orb", variant "video", the most inliers of a frame, the number of
query frames verified and the time ranges on both sides.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Engine

from hashsvc.features import video as video_features
from hashsvc.features.codec import FeatureCodecError
from hashsvc.features.index import FeatureIndex
from hashsvc.hashes import vpdq
from hashsvc.service import feature_stage, policy
from hashsvc.store.features import feature_owners, features_of

VARIANT = "video"


def wanted(result: dict[str, Any], keyframes: Sequence[video_features.Keyframe]) -> bool:
    """Whether the stage runs: the query has frames with features and the hash stage did not already block."""
    return bool(keyframes) and result["decision"] != "block"


def find(
    index: FeatureIndex, engine: Engine, query: Sequence[video_features.Keyframe], gap_s: float
) -> list[dict[str, Any]]:
    """The video items the query's frames verify against under features.video.RULE, most severe first."""
    owners: dict[int, Any] = {}

    def allowed(items: set[int]) -> set[int]:
        owners.update(feature_owners(engine, sorted(items)))
        return set(owners)

    rule = video_features.RULE
    hits = video_features.frame_hits(index, query, min_pairs=rule.min_inliers, allowed=allowed)
    passing = {item: found for item, found in hits.items() if rule.passes(found)}
    if not passing:
        return []
    times = _keyframe_times(engine, list(passing))
    matches = []
    for item_id, found in passing.items():
        owner = owners[item_id]
        counted = [h for h in found if rule.frame_counts(h.verification)]
        item_times = times.get(item_id, ())
        best = max(counted, key=lambda h: h.verification.inliers)
        matches.append({
            **feature_stage.described(owner, VARIANT, best.verification),
            "frames": len(counted),
            "action": owner.action,
            "query_time_ranges": vpdq.time_ranges((h.query_time for h in counted), gap_s),
            "item_time_ranges": vpdq.time_ranges(
                (item_times[h.keyframe] for h in counted if h.keyframe < len(item_times)), gap_s
            ),
        })
    matches.sort(key=lambda m: (-policy.SEVERITY[m["action"]], -m["frames"], -m["inliers"], m["item_id"]))
    return matches


def _keyframe_times(engine: Engine, item_ids: list[int]) -> dict[int, list[float]]:
    """Each matched item's keyframe times, read back from its stored blob (the index holds no times)."""
    times = {}
    for item_id, row in features_of(engine, item_ids).items():
        if row.algorithm != video_features.ALGORITHM:
            continue
        try:
            times[item_id] = [k.timestamp for k in video_features.decode(row.data)]
        except FeatureCodecError:
            continue  # the match stands; only its item times are unknown
    return times
