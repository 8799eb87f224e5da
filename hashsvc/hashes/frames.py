"""Candidate boxes of a picture pasted inside an added frame, for the query-time lookup to hash again.

Why: a frame added around a known picture (blurred "cover" padding as social apps make it, a meme caption bar,
phone-screenshot chrome) changes every PDQ bit, so the query only matches once the frame is cut off.
`augment.trim_borders` gives one answer and misses two cases: on blurred fill the edge between fill and picture
is often too weak for its smooth-run rule, and its lenient bar rule (meant to run through caption text) runs on
into bright picture content. A wrong guess here costs only one extra PDQ computation and index lookup, never a
false match, so this module proposes a short list of boxes (best first, at most `MAX_CANDIDATES`) instead of one.

How: everything works on the lines (rows, then columns) of a greyscale copy reduced to `_ANALYSIS_SIDE`:

* a pasted picture has straight, full-length edges: across its edge, almost every position of the line changes
  at once, so the *median* over the line of |line i+1 - line i| jumps there, while picture content (which moves
  only part of a line) leaves the median small. The median is taken over the central positions only, so that
  the edges of a picture narrower than the canvas (padding on both axes, a screenshot) still count;
* blurred fill is smooth (small steps and small along-line differences) and much smoother than the picture,
  and padding is centred: a "fill" span is a pair of smooth margins of equal depth (one pixel of rounding
  allowed), scored by the edge steps on both sides, so one sharp edge is enough to place a pair whose other
  edge runs through matching content;
* a caption bar or app chrome is uniform (text aside): a "bar" edge is a step right after lines of one colour;
  the innermost such edge within `_BAR_MAX` is taken, which passes caption text, status bars and header rows;
* the other axis is then searched inside the found span (a padded picture has fill on both sides, a
  screenshot has page-coloured margins); when a fill pair shows on one axis only and the other axis has smooth
  bands where the same relative padding would put them, that proportional box is proposed as well.

Measured (see the constants): 4% of ordinary photos get any candidate; 0.6-1.4 ms per image of 400x300 to
400x400. Limits: an edge between fill and picture that is invisible on both sides (a product shot on a plain
background, whose blur is the same plain colour) cannot be found, nor the edge of a white caption bar over a
white sky; flat graphics are not sharper than their blurred fill, so padding around them is missed too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

Box = tuple[int, int, int, int]

# How the numbers below were measured: a scratch harness ran every edit of the task on every 4th image of the
# 422-image benchmark corpus (queries decoded as uploads are) and counted the queries whose best probe (the
# query, its trim_borders result, each candidate cropped) lands within PDQ distance 31 of the original or its
# trim; "originals" is the share of the 422 unedited images that get any candidate. With the values below:
# pad_blur_10 94%, letterbox_blur_10 95%, caption_bar 92%, screenshot 98%, originals 4.3%.

MAX_CANDIDATES = 3  # each candidate costs one PDQ computation and lookup; edited queries average 1.0-1.5
_MIN_SIDE = 32  # smaller images have too few lines to tell a margin from the picture
_MIN_LINES = 24  # an axis (or a span searched for the other axis) needs this many lines to be analysed
_ANALYSIS_SIDE = 400  # longest side of the analysed copy; one line there is 0.25%, and PDQ tolerates about 1%
# off on one side. 800 gave the same hit rates at 1.6x the time
_CENTRAL = 0.12  # the line statistics skip this share at both ends: 25% padding leaves 10% of the canvas to the
# fill, a screenshot 7.5% to the page margins. 0.08 gave the same hit rates
_NOISE = 0.5  # grey levels added to a band's level before dividing an edge step by it (JPEG q90 noise in flat
# fill gives median steps of 0-1). 1.0 lost a query or two on padding

# Fill pairs (blurred "cover" padding; uniform bars of any colour pass too).
_PAIR_MIN = 0.02  # smallest margin, share of the axis: 5% padding puts 2.4% on each side
_PAIR_MAX = 0.15  # largest margin: 25% padding puts 10% on each side
_SMOOTH = 3.0  # most a fill band's mean step and mean along-line difference may be (grey levels). Blurred fill
# measured 0.0-2.5; at 2.0 padded queries with a watermark over the band fell from 94% to 85%
_ROUGH_RATIO = 2.0  # the picture's mean along-line difference is at least this many times the bands'. At 3.0:
# originals 3.6%, one watermarked query lost. Flat graphics fail it (their blurred fill is as rough as they are)
_Q_PAIR = 4.0  # least summed edge evidence of a pair: step / (band level + _NOISE) on both sides. At 3:
# originals 7.3%; at 6: originals 3.8%, a letterboxed and a watermarked query lost

# Bars (caption bars, screenshot chrome).
_BAR_MIN = 0.02  # smallest bar, share of the axis
_BAR_MAX = 0.45  # deepest edge looked for: screenshot chrome above a 2:1 picture takes 27% of the height
_BAR_LINES = 3  # uniform lines of one colour needed outside the edge (the caption's margin below its text)
_UNIFORM_TOL = 6  # grey levels from the line's median. At 10, picture content passed as bars: originals 10.9%,
# screenshot 98% -> 93%
_UNIFORM_FRAC = 0.95  # share of a line within _UNIFORM_TOL for it to be uniform. At 0.9: originals 6.6%
_STEP_MIN = 3.0  # least median step (grey levels) at a bar's edge. At 2: one more caption and screenshot in
# 106 each, originals 7.6%. Bright sky under a white bar stays below either

_SAME = 0.01  # boxes closer than this share of the longer side on every edge are one candidate
_MIN_KEEP = 0.3  # a box keeps at least this share of both dimensions (as trim_borders): less is not a frame


@dataclass(frozen=True)
class _Span:
    """Where the picture lies along one axis of the analysed copy: lines [start, end)."""

    score: float
    start: int
    end: int
    kind: str  # "fill": smooth margins on both sides; "bar": uniform margin(s)


@dataclass(frozen=True)
class _Lines:
    """Statistics of the lines of a 2-D array (line i is row i), for edges between consecutive lines."""

    core: np.ndarray  # the lines without _CENTRAL at both ends (int16)
    step: np.ndarray  # step[i]: median over the line of |line i+1 - line i|, len n-1
    rough: np.ndarray  # rough[i]: mean |difference of neighbours along line i|, len n


def _lines(array: np.ndarray) -> _Lines:
    cut = int(_CENTRAL * array.shape[1])
    core = array[:, cut : array.shape[1] - cut]
    across = np.abs(np.diff(core, axis=0))
    half = across.shape[1] // 2
    step = np.partition(across, half, axis=1)[:, half].astype(np.float64)  # int16 partition: 10x float median
    rough = np.abs(np.diff(core, axis=1)).mean(axis=1)
    return _Lines(core, step, rough)


def _band_levels(step: np.ndarray, rough: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each margin m (lines 0..m-1 outside): mean step between the outside lines, mean roughness of them."""
    n = len(rough)
    steps = np.full(n, np.inf)
    roughs = np.full(n, np.inf)
    csum_step = np.cumsum(step)
    csum_rough = np.cumsum(rough)
    m = np.arange(n)
    steps[2:] = csum_step[: n - 2] / (m[2:] - 1)  # steps 0..m-2, the last one (m-1) being the edge itself
    roughs[1:] = csum_rough[: n - 1] / m[1:]
    return steps, roughs


