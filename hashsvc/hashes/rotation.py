"""Undo small rotations with uniform corner fill, so that tilted re-uploads hash like the original.

Re-uploaders tilt a known image by a few degrees to slip past hash filters: an editor's "straighten" or
`rotate(angle, fillcolor=...)` on the same canvas leaves four right-triangle wedges of one colour in the corners
(with `expand=True` the canvas grows and the wedges span whole edges). PDQ does not survive this: in our
robustness benchmark the plain pipeline matched 7% of 2-degree and 0% of 5-degree rotations (Hamming <= 31).
The edit carries its own signature, though: each wedge's hypotenuse is an edge of the rotated picture, so all
four slope by the same angle, and that angle can be measured to a few hundredths of a degree.

Most uploads are ordinary photos, so the check is ordered by cost: four corner pixels (microseconds; almost
every photo stops there), then the fill runs along the edges next to each corner, and only then a fit of the
fill/content boundary inside each wedge. The angle comes from where each pixel row along a wedge's long leg
crosses the boundary: for a shallow edge those crossings move by 1/tan(angle) pixels per row, so they pin the
slope down far better than the ratio of the two legs (which a first prototype used: a pixel off in a short
leg of two or three pixels is a degree off) or than per-column depths (quantised to whole pixels along a
hard edge). The corners must agree on one angle, their wedges must be filled as that angle predicts, and the
picture they outline must be centred on the canvas; that is what rules out photos with dark corners or
vignettes, and letterbox/pad bars (a bar is a rectangle: no row along it ever leaves the fill).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter, ImageOps

# Below this the wedges of a small tilt are a pixel or two and the angle cannot be told from noise.
MIN_SIDE = 48
# The four corner pixels must agree within this (per channel) to be one fill colour; JPEG leaves a flat fill
# within a few levels, so this is loose enough for heavy compression and still rejects nearly all photos.
CORNER_SPREAD = 24
# A pixel belongs to the fill when every channel is within this of the fill colour: wide enough for JPEG
# noise in a flat fill, narrow enough that most content is outside it.
FILL_TOLERANCE = 40
# A wedge needs at least this many pixel rows along its long leg to measure a slope, and a long leg at least
# this long (2 rows over 10 px is 11 degrees).
MIN_SHORT_LEG = 2
MIN_LONG_LEG = 10
# The tilts we undo. Below MIN the hash survives without help; above MAX it is a deliberate rotation whose
# wedges cover so much of the picture that de-rotating recovers too little of it.
MIN_ANGLE_DEG = 0.3
MAX_ANGLE_DEG = 12.0
# A row's crossing is placed where the distance from the fill colour reaches this share of the content's
# distance just past the boundary: a fixed share of the local contrast keeps a blurred (downscaled,
# antialiased) edge at the same offset from the true boundary in every row, whatever the content's
# brightness, so the offset cancels out of the slope. Below a half, so that it does not land on the
# half-covered plateau a 2x downscale of a hard edge leaves.
CROSSING_SHARE = 0.3
# Rows whose content is within this of the fill colour cannot place the boundary (dark content next to
# black fill): they are skipped.
MIN_CONTRAST = 48
# The content's level is read this many rows past a row's first non-fill pixel, clear of the blur at the edge.
CONTRAST_ROWS = (2, 3)
# Crossings further than this from the fitted boundary (in pixels across it) are content as dark as the fill.
RESIDUAL_LIMIT = 0.5
# A wedge whose line explains fewer of its crossings than this is mostly content as dark as the fill.
MIN_INLIER_SHARE = 0.5
# The corners' angles must agree within this many standard errors (from each fit's scatter), and never worse
# than MAX nor required better than MIN (degrees): a rotated picture has one angle.
AGREEMENT_SIGMAS = 3.0
MIN_AGREEMENT_DEG = 0.1
MAX_AGREEMENT_DEG = 0.5
# The least scatter (pixels across the boundary) assumed for a wedge's crossings, so that a wedge whose two or
# three crossings happen to line up exactly is not taken as infinitely precise.
CROSSING_NOISE_PX = 0.05
# At least this many corners must measure that angle; the others may be unreadable (content as dark as the
# fill along most of the hypotenuse) but their wedges must still be filled as the angle predicts.
MIN_AGREEING_CORNERS = 2
# How far (pixels across the hypotenuse) a fitted hypotenuse may end beyond the fill runs along the edges.
LEG_SLACK_PX = 3.0
# The share of a predicted wedge that must be fill colour, leaving out a band this wide along the hypotenuse
# (where JPEG and resampling blend fill and picture).
MIN_WEDGE_FILL = 0.97
WEDGE_EDGE_PX = 1.0
# Opposite hypotenuses must be the same distance from the canvas centre (both supported edits rotate about
# it), within this share of the side plus a few pixels.
CENTRE_TOLERANCE = 0.02
CENTRE_SLACK_PX = 2.0
# The picture must span at least this share of each side of the canvas (with expand=True at 12 degrees and a
# 2:1 picture, about 0.7).
MIN_CONTENT_SHARE = 0.6
# The blur that continues the picture into the corners a same-canvas rotation cut off: a sixteenth of the
# long side reaches across the widest such corner (at 12 degrees) while still following the picture's layout.
# It is computed at 1/CORNER_BLUR_REDUCE of the size: it only has to be smooth.
CORNER_BLUR_DIVISOR = 16
CORNER_BLUR_REDUCE = 4
# Refits allowed while dropping corners or crossings that do not fit (each round drops at least one).
MAX_REFITS = 4


@dataclass(frozen=True)
class FillRotation:
    """What `detect_fill_rotation` found: the tilt and where the picture lies on the canvas."""

    angle: float  # degrees, counter-clockwise as in PIL's Image.rotate; rotate by -angle to undo
    fill: tuple[int, int, int]  # the corner colour
    content_size: tuple[float, float]  # width, height of the rotated picture (the canvas size if not expanded)


def valid_scale(width: float, height: float, angle_degrees: float) -> float:
    """The largest s such that the centred s*width x s*height box holds only picture after undoing a same-canvas
    rotation by `angle_degrees` (outside it, the de-rotated image has fill wedges where content was cut off)."""
    t = math.radians(abs(angle_degrees))
    c, s = math.cos(t), math.sin(t)
    return min(1.0, 1 / (c + height / width * s), 1 / (c + width / height * s))


def undo_fill_rotation(image: Image.Image) -> Image.Image | None:
    """The picture rotated back upright (RGB) when `image` is a small rotation with uniform corner fill, else None.

    The result is cropped to the rotated picture's size: the canvas size, unless the rotation expanded the
    canvas, in which case it is the original picture again. A same-canvas rotation pushed the picture's corners
    off the canvas; those corners come back filled with a blurred continuation of the picture next to them
    (`valid_scale` says how much of the centre is picture). Use `detect_fill_rotation` for the angle.
    """
    found = detect_fill_rotation(image)
    if found is None:
        return None
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    width, height = rgb.size
    keep_w = min(width, round(found.content_size[0]))
    keep_h = min(height, round(found.content_size[1]))
    box = (
        (width - keep_w) // 2,
        (height - keep_h) // 2,
        (width - keep_w) // 2 + keep_w,
        (height - keep_h) // 2 + keep_h,
    )
    # Rotating an opaque copy marks, in its alpha, every pixel the cut-off corners reached (bicubic mixes the
    # fill into the pixels next to the cut too).
    rotated = rgb.convert("RGBA").rotate(-found.angle, resample=Image.Resampling.BICUBIC, fillcolor=(*found.fill, 0))
    rotated = rotated.crop(box)
    on_canvas = rotated.getchannel("A").point(lambda v: 255 if v == 255 else 0)
    upright = rotated.convert("RGB")
    if on_canvas.getextrema()[0] == 255:
        return upright
    # PDQ's DCT reads a fill-coloured wedge in each corner as strong structure; a smooth continuation of the
    # neighbouring picture disturbs it least (5-degree benchmark rotations: the full upright image matched 53%
    # with fill-coloured corners, 98% with this). Blurring premultiplied by the on-canvas mask is a normalised
    # convolution: each lost pixel gets the average of the picture near it.
    weighted = upright.copy()
    weighted.putalpha(on_canvas)
    small = weighted.convert("RGBa").reduce(CORNER_BLUR_REDUCE)
    radius = max(small.size) / CORNER_BLUR_DIVISOR
    smooth = small.filter(ImageFilter.GaussianBlur(radius)).resize(upright.size, Image.Resampling.BILINEAR)
    upright.paste(smooth.convert("RGB"), mask=ImageOps.invert(on_canvas))
    return upright


# Corners in the order TL, TR, BL, BR. For a counter-clockwise tilt the wedge in the top-left corner lies
# along the top edge (its hypotenuse is the picture's top edge), the top-right one along the right edge, and
# so on around the canvas; a clockwise tilt swaps every corner.
_CCW_ALONG_X = (True, False, False, True)
# The slices that bring each corner to the top left.
_FLIPS = (
    (slice(None), slice(None)),
    (slice(None), slice(None, None, -1)),
    (slice(None, None, -1), slice(None)),
    (slice(None, None, -1), slice(None, None, -1)),
)
# ITU-R 601 luma weights, as PIL's convert("L") uses.
_LUMA = np.array([0.299, 0.587, 0.114])


@dataclass(frozen=True)
class _Corner:
    # Per pixel, the largest channel difference from the fill colour and the luma difference, flipped/transposed
    # so that the corner is at (0, 0) and the wedge's long leg runs along axis 1.
    distance: np.ndarray
    luma: np.ndarray
    long_leg: int  # fill run along the long leg's edge
    short_leg: int  # fill run along the other edge
    along: float  # half the canvas side along the long leg
    across: float  # half the canvas side along the short leg


def detect_fill_rotation(image: Image.Image) -> FillRotation | None:
    """The tilt of a small same-canvas (or expanded) rotation with uniform corner fill, or None.

    Ordinary photos cost four pixel reads: their corners are not all one colour.
    """
    width, height = image.size
    if min(width, height) < MIN_SIDE:
        return None
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    corners = np.array(
        [rgb.getpixel(p) for p in ((0, 0), (width - 1, 0), (0, height - 1), (width - 1, height - 1))],
        dtype=np.int16,
    )
    if int((corners.max(axis=0) - corners.min(axis=0)).max()) > CORNER_SPREAD:
        return None
    fill = np.median(corners, axis=0).astype(np.int16)
    # The runs along the edges, from 1-px strips, decide the direction of the tilt before any 2-D work.
    top = _edge_runs(rgb, fill, (0, 0, width, 1), (0, 0, width, 2))
    bottom = _edge_runs(rgb, fill, (0, height - 1, width, height), (0, height - 2, width, height))
    left = _edge_runs(rgb, fill, (0, 0, 1, height), (0, 0, 2, height))
    right = _edge_runs(rgb, fill, (width - 1, 0, width, height), (width - 2, 0, width, height))
    runs = [(top[0], left[0]), (top[1], right[0]), (bottom[0], left[1]), (bottom[1], right[1])]
    if any(min(r) < 1 for r in runs):
        return None
    ccw_votes = cw_votes = 0
    for (run_x, run_y), ccw_along_x in zip(runs, _CCW_ALONG_X, strict=True):
        if min(run_x, run_y) >= MIN_SHORT_LEG and max(run_x, run_y) >= MIN_LONG_LEG:
            along_x = run_x > run_y
            ccw_votes += along_x == ccw_along_x
            cw_votes += along_x != ccw_along_x
    if max(ccw_votes, cw_votes) < MIN_AGREEING_CORNERS or ccw_votes == cw_votes:
        return None
    ccw = ccw_votes > cw_votes
    distance = _distance(np.asarray(rgb), fill.astype(np.uint8))
    fill_luma = round(float(np.dot(fill, _LUMA)))
    luma = np.abs(np.asarray(rgb.convert("L"), dtype=np.int16) - fill_luma).astype(np.uint8)
    wedges = []
    for flip, (run_x, run_y), ccw_along_x in zip(_FLIPS, runs, _CCW_ALONG_X, strict=True):
        d, y = distance[flip], luma[flip]
        if ccw_along_x == ccw:
            wedges.append(_Corner(d, y, run_x, run_y, width / 2, height / 2))
        else:
            wedges.append(_Corner(d.T, y.T, run_y, run_x, height / 2, width / 2))
    found = _fit(wedges)
    if found is None:
        return None
    angle, (across_tl, across_tr) = found
    # The TL/BR hypotenuses are the picture's top and bottom edges for a counter-clockwise tilt, its left and
    # right edges for a clockwise one.
    content = (across_tr, across_tl) if ccw else (across_tl, across_tr)
    return FillRotation(angle if ccw else -angle, (int(fill[0]), int(fill[1]), int(fill[2])), content)


def _distance(pixels: np.ndarray, fill: np.ndarray) -> np.ndarray:
    """Per pixel, the largest channel difference from the fill colour (in uint8, four times faster than int16)."""
    diff = np.maximum(pixels, fill)
    diff -= np.minimum(pixels, fill)
    return np.maximum(np.maximum(diff[..., 0], diff[..., 1]), diff[..., 2])


def _edge_runs(
    image: Image.Image, fill: np.ndarray, line: tuple[int, int, int, int], band: tuple[int, int, int, int]
) -> tuple[int, int]:
    """The fill runs from both ends of one canvas edge (the 1-px `line`)."""
    is_fill = _fill_mask(image, fill, line)
    if not is_fill.all():
        return _run(is_fill), _run(is_fill[::-1])
    # With expand=True the picture's corner touches the edge in a sliver thinner than a pixel, which blends into
    # the fill; a pixel further in (the 2-px `band`) it is wide enough to separate the two corners' wedges.
    is_fill = _fill_mask(image, fill, band)
    return _run(is_fill), _run(is_fill[::-1])


def _fill_mask(image: Image.Image, fill: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """Which positions along a strip along an edge are fill-coloured across the whole strip."""
    strip = np.asarray(image.crop(box), dtype=np.int16)
    is_fill = np.abs(strip - fill).max(axis=2) <= FILL_TOLERANCE
    return is_fill.all(axis=0) if strip.shape[1] > strip.shape[0] else is_fill.all(axis=1)


def _run(is_fill: np.ndarray) -> int:
    outside = np.flatnonzero(~is_fill)
    return int(outside[0]) if outside.size else len(is_fill)


def _crossings(corner: _Corner) -> np.ndarray:
    """Points of the hypotenuse: where each pixel row along the long leg leaves the fill (sub-pixel), as rows of
    (x, y, weight); the weight is the squared contrast, since noise moves a crossing inversely to it."""
    none = np.empty((0, 3))
    rows = min(corner.short_leg, math.ceil(corner.long_leg * math.tan(math.radians(MAX_ANGLE_DEG))) + 1)
    d = corner.distance
    if rows < 1 or rows + max(CONTRAST_ROWS) >= d.shape[0]:
        return none
    outside = d[:rows, : min(d.shape[1], corner.long_leg + 2)] > FILL_TOLERANCE
    coarse = np.argmax(outside, axis=1)
    ys = np.flatnonzero(outside.any(axis=1) & (coarse > 0))
    if ys.size == 0:
        return none
    xs = coarse[ys]
    # Luma where it has the contrast: JPEG keeps it at full resolution, while chroma is subsampled 2x2 and bleeds
    # a saturated picture's colour a pixel or two into the fill, which moves a crossing along a shallow edge by
    # tens of pixels. The largest channel difference where only colour tells the picture from the fill.
    luma_x = _crossing_at(corner.luma, ys, xs)
    any_x = _crossing_at(d, ys, xs)
    use_luma = ~np.isnan(luma_x[:, 0])
    found = np.where(use_luma[:, None], luma_x, any_x)
    ok = ~np.isnan(found[:, 0])
    return np.stack([found[ok, 0], ys[ok] + 0.5, found[ok, 1]], axis=1) if ok.any() else none


def _crossing_at(d: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """For rows `ys` whose fill ends near `xs`: (sub-pixel x where `d` reaches CROSSING_SHARE of the content's
    level, squared contrast), NaN where the content is too close to the fill."""
    out = np.full((ys.size, 2), np.nan)
    # The content's distance from the fill two to three rows past the boundary (clear of any blur).
    window = np.stack(
        [d[ys + dy, np.minimum(xs + dx, d.shape[1] - 1)] for dy in CONTRAST_ROWS for dx in (0, 1, 2)], axis=1
    )
    contrast = np.median(window, axis=1)
    rows = np.flatnonzero(contrast >= MIN_CONTRAST)
    if rows.size == 0:
        return out
    level = CROSSING_SHARE * contrast[rows]
    above = d[ys[rows]] >= level[:, None]
    first = np.argmax(above, axis=1)
    ok = above[np.arange(rows.size), first] & (first > 0)
    rows, first, level = rows[ok], first[ok], level[ok]
    before = d[ys[rows], first - 1].astype(np.float64)
    after = d[ys[rows], first].astype(np.float64)
    out[rows, 0] = first - 0.5 + (level - before) / np.maximum(after - before, 1.0)
    out[rows, 1] = contrast[rows] ** 2
    return out


@dataclass(frozen=True)
class _Line:
    """A wedge's hypotenuse as x = offset - run * y (run = 1/tan(angle)), fitted to its crossings."""

    offset: float
    run: float
    inliers: np.ndarray  # the crossings within RESIDUAL_LIMIT of the line
    noise: float  # the crossings' scatter across the line (pixels), at least CROSSING_NOISE_PX
    angle_error: float  # the standard error of the angle (degrees) that scatter implies

    @property
    def angle(self) -> float:
        return math.degrees(math.atan(1 / self.run))


