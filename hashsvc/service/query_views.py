"""The views of an image query, as the match path names them, and what the policy needs to know about each.

A query image is looked up as several views (the upload, its trimmed or framed pictures, a small rotation undone:
`hashes.augment.query_time_variants`), most of them also through their eight rotations/flips. Each code sent to
the index carries a variant name: "original" and the rotation names ("rot90", "flipx", ...) for the upload
itself; "trim", "trim:rot90", "frame1:flipy", "upright" for the other views. This module turns an
`ImageHashes` into those (variant, code) lists for pHash and dHash (PDQ's are built in service.py), and says,
per variant, which view it came from, whether it was turned, and the view's information measures (its PDQ
quality and the minority bits of its dHash, see `hashes.information` and `policy.informative`).
"""

from __future__ import annotations

from dataclasses import dataclass

from hashsvc.hashes.compute import DIHEDRAL_VARIANTS
from hashsvc.hashes.information import minority_bits
from hashsvc.service.hashing import ImageHashes

_TURNS = frozenset(DIHEDRAL_VARIANTS[1:])


@dataclass(frozen=True)
class ViewMeasures:
    quality: int | None  # the view's PDQ quality
    dhash_bits: int | None  # minority bits of the view's upright dHash


def view_of(variant: str) -> str:
    """The view a variant name belongs to: "original" for the upload and its rotations, else the view label."""
    if variant in _TURNS:
        return "original"
    return variant.split(":", 1)[0]


def is_turned(variant: str) -> bool:
    """Whether the variant is a rotation or flip of its view."""
    return variant in _TURNS or variant.split(":", 1)[-1] in _TURNS


def short_codes(hashes: ImageHashes) -> dict[str, list[tuple[str, bytes]]]:
    """"phash" / "dhash" -> [(variant, code)]: every view's upright code first, then its rotations/flips where
    they were computed (a dihedral query); views without 64-bit hashes are left out."""
    codes: dict[str, list[tuple[str, bytes]]] = {"phash": [("original", hashes.phash)],
                                                 "dhash": [("original", hashes.dhash)]}
    views = [("", hashes.short_variants)]
    for extra in hashes.extras:
        if extra.phash is not None and extra.dhash is not None:
            codes["phash"].append((extra.label, extra.phash))
            codes["dhash"].append((extra.label, extra.dhash))
            views.append((f"{extra.label}:", extra.short_variants))
    for prefix, variants in views:
        for name in DIHEDRAL_VARIANTS[1:]:
            if variants is not None:
                codes["phash"].append((prefix + name, variants[name][0]))
                codes["dhash"].append((prefix + name, variants[name][1]))
    return codes


def measures(hashes: ImageHashes) -> dict[str, ViewMeasures]:
    """View label -> its information measures."""
    out = {"original": ViewMeasures(hashes.pdq.quality, minority_bits(hashes.dhash))}
    for extra in hashes.extras:
        out[extra.label] = ViewMeasures(extra.pdq.quality, None if extra.dhash is None else minority_bits(extra.dhash))
    return out
