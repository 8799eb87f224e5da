"""PDQ of the full-resolution image, computed from a reduced decode.

`media` decodes big JPEGs at 1/2, 1/4 or 1/8 scale (and box-reduces other formats by an integer factor), which
is what makes hashing cheap. But PDQ is defined on the pixel grid it is given: its two Jarosz box-filter passes
per axis use a window derived from the image size, and its 64x64 decimation samples pixel
floor((i + 0.5) * size / 64). Running `pdqhash.compute` on the reduced image therefore hashes a different
function of the picture than the naive full-decode pipeline, and the two differ by several bits.

Everything PDQ does before thresholding is linear and separable in the grey image G (H x W):

    buffer64 = Mr @ G @ Mc.T        with Mr = decimate . box . box along the rows (64 x H), Mc likewise (64 x W)
    dct16    = D @ buffer64 @ D.T   (D: PDQ's 16 x 64 DCT-II rows 1..16)

and the full-resolution grey image is, to a very good approximation, the reduced one upsampled bilinearly
(G_full ~ Ur @ G_red @ Uc.T, the upsampling that reproduces the naive hash exactly in experiments). So

    buffer64 ~ (Mr @ Ur) @ G_red @ (Mc @ Uc).T

where the 64 x n_reduced matrices Mr @ Ur depend only on (full size, reduced size, scale) and are cached as
bands (each output has only ~14-24 nonzero taps). The per-image cost is a gather-and-contract over the reduced
image, a few milliseconds, instead of a full decode + filter.

With no reduction (scale 1) this is an exact reimplementation of `pdqhash.compute`: same luma, same box-filter
edge handling, same decimation, same DCT, same median (Torben's, which yields the 128th smallest value) and
bit order, same quality metric. Only the floating-point summation order differs (we sum in float64, PDQ keeps
a running float32 sum), which matters for a coefficient within ~1e-3 of the median: on 1,500 random images of
65-400 px, 3 differed (one by 2 bits, two by 1 in quality). At 64 px or less PDQ's decimation repeats rows and
exact ties at the median appear, so the two can disagree more; `hashing.hash_image` uses this module only on
reduced decodes (hundreds of px), and pdqhash itself otherwise.
"""

from __future__ import annotations

import functools

import numpy as np

from hashsvc.hashes import compute
from hashsvc.hashes.codec import bits_to_bytes

PDQ_DIM = 64  # PDQ decimates to 64 x 64 ...
DCT_DIM = 16  # ... and keeps DCT coefficients 1..16 along each axis
MIN_HASHABLE_DIM = 5  # below this, pdqhash returns an all-zero hash with quality 0
JAROSZ_PASSES = 2  # box filter passes per axis (two boxes make a tent)

# The luma weights pdqhash's binding uses (computed in float64 by numpy, then cast to float32).
LUMA_WEIGHTS = (0.299, 0.587, 0.114)

# The order pdqhash.compute_dihedral returns its eight hashes in.
DIHEDRAL_VARIANTS = compute.DIHEDRAL_VARIANTS


def jarosz_window(old_dim: int, new_dim: int = PDQ_DIM) -> int:
    """PDQ's box window for shrinking `old_dim` to `new_dim`: ceil(old / (2 * new)), at least 1 for old >= 1."""
    return (old_dim + 2 * new_dim - 1) // (2 * new_dim)


def _box_bounds(n: int, window: int) -> tuple[np.ndarray, np.ndarray]:
    """For each output index o of PDQ's 1-D box filter, the input range [lo, hi) it averages.

    PDQ's running-sum filter centres output o on the window [o - (window - half), o + half) with
    half = (window + 2) // 2, clipped to the vector, and divides by the number of elements actually summed
    (so the edges are averaged over a shorter window, not padded).
    """
    half = (window + 2) // 2
    o = np.arange(n)
    lo = np.maximum(o - (window - half), 0)
    hi = np.minimum(o + half, n)
    return lo, hi