def _line(points: np.ndarray) -> _Line | None:
    """Robust weighted fit of a wedge's crossings, or None when they do not make a line at a positive slope."""
    keep = np.ones(len(points), dtype=bool)
    for _ in range(MAX_REFITS):
        if keep.sum() < MIN_SHORT_LEG or np.ptp(points[keep, 1]) == 0:
            return None
        slope, offset = np.polyfit(points[keep, 1], points[keep, 0], 1, w=np.sqrt(points[keep, 2]))
        run, inliers = -float(slope), keep
        if run <= 0:
            return None
        # Residuals across the boundary: a crossing k pixels off along a shallow edge is k/run pixels off it.
        across = (points[:, 0] - (offset - run * points[:, 1])) / run
        keep = np.abs(across) <= RESIDUAL_LIMIT
        if np.array_equal(keep, inliers):
            break
    n = int(keep.sum())
    if n < max(MIN_SHORT_LEG, MIN_INLIER_SHARE * len(points)):
        return None
    weights = points[keep, 2] / points[keep, 2].mean()
    scatter = math.sqrt(float(np.sum(weights * across[keep] ** 2)) / (n - 2)) if n > 2 else 0.0
    noise = max(scatter, CROSSING_NOISE_PX)
    ys = points[keep, 1]
    # Standard error of the run (along-edge noise is noise*run), then of the angle: d(atan(1/run)) = -d(run)/(1+run^2).
    run_error = noise * run / math.sqrt(float(np.sum((ys - ys.mean()) ** 2)))
    return _Line(float(offset), run, keep, noise, math.degrees(run_error / (1 + run * run)))


