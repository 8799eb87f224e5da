"""pHash and dHash of the eight rotations/flips of an image, derived from the upright view's thumbnails.

Why: a mirrored or rotated re-upload is found by PDQ's dihedral variants, but PDQ often lands just past its
threshold after a further shrink and recompression (mirror + 50% + JPEG q60 left 4 of 41 corpus JPEGs at PDQ
32-40), where the policy needs a pHash or dHash of the same item to corroborate. Those were computed for the
upright query only, so a mirrored query never corroborated.

How, cheaply (issue 12, round 2): the variant named k stands for `compute.phash(compute.hashing_gray(T_k(image)))`
with T_k the transform `pdq_geometry.pdq_flips_at_full_resolution` uses for PDQ's k-th variant. Instead of
turning the image and resizing it eight times, the upright view is reduced and resized once:
* pHash: mirroring a 32x32 thumbnail multiplies its DCT-II coefficient (u, v) by (-1)^v (left-right) or (-1)^u
  (top-bottom), and transposing it transposes the coefficients; so the 8x8 low-frequency block of every turn is
  a sign pattern and/or a transpose of the upright block, and only the median and the comparison are per turn.
* dHash: the 9x8 thumbnail mirrored gives the turned rows' differences; the four turns that swap the axes need
  the 8x9 thumbnail (transposed), so two tiny resizes serve all eight.
This is exact for the DCT and the differences, not for the thumbnails: Pillow's box reduction leaves its
incomplete last box on the other side of a mirrored image, and its two-pass resize rounds to 8 bits between the
passes, in the other order for a transposed image. tests/test_dihedral_short_hashes.py measures the difference
against imagehash on the really turned corpus photos (a few bits at most, 0 for most); the variants only
corroborate a PDQ match, and docs/robustness.md measures the recall with them.
"""

from __future__ import annotations

import numpy as np
import scipy.fftpack
from PIL import Image

from hashsvc.hashes.compute import DIHEDRAL_VARIANTS, REDUCING_GAP

T = Image.Transpose

# The image transform behind each of PDQ's dihedral variants (pdq_geometry: rot90 = transpose(fliplr),
# rot270 = transpose(flipud), flipx reverses the rows, flipy the columns, flipplus1 is the transpose).
VARIANT_TRANSPOSE: dict[str, Image.Transpose | None] = {
    "original": None,
    "rot90": T.ROTATE_90,
    "rot180": T.ROTATE_180,
    "rot270": T.ROTATE_270,
    "flipx": T.FLIP_TOP_BOTTOM,
    "flipy": T.FLIP_LEFT_RIGHT,
    "flipplus1": T.TRANSPOSE,
    "flipminus1": T.TRANSVERSE,
}
assert tuple(VARIANT_TRANSPOSE) == DIHEDRAL_VARIANTS

# Each variant as (which axes are reversed before reducing, whether the reduced image is then transposed):
# ROTATE_90 = TRANSPOSE of the left-right mirror, ROTATE_270 = TRANSPOSE of the top-bottom mirror, TRANSVERSE =
# TRANSPOSE of the half turn.
_PLAN: dict[str, tuple[Image.Transpose | None, bool]] = {
    "original": (None, False),
    "rot90": (T.FLIP_LEFT_RIGHT, True),
    "rot180": (T.ROTATE_180, False),
    "rot270": (T.FLIP_TOP_BOTTOM, True),
    "flipx": (T.FLIP_TOP_BOTTOM, False),
    "flipy": (T.FLIP_LEFT_RIGHT, False),
    "flipplus1": (None, True),
    "flipminus1": (T.ROTATE_180, True),
}


def _reduce(gray: Image.Image) -> Image.Image:
    """`compute.hashing_gray`'s reduction of an image that is greyscale already."""
    factor = min(gray.size) // (32 * REDUCING_GAP)
    return gray.reduce(factor) if factor >= 2 else gray


# Per variant: (mirror left-right, mirror top-bottom, then transpose), the transform applied to a thumbnail of
# the upright view. ROTATE_90 = TRANSPOSE of the left-right mirror, ROTATE_270 = TRANSPOSE of the top-bottom
# mirror, TRANSVERSE = TRANSPOSE of the half turn (as _PLAN).
_TURNS: dict[str, tuple[bool, bool, bool]] = {
    name: (mirror in (T.FLIP_LEFT_RIGHT, T.ROTATE_180), mirror in (T.FLIP_TOP_BOTTOM, T.ROTATE_180), transpose)
    for name, (mirror, transpose) in _PLAN.items()
}
_ALTERNATING = (-1.0) ** np.arange(8)  # (-1)^k: the sign of DCT coefficient k under a mirror of its axis


def _turned(block: np.ndarray, left_right: bool, top_bottom: bool, transpose: bool) -> np.ndarray:
    """An array indexed [row, column] (pixels or DCT coefficients) as the turned image's would be."""
    out = block[:, ::-1] if left_right else block
    out = out[::-1, :] if top_bottom else out
    return out.T if transpose else out


def dihedral_short_hashes(image: Image.Image) -> dict[str, tuple[bytes, bytes]]:
    """Variant name -> (pHash, dHash) for the eight rotations/flips of `image`, in DIHEDRAL_VARIANTS order; the
    "original" pair is exactly imagehash's on `compute.hashing_gray(image)`."""
    reduced = _reduce(image.convert("L"))
    small = np.asarray(reduced.resize((32, 32), Image.Resampling.LANCZOS), dtype=np.float64)
    # imagehash.phash: DCT over axis 0 then axis 1, the 8x8 low-frequency block, bits above its median.
    dct = scipy.fftpack.dct(scipy.fftpack.dct(small, axis=0), axis=1)[:8, :8]
    wide = np.asarray(reduced.resize((9, 8), Image.Resampling.LANCZOS), dtype=np.int16)  # 8 rows of 9
    tall = np.asarray(reduced.resize((8, 9), Image.Resampling.LANCZOS), dtype=np.int16)  # 9 rows of 8
    out = {}
    for name in DIHEDRAL_VARIANTS:
        left_right, top_bottom, transpose = _TURNS[name]
        # Coefficient (u, v) of the mirrored thumbnail: (-1)^v times the upright one (left-right), (-1)^u
        # (top-bottom); then the transpose. The same as _turned's index shuffle, applied to the signs.
        signs = np.outer(_ALTERNATING if top_bottom else np.ones(8), _ALTERNATING if left_right else np.ones(8))
        block = dct * signs
        block = block.T if transpose else block
        phash = np.packbits(block.ravel() > np.median(block))
        thumb = _turned(tall if transpose else wide, left_right, top_bottom, transpose)  # 8 rows of 9
        dhash = np.packbits((thumb[:, 1:] > thumb[:, :-1]).ravel())
        out[name] = (phash.tobytes(), dhash.tobytes())
    return out
