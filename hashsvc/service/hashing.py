"""Use case: image bytes -> every hash the service knows, through the one decoding pipeline."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hashsvc import media
from hashsvc.hashes import compute
from hashsvc.hashes.codec import to_hex


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
) -> ImageHashes:
    """Decode `data` once and compute PDQ, pHash, dHash (on the pixels) and MD5, SHA-256 (on the bytes).

    Raises MediaError for anything that cannot be decoded within the limits.
    """
    frame = media.decode_first(data, limits, rules=rules, work_size=work_size)
    return ImageHashes(
        pdq=compute.pdq(frame.array(), dihedral=dihedral),
        phash=compute.phash(frame.pixels),
        dhash=compute.dhash(frame.pixels),
        md5=compute.md5(data),
        sha256=compute.sha256(data),
        width=frame.width,
        height=frame.height,
        format=frame.format,
    )