def _agree(angle: float, error: float, line: _Line) -> bool:
    tolerance = AGREEMENT_SIGMAS * math.hypot(error, line.angle_error)
    return abs(line.angle - angle) <= min(max(tolerance, MIN_AGREEMENT_DEG), MAX_AGREEMENT_DEG)


def _joint(points: list[np.ndarray], lines: list[_Line]) -> tuple[float, list[float], float]:
    """One run (1/tan) shared by several wedges, each with its own offset: least squares over their inlying
    crossings, each weighted by its contrast and by its wedge's precision. Returns (run, offsets, angle error)."""
    blocks = [p[ln.inliers] for p, ln in zip(points, lines, strict=True)]
    stacked = np.concatenate(blocks)
    design = np.zeros((len(stacked), len(blocks) + 1))
    design[:, 0] = -stacked[:, 1]
    weights = np.empty(len(stacked))
    row = 0
    for j, (block, ln) in enumerate(zip(blocks, lines, strict=True)):
        design[row : row + len(block), j + 1] = 1.0
        weights[row : row + len(block)] = block[:, 2] / block[:, 2].mean() / ln.noise**2
        row += len(block)
    root = np.sqrt(weights)
    solution, *_ = np.linalg.lstsq(design * root[:, None], stacked[:, 0] * root, rcond=None)
    run = float(solution[0])
    error = 1 / math.sqrt(sum(1 / ln.angle_error**2 for ln in lines))
    return run, [float(v) for v in solution[1:]], error