def _decimation_indices(n: int, out: int = PDQ_DIM) -> np.ndarray:
    # Same double-precision expression as PDQ: int(((i + 0.5) * n) / out).
    return np.array([int(((i + 0.5) * n) / out) for i in range(out)], dtype=np.int64)


# One output of a 1-D operator as (first input index, weights over a contiguous run of inputs).
Row = tuple[int, np.ndarray]


def downsample_rows(n: int) -> list[Row]:
    """PDQ's blur-and-decimate along one axis of length n (decimate . box . box), as 64 sparse rows.

    Output o samples input r = floor((o + 0.5) * n / 64) of the twice-filtered signal; one box pass maps r to
    k in [lo[r], hi[r]) with weight 1/count[r], the other maps each k to [lo[k], hi[k]) with weight 1/count[k].
    """
    if n < 1:
        raise ValueError(f"dimension must be positive, got {n}")
    lo, hi = _box_bounds(n, jarosz_window(n))
    count = (hi - lo).astype(np.float64)
    rows: list[Row] = []
    for r in _decimation_indices(n):
        k = np.arange(lo[r], hi[r])
        start, stop = int(lo[k[0]]), int(hi[k[-1]])
        positions = np.arange(start, stop)
        covers = (positions[None, :] >= lo[k][:, None]) & (positions[None, :] < hi[k][:, None])
        rows.append((start, (covers / (count[r] * count[k])[:, None]).sum(axis=0)))
    return rows


def dense(rows: list[Row], n: int) -> np.ndarray:
    """The 64 x n matrix of sparse rows (for tests and inspection; the hashing path never builds it)."""
    matrix = np.zeros((len(rows), n))
    for o, (start, weights) in enumerate(rows):
        matrix[o, start : start + len(weights)] = weights
    return matrix


