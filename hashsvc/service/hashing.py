"""Use case: image bytes -> every hash the service knows, through the one decoding pipeline."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from hashsvc import media
from hashsvc.hashes import augment, compute, pdq_geometry
from hashsvc.hashes.codec import to_hex


@dataclass(frozen=True)
class ExtraHashes:
    """Perceptual hashes of an edited view of the same decoded image (its borders trimmed, a central crop)."""

    label: str
    pdq: compute.PdqResult
    phash: bytes
    dhash: bytes


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
) -> ImageHashes:
    """Decode `data` once and compute PDQ, pHash, dHash (on the pixels) and MD5, SHA-256 (on the bytes).

    `extras` adds hashes of edited views of the same pixels, the changes the robustness benchmark justified
    (docs/robustness.md): "query" = the picture with added borders, letterbox bars, caption bars or screen
    chrome trimmed (when there are any), with its dihedral PDQ; "index" = that trimmed picture and central
    90% / 80% crops, for storing with an item so that cropped re-uploads match.
    Raises MediaError for anything that cannot be decoded within the limits.
    """
    frame = media.decode_first(data, limits, rules=rules, work_size=work_size)
    gray = compute.hashing_gray(frame.pixels)
    return ImageHashes(
        pdq=_pdq(frame, dihedral),
        phash=compute.phash(gray),
        dhash=compute.dhash(gray),
        md5=compute.md5(data),
        sha256=compute.sha256(data),
        width=frame.width,
        height=frame.height,
        format=frame.format,
        extras=_extras(frame.pixels, extras),
    )


def _extras(pixels: Image.Image, which: str | None) -> tuple[ExtraHashes, ...]:
    if which == "query":
        trimmed = augment.trim_borders(pixels)
        views = [("trim", trimmed)] if trimmed is not None else []
        dihedral = True
    elif which == "index":
        views = augment.index_time_variants(pixels)
        dihedral = False
    elif which is None:
        return ()
    else:
        raise ValueError(f"unknown extras {which!r}")
    return tuple(
        ExtraHashes(
            label,
            compute.pdq(np.asarray(view), dihedral=dihedral),
            compute.phash(gray := compute.hashing_gray(view)),
            compute.dhash(gray),
        )
        for label, view in views
    )


def _pdq(frame: media.DecodedImage, dihedral: bool) -> compute.PdqResult:
    """PDQ as the naive full-resolution pipeline would compute it.

    When the frame was decoded at reduced scale, `pdq_geometry` evaluates PDQ's full-resolution filter grid on
    the reduced pixels (median 0 bits from a full decode, where running pdqhash on the reduced image was 4-5
    bits off); otherwise Meta's own pdqhash runs on the pixels as they are.
    """
    rgb = frame.array()
    if rgb.shape[:2] == (frame.height, frame.width):
        return compute.pdq(rgb, dihedral=dihedral)
    if dihedral:
        codes, quality = pdq_geometry.pdq_dihedral_at_full_resolution(rgb, frame.height, frame.width)
        return compute.PdqResult(codes[0], quality, dict(zip(compute.DIHEDRAL_VARIANTS, codes, strict=True)))
    code, quality = pdq_geometry.pdq_at_full_resolution(rgb, frame.height, frame.width)
    return compute.PdqResult(code, quality)