def _fit(wedges: list[_Corner]) -> tuple[float, tuple[float, float]] | None:
    """The consensus angle (degrees) and the picture's extents across the TL/BR and the TR/BL hypotenuses."""
    points = [_crossings(w) for w in wedges]
    fitted = [_line(p) if len(p) >= MIN_SHORT_LEG else None for p in points]
    # A hypotenuse that ends beyond the fill runs was fitted to content as dark as the fill.
    lines = [
        ln if ln is not None and _within_runs(w, ln.offset, ln.run) else None
        for w, ln in zip(wedges, fitted, strict=True)
    ]
    for _ in range(MAX_REFITS):
        joint = _consensus(wedges, points, lines)
        if joint is None:
            return None
        outcome = _geometry(wedges, *joint)
        if not isinstance(outcome, list):
            return outcome
        # A measured corner whose wedge is not filled as its own line says was measured on something else
        # (content as dark as the fill): it carries on as an unmeasured corner.
        for k in outcome:
            lines[k] = None
    return None


def _consensus(
    wedges: list[_Corner], points: list[np.ndarray], lines: list[_Line | None]
) -> tuple[dict[int, float], float] | None:
    """The corners that agree on one slope, refitted as one: ({corner: offset}, run), or None.

    The most corners that agree with one of them within their combined uncertainty (the most precise group on
    ties), refitted as one slope; then the corners that agree with that joint slope, until no corner's joint line
    leaves its runs.
    """
    usable = {k: ln for k, ln in enumerate(lines) if ln is not None}
    group: list[int] = []
    best = (0, 0.0)
    for centre in usable.values():
        candidate = [j for j, ln in usable.items() if _agree(centre.angle, centre.angle_error, ln)]
        score = (len(candidate), sum(1 / usable[j].angle_error ** 2 for j in candidate))
        if score > best:
            group, best = candidate, score
    for _ in range(MAX_REFITS):
        if len(group) < MIN_AGREEING_CORNERS:
            return None
        run, offsets, error = _joint([points[k] for k in group], [usable[k] for k in group])
        if run <= 0:
            return None
        outside = [k for k, offset in zip(group, offsets, strict=True) if not _within_runs(wedges[k], offset, run)]
        if outside:
            usable = {k: ln for k, ln in usable.items() if k not in outside}
            group = [k for k in group if k not in outside]
            continue
        angle = math.degrees(math.atan(1 / run))
        regroup = [j for j, ln in usable.items() if _agree(angle, error, ln)]
        if len(regroup) < len(group) or regroup == group:
            return dict(zip(group, offsets, strict=True)), run
        group = regroup
    return None


