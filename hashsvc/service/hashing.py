"""Use case: image bytes -> every hash the service knows, through the one decoding pipeline."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from hashsvc import media
from hashsvc.features import Features
from hashsvc.features import extract as extract_features
from hashsvc.features.orb import STORED_RESAMPLE, WORK_SIDE
from hashsvc.hashes import augment, compute, dihedral64, pdq_geometry
from hashsvc.hashes.codec import to_hex

# Peak bytes hashing spends per pixel of the decoded frame (it counts towards the decode budget, see
# media_cost). Measured on unreduced 799 x 3000 frames: 22-30 B/px for the plain and query hashes, 78 with the
# index views (15 crops at full size).
_HASH_BYTES_PER_PIXEL = {None: 32, "query": 32, "index": 80}


@dataclass(frozen=True)
class ExtraHashes:
    """Perceptual hashes of an edited view of the same decoded image (its borders trimmed, a central crop)."""

    label: str
    pdq: compute.PdqResult
    phash: bytes | None  # None for index-time crops: see _extras
    dhash: bytes | None
    # variant -> (pHash, dHash) of the view's 8 rotations/flips, when its PDQ has them (see dihedral64)
    short_variants: dict[str, tuple[bytes, bytes]] | None = None


@dataclass(frozen=True)
class ImageHashes:
    pdq: compute.PdqResult
    phash: bytes
    dhash: bytes
    md5: bytes
    sha256: bytes
    width: int
    height: int
    format: str
    extras: tuple[ExtraHashes, ...] = ()
    short_variants: dict[str, tuple[bytes, bytes]] | None = None  # with `dihedral`: see dihedral64
    features: Features | None = None  # local features (ORB), when asked for: see hashsvc.features

    def codes(self) -> dict[str, bytes]:
        """Algorithm name -> packed code, the shape the index and store take."""
        return {"pdq": self.pdq.code, "phash": self.phash, "dhash": self.dhash, "md5": self.md5, "sha256": self.sha256}

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape used by the CLI and the API."""
        return {
            "pdq": {"value": to_hex(self.pdq.code), "quality": self.pdq.quality},
            "phash": to_hex(self.phash),
            "dhash": to_hex(self.dhash),
            "md5": to_hex(self.md5),
            "sha256": to_hex(self.sha256),
            "width": self.width,
            "height": self.height,
        }


def hash_image(
    data: bytes,
    limits: media.Limits | None = None,
    *,
    dihedral: bool = False,
    rules: media.PixelRules = media.PixelRules.HASHSVC,
    work_size: int | None = media.DEFAULT_WORK_SIZE,
    extras: str | None = None,
    crops: tuple[float, ...] = augment.DEFAULT_CROPS,
    features: int = 0,
    feature_side: int = WORK_SIDE,
    feature_resample: str = STORED_RESAMPLE,
) -> ImageHashes:
    """Decode `data` once and compute PDQ, pHash, dHash (on the pixels) and MD5, SHA-256 (on the bytes).

    `extras` adds hashes of edited views of the same pixels, the changes the robustness benchmark justified
    (docs/robustness.md): "query" = the views of `augment.query_time_variants` (added borders, bars, caption or
    screen chrome trimmed; a small rotation undone), each with its dihedral PDQ where it says so; "index" = the
    views of `augment.index_time_variants` (the trimmed picture and a grid of `crops`), stored with an item so
    that cropped or re-framed re-uploads match. `features` > 0 extracts up to that many local features from the
    same decoded frame (hashsvc.features: the crop-robust second stage), so an upload is decoded once, here, at a
    working image of long side `feature_side`, resized by `feature_resample` (stored items: WORK_SIDE, STORED_RESAMPLE;
    uploads: QUERY_WORK_SIDE, QUERY_RESAMPLE).
    Raises MediaError for anything that cannot be decoded within the limits.
    """
    frame = media.decode_first(
        data, limits, rules=rules, work_size=work_size, hash_bytes_per_pixel=_HASH_BYTES_PER_PIXEL.get(extras, 80)
    )
    if dihedral:
        variants = dihedral64.dihedral_short_hashes(frame.pixels)
        short = variants["original"]
    else:
        variants, gray = None, compute.hashing_gray(frame.pixels)
        short = compute.phash(gray), compute.dhash(gray)
    return ImageHashes(
        pdq=_pdq(frame, dihedral),
        phash=short[0],
        dhash=short[1],
        md5=compute.md5(data),
        sha256=compute.sha256(data),
        width=frame.width,
        height=frame.height,
        format=frame.format,
        extras=_extras(frame.pixels, extras, crops),
        short_variants=variants,
        features=extract_features(frame.pixels, features, feature_side, resample=feature_resample)
        if features > 0 else None,
    )


def _extras(pixels: Image.Image, which: str | None, crops: tuple[float, ...]) -> tuple[ExtraHashes, ...]:
    if which == "query":
        return tuple(_view_hashes(label, view, dihedral, short=True)
                     for label, view, dihedral in augment.query_time_variants(pixels))
    if which == "index":
        # Crops get PDQ only: a 64-bit hash per crop would multiply the chance hits of the pHash and dHash
        # indexes (each one a store read on the match path) for little gain, since pHash shrugs off the small
        # crops PDQ misses and the image's own pHash is what corroborates a near PDQ match.
        return tuple(_view_hashes(label, view, False, short=label in ("trim", "strict"))
                     for label, view in augment.index_time_variants(pixels, crops))
    if which is None:
        return ()
    raise ValueError(f"unknown extras {which!r}")


def _view_hashes(label: str, view: Image.Image, dihedral: bool, short: bool) -> ExtraHashes:
    pixels = np.asarray(view)
    pdq = _true_dihedral(pixels, view.height, view.width) if dihedral else compute.pdq(pixels)
    if not short:
        return ExtraHashes(label, pdq, None, None)
    if dihedral:
        variants = dihedral64.dihedral_short_hashes(view)
        return ExtraHashes(label, pdq, *variants["original"], short_variants=variants)
    gray = compute.hashing_gray(view)
    return ExtraHashes(label, pdq, compute.phash(gray), compute.dhash(gray))


def _pdq(frame: media.DecodedImage, dihedral: bool) -> compute.PdqResult:
    """PDQ as the naive full-resolution pipeline would compute it.

    When the frame was decoded at reduced scale, `pdq_geometry` evaluates PDQ's full-resolution filter grid on
    the reduced pixels (median 0 bits from a full decode, where running pdqhash on the reduced image was 4-5
    bits off); otherwise Meta's own pdqhash runs on the pixels as they are. With `dihedral`, the eight
    rotations/flips are hashed as really rotated images (see `pdq_geometry.pdq_flips_at_full_resolution`).
    """
    rgb = frame.array()
    if dihedral:
        return _true_dihedral(rgb, frame.height, frame.width)
    if rgb.shape[:2] == (frame.height, frame.width):
        return compute.pdq(rgb)
    code, quality = pdq_geometry.pdq_at_full_resolution(rgb, frame.height, frame.width)
    return compute.PdqResult(code, quality)


def _true_dihedral(rgb: np.ndarray, height: int, width: int) -> compute.PdqResult:
    codes, quality = pdq_geometry.pdq_flips_at_full_resolution(rgb, height, width)
    return compute.PdqResult(codes[0], quality, dict(zip(compute.DIHEDRAL_VARIANTS, codes, strict=True)))
