"""The hashers: pure functions from normalized pixels (or original bytes) to packed hash codes.

PDQ comes from `pdqhash` (Meta's reference C++ through bindings); pHash and dHash from imagehash, whose exact
definitions (32x32 LANCZOS greyscale DCT; 9x8 gradient) are what partners' lists were made with.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import imagehash
import numpy as np
import pdqhash
from PIL import Image

from hashsvc.hashes.codec import bits_to_bytes

# The order pdqhash.compute_dihedral returns its eight hashes in (checked against Meta's dih/ test files).
DIHEDRAL_VARIANTS: tuple[str, ...] = (
    "original",
    "rot90",
    "rot180",
    "rot270",
    "flipx",
    "flipy",
    "flipplus1",
    "flipminus1",
)


@dataclass(frozen=True)
class PdqResult:
    code: bytes  # 32 bytes, MSB-first
    quality: int  # 0..100; below 50 the hash says little about the image (flat, dark, tiny)
    variants: dict[str, bytes] | None = None  # the 8 dihedral hashes, when asked for


def pdq(rgb: np.ndarray, *, dihedral: bool = False) -> PdqResult:
    """PDQ of an (H, W, 3) uint8 RGB array; with `dihedral`, also the hashes of its 7 rotations/flips."""
    pixels = np.ascontiguousarray(rgb, dtype=np.uint8)
    if dihedral:
        vectors, quality = pdqhash.compute_dihedral(pixels)
        variants = {name: bits_to_bytes(v) for name, v in zip(DIHEDRAL_VARIANTS, vectors, strict=True)}
        return PdqResult(variants["original"], int(quality), variants)
    vector, quality = pdqhash.compute(pixels)
    return PdqResult(bits_to_bytes(vector), int(quality))


# pHash samples a 32x32 grid; shrinking the greyscale image by whole-number box steps to no less than 6x that
# before imagehash's LANCZOS resize halves the cost and stays within 2 bits of imagehash on the full image
# (measured over the 422 corpus images: max 2, mean 0.1 bits).
REDUCING_GAP = 6


def hashing_gray(image: Image.Image) -> Image.Image:
    """The greyscale image pHash and dHash are computed from (one conversion shared by both)."""
    gray = image.convert("L")
    factor = min(gray.size) // (32 * REDUCING_GAP)
    return gray.reduce(factor) if factor >= 2 else gray


def phash(image: Image.Image) -> bytes:
    """imagehash's pHash (64 bits) of a PIL image."""
    return bits_to_bytes(imagehash.phash(image).hash)


def dhash(image: Image.Image) -> bytes:
    """imagehash's dHash (64 bits) of a PIL image."""
    return bits_to_bytes(imagehash.dhash(image).hash)


def md5(data: bytes) -> bytes:
    return hashlib.md5(data, usedforsecurity=False).digest()


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()