def _geometry(
    wedges: list[_Corner], offsets: dict[int, float], run: float
) -> tuple[float, tuple[float, float]] | list[int] | None:
    """Check the wedges against the picture the consensus slope and offsets outline: (angle, extents) when they
    all fit, the measured corners whose own wedges do not, or None when the outline is not a centred picture."""
    angle = math.degrees(math.atan(1 / run))
    if not MIN_ANGLE_DEG <= angle <= MAX_ANGLE_DEG:
        return None
    tan = 1 / run
    cos = math.cos(math.radians(angle))
    # Each hypotenuse is an edge of the picture: its distance from the canvas centre is half the picture's
    # extent across it. TL/BR give the extent across their long legs' edges, TR/BL the other one.
    half: dict[int, float] = {}
    for k, offset in offsets.items():
        w = wedges[k]
        half[k] = (w.across + w.along * tan - offset * tan) * cos  # offset * tan: the depth at the corner
    extents: list[float | None] = []
    for pair in ((0, 3), (1, 2)):
        known = [half[k] for k in pair if k in half]
        side = 2 * wedges[pair[0]].across
        if len(known) == 2 and abs(known[0] - known[1]) > CENTRE_TOLERANCE * side + CENTRE_SLACK_PX:
            return None
        extent = 2 * float(np.mean(known)) if known else None
        if extent is not None and not MIN_CONTENT_SHARE * side <= extent <= side + 2 * CENTRE_SLACK_PX:
            return None
        extents.append(None if extent is None else min(side, extent))
    resolved = _complete(extents, (2 * wedges[0].across, 2 * wedges[1].across), angle)
    misfits = []
    for k, w in enumerate(wedges):
        # A wedge's own hypotenuse where it was measured; else the one the picture's extent predicts, give or
        # take what opposite hypotenuses may differ by (an original with a dark border of its own puts the
        # measured boundary a few pixels deeper on that side).
        if k in half:
            depth, margin = w.across + w.along * tan - half[k] / cos, 0.0
        else:
            extent = resolved[0 if k in (0, 3) else 1]
            depth = w.across + w.along * tan - extent / 2 / cos
            margin = CENTRE_TOLERANCE * 2 * w.across + CENTRE_SLACK_PX
        if not _wedge_holds(w, tan, depth - margin):
            if k not in half:
                return None
            misfits.append(k)
    return misfits if misfits else (angle, resolved)