def grid_scale(full: int, reduced: int) -> float:
    """How many full-resolution pixels one reduced pixel spans along an axis.

    JPEG DCT scaling and Pillow's `reduce(f)` both give ceil(full / s) pixels, pixel k covering full-resolution
    pixels [k*s, (k+1)*s) (the last one possibly partial). We look for the integer s consistent with the sizes,
    preferring a power of two (what `draft` picks) and then the one closest to the size ratio; if none fits,
    the reduction was not by an integer factor and we fall back to the plain size ratio.
    """
    if reduced == full:
        return 1.0
    ratio = full / reduced
    candidates = [s for s in range(max(1, int(ratio) - 1), int(ratio) + 3) if -(-full // s) == reduced]
    if not candidates:
        return ratio
    powers = [s for s in candidates if s & (s - 1) == 0]
    return float(min(powers or candidates, key=lambda s: abs(s - ratio)))


def upsampled_downsample_rows(full: int, reduced: int, scale: float) -> list[Row]:
    """downsample_rows(full) composed with U (full x reduced), the bilinear upsampling of the reduced grid.

    Full-resolution pixel i has its centre at (i + 0.5) / scale - 0.5 in reduced pixel coordinates (reduced
    pixel k covers [k*scale, (k+1)*scale)); it takes the linear interpolation of its two neighbours, clamped at
    the borders (what Pillow's BILINEAR resize does there too). U is never formed: each output's few weights
    are pushed through U's two taps per full-resolution pixel.
    """
    rows = downsample_rows(full)
    if reduced == full and scale == 1.0:
        return rows
    composed: list[Row] = []
    for start, weights in rows:
        centre = (np.arange(start, start + len(weights)) + 0.5) / scale - 0.5
        left = np.floor(centre)
        frac = centre - left
        j0 = np.clip(left.astype(np.int64), 0, reduced - 1)
        j1 = np.clip(left.astype(np.int64) + 1, 0, reduced - 1)
        first = int(j0[0])
        size = int(j1[-1]) - first + 1
        reduced_weights = np.bincount(j0 - first, weights * (1.0 - frac), size) + np.bincount(
            j1 - first, weights * frac, size
        )
        composed.append((first, reduced_weights))
    return composed


@functools.lru_cache(maxsize=1)
def dct_matrix() -> np.ndarray:
    """PDQ's 16 x 64 DCT: sqrt(2/64) * cos(pi/128 * (i+1) * (2j+1)), rows 1..16 of a DCT-II (DC dropped).

    PDQ stores it in float32; we round the same way so the coefficients are the same numbers.
    """
    i = np.arange(1, DCT_DIM + 1)[:, None]
    j = np.arange(PDQ_DIM)[None, :]
    matrix = (np.sqrt(2.0 / PDQ_DIM) * np.cos((np.pi / 2.0 / PDQ_DIM) * i * (2 * j + 1))).astype(np.float32)
    matrix = matrix.astype(np.float64)
    matrix.flags.writeable = False
    return matrix


def luma(rgb: np.ndarray) -> np.ndarray:
    """Grey as pdqhash's binding computes it: float64 weighted sum of the uint8 channels, cast to float32."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB array, got shape {rgb.shape}")
    r, g, b = (rgb[:, :, c] for c in range(3))
    return (r * LUMA_WEIGHTS[0] + g * LUMA_WEIGHTS[1] + b * LUMA_WEIGHTS[2]).astype(np.float32)


def fast_luma(rgb: np.ndarray) -> np.ndarray:
    """Grey in float32 arithmetic: ~20x faster than `luma`, within 1 float32 ulp of it. Used on reduced
    images, where the result approximates the full-resolution hash anyway and an ulp is far below the noise."""
    return rgb.astype(np.float32) @ np.array(LUMA_WEIGHTS, dtype=np.float32)


def quality_metric(buffer64: np.ndarray) -> int:
    """PDQ's image-domain quality: quantized gradients of the 64x64 buffer, in float32 like PDQ."""
    b = buffer64.astype(np.float32)
    hundred, full_scale = np.float32(100), np.float32(255)
    # int d = ((u - v) * 100) / 255 truncates toward zero, then |d| is summed.
    vertical = np.trunc(((b[:-1, :] - b[1:, :]) * hundred) / full_scale)
    horizontal = np.trunc(((b[:, :-1] - b[:, 1:]) * hundred) / full_scale)
    gradient_sum = int(np.abs(vertical).sum(dtype=np.int64) + np.abs(horizontal).sum(dtype=np.int64))
    return min(gradient_sum // 90, 100)


def dct16_to_code(dct16: np.ndarray) -> bytes:
    """Threshold the 16x16 DCT at its median and pack the bits like pdqhash + codec.bits_to_bytes.

    Torben's median over 256 values returns the 128th smallest (lower median), and a bit is set when the
    coefficient is strictly greater. pdqhash sets bit i*16+j for coefficient (i, j), and its vector lists bits
    from 255 down to 0, so the packed MSB-first code is the row-major bit array reversed.
    """
    flat = np.asarray(dct16, dtype=np.float32).ravel()
    median = np.partition(flat, DCT_DIM * DCT_DIM // 2 - 1)[DCT_DIM * DCT_DIM // 2 - 1]
    return bits_to_bytes((flat > median)[::-1])


def dihedral_dct16(dct16: np.ndarray) -> list[np.ndarray]:
    """The 16x16 DCTs of the 8 rotations/flips of the image, from the original's DCT.

    A DCT-II basis function of (1-based) order k is symmetric under reversal for even k and antisymmetric for
    odd k; our index i holds order i+1, so reversing an axis negates the entries with even index along it.
    Transposing the image transposes the DCT. Order as pdqhash.compute_dihedral.
    """
    idx = np.arange(DCT_DIM)
    even = np.where(idx % 2 == 0, -1.0, 1.0)  # sign when that axis is reversed
    rev_rows = even[:, None]  # flip top-bottom (image rows reversed)
    rev_cols = even[None, :]  # flip left-right
    a = dct16
    return [
        a,
        (a * rev_cols).T,  # rot90 (counter-clockwise): columns reversed, then transposed
        a * rev_rows * rev_cols,  # rot180
        (a * rev_rows).T,  # rot270
        a * rev_rows,  # flipx (about the horizontal axis)
        a * rev_cols,  # flipy (about the vertical axis)
        a.T,  # flipplus1 (transpose)
        (a * rev_rows * rev_cols).T,  # flipminus1 (anti-transpose)
    ]


@functools.lru_cache(maxsize=256)
def band(full: int, reduced: int) -> tuple[np.ndarray, np.ndarray]:
    """upsampled_downsample_rows(full, reduced, grid_scale(full, reduced)) as a band: for each of the 64
    outputs, the indices (64 x K) and weights (64 x K) of its support, zero-padded to a common K.

    Each output touches only ~2 Jarosz windows of input (K ~ 14 of 750 reduced rows at 12 MP), so gathering
    the band and contracting it costs ~1/5 of a dense 64 x n product and needs no multithreaded BLAS, which on
    a busy machine is slower and far less predictable than this single-threaded gather. Building one costs
    ~2-7 ms; it is cached per (full, reduced) size pair.
    """
    rows = upsampled_downsample_rows(full, reduced, grid_scale(full, reduced))
    width = min(max(len(w) for _, w in rows), reduced)
    index = np.empty((PDQ_DIM, width), dtype=np.int64)
    weights = np.zeros((PDQ_DIM, width))
    for o, (start, row_weights) in enumerate(rows):
        # Rows near the end would run past the input; shift their window left instead (extra taps weigh 0).
        shifted = min(start, reduced - width)
        index[o] = np.arange(shifted, shifted + width)
        weights[o, start - shifted : start - shifted + len(row_weights)] = row_weights
    index.flags.writeable = False
    weights.flags.writeable = False
    return index, weights


def pdq_dct16(gray: np.ndarray, full_height: int, full_width: int) -> tuple[np.ndarray, np.ndarray]:
    """(dct16, buffer64) in float64 of the full-resolution image whose reduced grey version is `gray`."""
    buffer64 = _rows_pass(_columns_pass(gray, full_width), full_height)
    d = dct_matrix()
    return d @ buffer64 @ d.T, buffer64


def _columns_pass(gray: np.ndarray, full_width: int, *, reverse: bool = False) -> np.ndarray:
    """(h, 64): each row of `gray` (left-right reversed if `reverse`) filtered and decimated like PDQ's columns.
    Gathers the (h, 64, K) band samples and contracts them."""
    width = gray.shape[1]
    index, weights = band(full_width, width)
    return np.einsum("hmk,mk->hm", gray[:, width - 1 - index if reverse else index], weights)


def _rows_pass(across: np.ndarray, full_height: int, *, reverse: bool = False) -> np.ndarray:
    """(64, 64): the columns pass's output filtered and decimated down the rows (top-bottom reversed)."""
    height = across.shape[0]
    index, weights = band(full_height, height)
    return np.einsum("mkc,mk->mc", across[height - 1 - index if reverse else index], weights)


def _hashable_gray(rgb_reduced: np.ndarray, full_height: int, full_width: int) -> np.ndarray | None:
    """The grey image PDQ works on, or None when the full image is too small to hash (pdqhash gives zeros)."""
    _check(rgb_reduced, full_height, full_width)
    if full_height < MIN_HASHABLE_DIM or full_width < MIN_HASHABLE_DIM:
        return None
    # Unreduced input must reproduce pdqhash bit for bit, so it gets pdqhash's own (slower) luma.
    exact = rgb_reduced.shape[:2] == (full_height, full_width)
    return luma(rgb_reduced) if exact else fast_luma(rgb_reduced)


def _check(rgb: np.ndarray, full_height: int, full_width: int) -> None:
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB array, got {rgb.dtype} {rgb.shape}")
    height, width = rgb.shape[:2]
    if height < 1 or width < 1 or full_height < height or full_width < width:
        raise ValueError(f"reduced size {width}x{height} does not fit in full size {full_width}x{full_height}")


def pdq_at_full_resolution(rgb_reduced: np.ndarray, full_height: int, full_width: int) -> tuple[bytes, int]:
    """PDQ (32 bytes, packed MSB-first as codec.bits_to_bytes(pdqhash vector)) and quality, as
    `pdqhash.compute` would give on the full_height x full_width image, computed from its reduced decode.

    `rgb_reduced` is (h, w, 3) uint8 with h = ceil(full_height / s), w = ceil(full_width / s) for the
    reduction factor s (1 gives exactly pdqhash.compute of `rgb_reduced`).
    """
    codes, quality = pdq_dihedral_at_full_resolution(rgb_reduced, full_height, full_width, variants=1)
    return codes[0], quality


def pdq_dihedral_at_full_resolution(
    rgb_reduced: np.ndarray, full_height: int, full_width: int, *, variants: int = 8
) -> tuple[list[bytes], int]:
    """Like pdq_at_full_resolution, with the hashes of the first `variants` dihedral transforms in
    DIHEDRAL_VARIANTS order (pdqhash.compute_dihedral semantics); they all come from the one 16x16 DCT."""
    gray = _hashable_gray(rgb_reduced, full_height, full_width)
    if gray is None:
        return [bytes(32)] * variants, 0
    dct16, buffer64 = pdq_dct16(gray, full_height, full_width)
    # PDQ's 64x64 buffer and DCT are float32; rounding to it keeps ties with pdqhash where it has them.
    quality = quality_metric(buffer64.astype(np.float32))
    dct16 = dct16.astype(np.float32)
    return [dct16_to_code(d) for d in dihedral_dct16(dct16)[:variants]], quality


def pdq_flips_at_full_resolution(rgb_reduced: np.ndarray, full_height: int, full_width: int) -> tuple[list[bytes], int]:
    """The PDQ hashes of the 8 rotations/flips of the full-resolution image, each as `pdqhash.compute` gives on
    the image actually rotated or flipped, in DIHEDRAL_VARIANTS order (variant k is the hash of the image
    transformed as pdqhash.compute_dihedral's k-th hash models it).

    Why not `dihedral_dct16`: pdqhash derives the variants from the one DCT by sign flips, which assumes the
    box filter and decimation are symmetric. They are not (windows and sample points sit half a pixel off
    centre), and PDQ is so sensitive to small shifts that on a 256 px image the modelled rotations land 20-34
    bits from the hashes of the real ones. A flip is a reversed gather over the same bands, so the four flips
    cost about twice one hash; the transposes are exact (transposing the image transposes the 64x64 buffer).
    """
    gray = _hashable_gray(rgb_reduced, full_height, full_width)
    if gray is None:
        return [bytes(32)] * len(DIHEDRAL_VARIANTS), 0
    d = dct_matrix()
    dcts: dict[tuple[bool, bool], np.ndarray] = {}
    quality = 0
    for flip_cols in (False, True):
        across = _columns_pass(gray, full_width, reverse=flip_cols)  # shared by both row orders
        for flip_rows in (False, True):
            buffer64 = _rows_pass(across, full_height, reverse=flip_rows)
            if not (flip_cols or flip_rows):
                quality = quality_metric(buffer64.astype(np.float32))
            dcts[flip_rows, flip_cols] = (d @ buffer64 @ d.T).astype(np.float32)
    plain, lr, ud, both = dcts[False, False], dcts[False, True], dcts[True, False], dcts[True, True]
    # rot90 = transpose(fliplr), rot270 = transpose(flipud), flipminus1 = transpose(rot180).
    ordered = [plain, lr.T, both, ud.T, ud, lr, plain.T, both.T]
    return [dct16_to_code(x) for x in ordered], quality