def _fill_span(lines: _Lines) -> _Span | None:
    """The best pair of smooth margins of equal depth (the start one rounded down) with an edge inside them."""
    step, rough = lines.step, lines.rough
    n = len(rough)
    lo, hi = max(3, int(_PAIR_MIN * n)), min(int(_PAIR_MAX * n), n // 2 - 4)
    if hi < lo:
        return None
    step_a, rough_a = _band_levels(step, rough)
    step_b, rough_b = _band_levels(step[::-1], rough[::-1])
    picture = float(rough.mean())
    a = np.arange(lo, hi + 1)
    best: _Span | None = None
    for b in (a, a + 1):
        level_a, level_b = np.maximum(step_a[a], rough_a[a]), np.maximum(step_b[b], rough_b[b])
        evidence = step[a - 1] / (_NOISE + level_a) + step[n - 1 - b] / (_NOISE + level_b)
        smooth = (level_a <= _SMOOTH) & (level_b <= _SMOOTH)
        smooth &= np.maximum(rough_a[a], rough_b[b]) * _ROUGH_RATIO < picture
        score = np.where(smooth, evidence, 0.0)
        i = int(np.argmax(score))
        if score[i] >= _Q_PAIR and (best is None or score[i] > best.score):
            best = _Span(float(score[i]), int(a[i]), n - int(b[i]), "fill")
    return best


def _bar_span(lines: _Lines) -> _Span | None:
    """The innermost edge on each side that follows _BAR_LINES uniform lines of one colour."""
    step, core = lines.step, lines.core
    n = len(lines.rough)
    lo, hi = max(_BAR_LINES + 1, int(_BAR_MIN * n)), int(_BAR_MAX * n)
    if hi < lo:
        return None
    half = core.shape[1] // 2
    median = np.partition(core, half, axis=1)[:, half]
    uniform = (np.abs(core - median[:, None]) <= _UNIFORM_TOL).mean(axis=1) >= _UNIFORM_FRAC
    margins: list[tuple[int, float]] = []
    for s, u, med in ((step, uniform, median), (step[::-1], uniform[::-1], median[::-1])):
        m = np.arange(lo, hi + 1)
        found = np.empty(0, dtype=np.int64)
        # The line next to the edge may carry JPEG ringing from a strong edge: if no edge has uniform lines right
        # next to it, one with only that line's median matching the bar will do.
        for gap in (0, 1):
            valid = (s[m - 1] >= _STEP_MIN) & (np.abs(med[m - 1] - med[m - 1 - gap]) <= _UNIFORM_TOL)
            for j in range(1 + gap, _BAR_LINES + 1 + gap):
                valid &= u[m - j] & (np.abs(med[m - j] - med[m - 1 - gap]) <= _UNIFORM_TOL)
            found = np.flatnonzero(valid)
            if found.size:
                break
        margins.append((int(m[found[-1]]), float(s[m[found[-1]] - 1])) if found.size else (0, 0.0))
    (start, step_start), (end, step_end) = margins
    if not (start or end):
        return None
    return _Span(max(step_start, step_end), start, n - end, "bar")


def _spans(array: np.ndarray, bars: bool) -> tuple[list[_Span], _Lines | None]:
    if array.shape[0] < _MIN_LINES or array.shape[1] < _MIN_LINES:
        return [], None
    lines = _lines(array)
    spans = [s for s in (_fill_span(lines), _bar_span(lines) if bars else None) if s is not None]
    return spans, lines


def _smooth_bands(lines: _Lines, start: int, end: int) -> bool:
    """Whether lines [0, start) and [end, n) look like fill: smooth, and much smoother than the lines between."""
    rough = lines.rough
    if start < 2 or len(rough) - end < 2:
        return False
    band = max(float(rough[:start].mean()), float(rough[end:].mean()))
    return band <= _SMOOTH and band * _ROUGH_RATIO < float(rough[start:end].mean())


def _boxes(grey: np.ndarray, bars: bool) -> list[tuple[float, Box]]:
    """Spans along the rows of `grey`, each completed with what the columns inside it show: (score, box)."""
    height, width = grey.shape
    boxes: list[tuple[float, Box]] = []
    for span in _spans(grey, bars)[0]:
        inset = int(0.02 * (span.end - span.start))  # JPEG ringing and rounding at the span's own edges
        inside = np.ascontiguousarray(grey[span.start + inset : span.end - inset].T)
        columns, lines = _spans(inside, True)
        if span.kind == "bar":
            columns = [c for c in columns if c.kind == "bar"]  # chrome is uniform on every side
        boxes += [(span.score + c.score, (c.start, span.start, c.end, span.end)) for c in columns]
        if any(c.start > 0 and c.end < width for c in columns):
            continue
        # Margins on one side only may be picture content: the span across the whole width stays a candidate.
        boxes.append((span.score, (0, span.start, width, span.end)))
        if span.kind == "fill" and lines is not None:
            # Padding by the same share on both axes, whose column edges run through matching content.
            inner = round(width * (span.end - span.start) / height)
            left = (width - inner) // 2
            if _smooth_bands(lines, left, left + inner):
                boxes.append((span.score / 3, (left, span.start, left + inner, span.end)))
    return boxes


def frame_candidates(image: Image.Image) -> list[Box]:
    """Boxes (left, top, right, bottom) in `image`'s pixels where a picture pasted inside an added frame may lie.

    Best first, at most MAX_CANDIDATES, and empty for most ordinary photos. Aimed at what `trim_borders` misses:
    blurred cover padding (on both axes, or top/bottom or left/right only) of 5-25%, caption bars above or below
    (with text in them) and screenshot chrome. Uniform borders are found too (but are `trim_borders`' job), so
    a caller should skip a candidate equal to its trim. Deterministic; about 1 ms on a 400x300 image.
    """
    if min(image.size) < _MIN_SIDE:
        return []
    grey_image = image.convert("L")
    factor = -(-max(grey_image.size) // _ANALYSIS_SIDE)
    if factor > 1:
        grey_image = grey_image.reduce(factor)
    grey = np.asarray(grey_image).astype(np.int16)
    height, width = grey.shape
    found = _boxes(grey, bars=True)
    # Columns first as well, for pillarbox padding (and padding whose top and bottom edges hide in the content).
    # Bars are only looked for across rows: side bars come from screenshots, found inside their rows.
    for score, (top, left, bottom, right) in _boxes(np.ascontiguousarray(grey.T), bars=False):
        found.append((score, (left, top, right, bottom)))
    found.sort(key=lambda item: -item[0])
    kept: list[Box] = []
    tolerance = _SAME * max(height, width)
    for _, box in found:
        whole = box == (0, 0, width, height)
        small = box[2] - box[0] < _MIN_KEEP * width or box[3] - box[1] < _MIN_KEEP * height
        if not (whole or small) and all(max(abs(u - v) for u, v in zip(box, k, strict=True)) > tolerance for k in kept):
            kept.append(box)
    sx, sy = image.width / width, image.height / height
    return [
        (round(x0 * sx), round(y0 * sy), round(x1 * sx), round(y1 * sy)) for x0, y0, x1, y1 in kept[:MAX_CANDIDATES]
    ]