def _within_runs(w: _Corner, offset: float, run: float) -> bool:
    """Whether a hypotenuse x = offset - run*y meets the corner's edges within the fill runs along them (give or
    take LEG_SLACK_PX across it). The wedge is fill, so each run reaches at least as far as its leg; a line that
    ends beyond was fitted to content as dark as the fill."""
    # The runs are counted along the first pixel row and column, whose centres lie half a pixel in.
    return offset - 0.5 * run <= w.long_leg + LEG_SLACK_PX * run and (offset - 0.5) / run <= w.short_leg + LEG_SLACK_PX


def _complete(extents: list[float | None], sides: tuple[float, float], angle: float) -> tuple[float, float]:
    """Both extents of the picture, the missing one (when only opposite corners measured the angle) from
    whichever edit the known one fits: a same-canvas rotation keeps the canvas size; expand=True makes the
    canvas the picture's bounding box (side0 = e1*sin + e0*cos, side1 = e1*cos + e0*sin)."""
    first, second = extents
    if first is not None and second is not None:
        return first, second
    t = math.radians(angle)
    c, s = math.cos(t), math.sin(t)
    det = c * c - s * s
    expanded = ((sides[0] * c - sides[1] * s) / det, (sides[1] * c - sides[0] * s) / det)
    if first is not None:
        same_canvas = abs(first - sides[0]) <= abs(first - expanded[0])
        return first, sides[1] if same_canvas else expanded[1]
    if second is not None:
        same_canvas = abs(second - sides[1]) <= abs(second - expanded[1])
        return (sides[0] if same_canvas else expanded[0]), second
    return sides


def _wedge_holds(w: _Corner, tan: float, depth: float) -> bool:
    """Whether the corner is filled as a wedge of this slope and depth predicts."""
    if depth < WEDGE_EDGE_PX:
        return True
    length = min(w.distance.shape[1], math.floor(depth / tan))
    rows = min(w.distance.shape[0], math.ceil(depth))
    y, x = np.mgrid[0:rows, 0:length]
    # Distance of each pixel centre inside the hypotenuse (positive: in the wedge).
    inside = (depth - tan * (x + 0.5) - (y + 0.5)) / math.hypot(1, tan)
    core = inside >= WEDGE_EDGE_PX
    return not core.any() or np.mean(w.distance[:rows, :length][core] <= FILL_TOLERANCE) >= MIN_WEDGE_FILL
