"""pHash and dHash of the eight rotations/flips of an image, each exactly as the image really turned would hash.

Why: a mirrored or rotated re-upload is found by PDQ's dihedral variants, but PDQ often lands just past its
threshold after a further shrink and recompression (mirror + 50% + JPEG q60 left 4 of 41 corpus JPEGs at PDQ
32-40), where the policy needs a pHash or dHash of the same item to corroborate. Those were computed for the
upright query only, so a mirrored query never corroborated.

Exact, not modelled: the variant named k is `compute.phash(compute.hashing_gray(T_k(image)))` for the transform
T_k that `pdq_geometry.pdq_flips_at_full_resolution` uses for PDQ's k-th variant. Two facts make it cheap:
converting to greyscale is per pixel, so it commutes with any transposition; and the box reduction in
`hashing_gray` uses one factor on both axes, so it commutes with transposing (swapping the axes) but not with
reversing one (its incomplete last box moves to the other side). So four reductions (upright, and reversed
left-right, top-bottom, both) serve all eight views; the 32x32 LANCZOS resize of pHash and the 9x8 one of dHash
run per view (Pillow resizes one axis after the other with 8-bit rounding between, so they do not commute with
a transpose).
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


def dihedral_short_hashes(image: Image.Image) -> dict[str, tuple[bytes, bytes]]:
    """Variant name -> (pHash, dHash) for the eight rotations/flips of `image`, in DIHEDRAL_VARIANTS order.

    The resizes are Pillow's, per view, as imagehash does them; the DCT, median and bit packing that follow run
    once over the eight thumbnails stacked (the same 1-D transforms per row and column, so the same bits as
    imagehash gives each one; tests/test_dihedral_short_hashes.py checks this against `compute`)."""
    gray = image.convert("L")
    reduced: dict[Image.Transpose | None, Image.Image] = {}
    small, tiny = [], []
    for name in DIHEDRAL_VARIANTS:
        mirror, transpose = _PLAN[name]
        if mirror not in reduced:
            reduced[mirror] = _reduce(gray if mirror is None else gray.transpose(mirror))
        view = reduced[mirror].transpose(T.TRANSPOSE) if transpose else reduced[mirror]
        small.append(np.asarray(view.resize((32, 32), Image.Resampling.LANCZOS)))
        tiny.append(np.asarray(view.resize((9, 8), Image.Resampling.LANCZOS)))
    dct = scipy.fftpack.dct(scipy.fftpack.dct(np.stack(small), axis=1), axis=2)[:, :8, :8]
    median = np.median(dct.reshape(len(small), 64), axis=1)
    phashes = np.packbits(dct.reshape(len(small), 64) > median[:, None], axis=1)
    stacked = np.stack(tiny)
    dhashes = np.packbits((stacked[:, :, 1:] > stacked[:, :, :-1]).reshape(len(tiny), 64), axis=1)
    return {name: (phashes[k].tobytes(), dhashes[k].tobytes()) for k, name in enumerate(DIHEDRAL_VARIANTS)}
