"""Allowlist banks: known-benign images whose perceptual matches elsewhere are not to be acted on.

A bank whose action is `allow` holds hashes of images that are known to collide with listed ones (a stock photo, a
meme template, a flat logo). When an upload matches an allowlisted item within that bank's thresholds, the
upload's perceptual matches (PDQ, pHash, dHash) in other banks are suppressed if the allowlist match, for the same
algorithm, is strictly the closer one. A tie is not suppressed: the allowlist must explain the upload better than
the listed item does. Exact matches (MD5, SHA-256) are never suppressed, whatever the allowlist says: the very same
bytes are not a near-duplicate. Every suppression is returned so that the event keeps it.
"""

from __future__ import annotations

from typing import Any

from hashsvc.hashes import ALGORITHMS
from hashsvc.store.owners import HashOwner

ALLOW = "allow"


def suppress(found: dict[int, tuple[str, int, str]], owners: dict[int, HashOwner]) -> list[dict[str, Any]]:
    """Remove suppressed candidates from `found` (hash id -> (algorithm, distance, variant)); return what went."""
    closest: dict[str, tuple[int, HashOwner]] = {}
    for hash_id, (algorithm, distance, _variant) in found.items():
        owner = owners.get(hash_id)
        if owner is None or owner.action != ALLOW or not ALGORITHMS[algorithm].perceptual:
            continue
        if distance > owner.thresholds.get(algorithm, ALGORITHMS[algorithm].default_threshold):
            continue
        if algorithm not in closest or distance < closest[algorithm][0]:
            closest[algorithm] = (distance, owner)
    if not closest:
        return []
    suppressed = []
    for hash_id, (algorithm, distance, variant) in list(found.items()):
        owner = owners.get(hash_id)
        if owner is None or owner.action == ALLOW or algorithm not in closest:
            continue
        allow_distance, allow_owner = closest[algorithm]
        if allow_distance < distance:
            del found[hash_id]
            suppressed.append(
                {
                    "bank": owner.bank,
                    "item_id": owner.item_id,
                    "algorithm": algorithm,
                    "distance": distance,
                    "variant": variant,
                    "by": {"bank": allow_owner.bank, "item_id": allow_owner.item_id, "distance": allow_distance},
                }
            )
    suppressed.sort(key=lambda s: (s["item_id"], s["algorithm"], s["distance"]))
    return suppressed
