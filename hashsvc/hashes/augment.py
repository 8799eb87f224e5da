"""Extra views to hash so that common evasions still match: trimmed borders, re-framed and tilted uploads, crops.

Why: PDQ, pHash and dHash all summarise the whole frame, so anything that changes the frame (letterbox bars,
padding, a meme caption, app chrome around a screenshot, a tilt, a crop) moves every coefficient at once. The
robustness benchmark (docs/robustness.md) measured this: the naive PDQ pipeline matched 0% of 20% paddings, 5°
rotations and 10% crops. Two lists of views, both pure functions on decoded pixels:

* `query_time_variants`: what an upload is also looked up as: its borders trimmed (lenient and strict rules),
  the pictures `frames` finds inside blurred padding, caption bars or chrome, and, when `rotation` recognises
  a small tilt with filled corners, the upload turned upright.
* `index_time_variants`: what an item added from an image also stores: its trimmed views (so a trim is a
  canonical form on both sides) and a grid of crops (95/90/80% of each side, at the centre and in each
  corner), so that a re-upload that cut the edges off lands close to one of them.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from hashsvc.hashes import frames, rotation

_ANALYSIS_SIDE = 256  # longest side of the reduced copy the borders are found on (speed; averages JPEG noise)
_COLOUR_TOLERANCE = 24  # max per-channel difference (0-255) from the bar colour; JPEG q30 ringing stays inside
_UNIFORM_FRACTION = 0.97  # the outermost line must be this uniform to start a bar
_BAR_FRACTION = 0.6  # further lines stay "bar" while this share is bar-coloured (captions, UI text on bars)
_SMOOTH_ENERGY = 6.0  # mean |gradient| (grey levels per reduced pixel) of blurred fill (measured 0.2-4.8)
_STEP_RATIO = 4.0  # the picture's edge: a line at least this many times rougher than the fill before it
_MIN_BLUR_DEPTH = 0.03  # blurred fill must be at least 3% of the dimension on both opposite sides...
_BLUR_SYMMETRY = 0.35  # ...and about as deep on both (padding is centred; a smooth sky is one-sided)
_MIN_KEEP = 0.3  # never keep less than 30% of a dimension: that is not a border any more
_MIN_SIDE = 16  # images smaller than this on either side are never trimmed
_MAX_PASSES = 3  # screenshot chrome comes in layers of different colours (status bar, then white page)

Box = tuple[int, int, int, int]


def _lines(pixels: np.ndarray, side: str) -> np.ndarray:
    """The image's lines ordered from `side` inwards: (n_lines, line_length, channels)."""
    if side == "top":
        return pixels
    if side == "bottom":
        return pixels[::-1]
    if side == "left":
        return pixels.transpose(1, 0, 2)
    return pixels.transpose(1, 0, 2)[::-1]


def _bar_depth(lines: np.ndarray, continue_fraction: float = _BAR_FRACTION) -> int:
    """How many lines from the edge belong to a bar of one colour (0 if the edge line is not uniform); a line
    continues the bar while `continue_fraction` of it is bar-coloured."""
    colour = np.median(lines[0], axis=0)
    # Most photos have no bar: decide on the edge line alone before measuring every line.
    if (np.abs(lines[0] - colour).max(axis=1) <= _COLOUR_TOLERANCE).mean() < _UNIFORM_FRACTION:
        return 0
    close = (np.abs(lines - colour).max(axis=2) <= _COLOUR_TOLERANCE).mean(axis=1)
    outside = np.flatnonzero(close < continue_fraction)
    return int(outside[0]) if outside.size else len(lines)


def _smooth_depth(grey_lines: np.ndarray) -> int:
    """How many lines from the edge are blurred fill: a run of smooth lines (small gradients along and across)
    that ends in a sharp step, where the pasted picture begins. 0 if the edge is not like that."""
    limit = int((len(grey_lines) - 1) * (1 - _MIN_KEEP) / 2)
    if limit <= 2 or grey_lines.shape[1] < 2:
        return 0  # too few lines, or lines too short (a sliver reduced to 1 px) to measure
    # Fill never reaches past `limit`: only the lines up to it (and the one after) are measured.
    grey_lines = grey_lines[: limit + 2]
    along = np.abs(np.diff(grey_lines, axis=1)).mean(axis=1)[:-1]
    across = np.abs(np.diff(grey_lines, axis=0)).mean(axis=1)
    energy = along + across
    # Every candidate depth at once (this runs on every upload): the mean energy of the run so far, and its
    # peak before the last two lines, which may carry JPEG ringing from the step.
    depths = np.arange(2, limit)
    level = np.cumsum(energy)[depths - 1] / depths
    peak = np.maximum.accumulate(energy)[np.maximum(1, depths - 2) - 1]
    textured = (level > _SMOOTH_ENERGY) | (peak > 2 * level + 2)  # picture content, not fill
    step = energy[depths] >= _STEP_RATIO * level + 2
    decided = np.flatnonzero(textured | step)
    if not decided.size or textured[decided[0]]:
        return 0
    depth = int(depths[decided[0]])
    # The step across lines depth -> depth+1 means line `depth` is still fill.
    return depth + 1 if across[depth] > along[depth] else depth


def _find_box(pixels: np.ndarray, strict: bool = False) -> Box:
    """Lines to cut on (top, bottom, left, right) of `pixels`.

    Blurred fill is tested first: its slowly varying colour can also pass as a bar of one colour, and then the
    bar rule would run on into the picture. A bar deeper than the picture can spare (a product shot on white)
    is not a border. `strict` only cuts bars that are uniform line after line (plain padding and letterboxing)."""
    # A matrix product, not mean(axis=2): numpy's mean over a last axis of 3 costs ~20x more.
    grey = pixels @ np.full(3, 1 / 3, dtype=np.float32)
    depth: dict[str, int] = {}
    for first, second, size in (("top", "bottom", grey.shape[0]), ("left", "right", grey.shape[1])):
        a = 0 if strict else _smooth_depth(_lines(grey[..., None], first)[..., 0])
        b = 0 if strict else _smooth_depth(_lines(grey[..., None], second)[..., 0])
        if min(a, b) >= _MIN_BLUR_DEPTH * size and abs(a - b) <= _BLUR_SYMMETRY * max(a, b):
            depth[first], depth[second] = a, b
            continue
        limit = (1 - _MIN_KEEP) * size
        for side in (first, second):
            bar = _bar_depth(_lines(pixels, side), _UNIFORM_FRACTION if strict else _BAR_FRACTION)
            depth[side] = bar if bar <= limit / 2 else 0
    return depth["top"], depth["bottom"], depth["left"], depth["right"]


def trim_borders(image: Image.Image, *, strict: bool = False) -> Image.Image | None:
    """`image` without the borders added around it, or None if there is nothing (or too much) to trim.

    Finds, on each side, a bar of one colour (robust to JPEG noise, and continuing through caption text or UI
    glyphs on the bar), or, on two opposite sides at once, blurred fill of about equal depth. Repeats for
    layered borders (a status bar, then a white page). Deterministic; works on a reduced copy for speed.

    The lenient rules that let a bar run through caption text also let it run on into dark or bright picture
    content next to plain padding; `strict` cuts only bars that stay uniform line after line, in one pass, which
    recovers plainly padded pictures exactly (pad_black_20: 88% -> 100% matched, on a quarter of the corpus).
    """
    rgb = image.convert("RGB")
    if min(rgb.size) < _MIN_SIDE:
        return None  # too small to tell a border from the picture (and the line statistics need lines)
    box = _trim_box(rgb, strict, _reduced(rgb, (0, 0, rgb.width, rgb.height)))
    return None if box is None else rgb.crop(box)


def trim_box(image: Image.Image, *, strict: bool = False) -> Box | None:
    """The box (left, top, right, bottom) `trim_borders` keeps, or None."""
    rgb = image.convert("RGB")
    if min(rgb.size) < _MIN_SIDE:
        return None
    return _trim_box(rgb, strict, _reduced(rgb, (0, 0, rgb.width, rgb.height)))


def _reduced(rgb: Image.Image, box: Box) -> np.ndarray:
    """The part of `rgb` in `box` (left, top, right, bottom), reduced to at most _ANALYSIS_SIDE, as float32."""
    left, top, right, bottom = box
    width, height = right - left, bottom - top
    scale = min(1.0, _ANALYSIS_SIDE / max(width, height))
    small = rgb.crop(box) if box != (0, 0, rgb.width, rgb.height) else rgb
    if scale < 1.0:
        small = small.resize((max(1, round(width * scale)), max(1, round(height * scale))), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float32)


def _trim_box(rgb: Image.Image, strict: bool, pixels: np.ndarray) -> Box | None:
    """The box trim_borders keeps, given the whole image already reduced (`pixels`) for the first pass."""
    left, top, right, bottom = 0, 0, rgb.width, rgb.height
    for passes in range(1 if strict else _MAX_PASSES):
        width, height = right - left, bottom - top
        if passes:
            pixels = _reduced(rgb, (left, top, right, bottom))
        cut_top, cut_bottom, cut_left, cut_right = _find_box(pixels, strict)
        if not (cut_top or cut_bottom or cut_left or cut_right):
            break
        # Back to full-resolution coordinates; round inwards so no bar pixels stay behind.
        sx, sy = width / pixels.shape[1], height / pixels.shape[0]
        new = (
            left + int(np.ceil(cut_left * sx)),
            top + int(np.ceil(cut_top * sy)),
            right - int(np.ceil(cut_right * sx)),
            bottom - int(np.ceil(cut_bottom * sy)),
        )
        if new[2] - new[0] < _MIN_KEEP * rgb.width or new[3] - new[1] < _MIN_KEEP * rgb.height:
            return None
        left, top, right, bottom = new
    if (left, top, right, bottom) == (0, 0, rgb.width, rgb.height):
        return None
    # A trim of one or two pixels is noise, not a border: it would only cost a hash computation.
    if (rgb.width - (right - left)) + (rgb.height - (bottom - top)) < max(3, 0.01 * (rgb.width + rgb.height)):
        return None
    return left, top, right, bottom


def central_crop(image: Image.Image, keep: float) -> Image.Image:
    """The central `keep` fraction of each dimension."""
    return anchored_crop(image, keep, "centre")


ANCHORS: tuple[str, ...] = ("centre", "tl", "tr", "bl", "br")


def anchored_crop(image: Image.Image, keep: float, anchor: str) -> Image.Image:
    """The `keep` fraction of each dimension, centred or pushed into one corner (tl, tr, bl, br)."""
    width, height = image.size
    new_w, new_h = max(1, round(width * keep)), max(1, round(height * keep))
    if anchor == "centre":
        left, top = (width - new_w) // 2, (height - new_h) // 2
    elif anchor in ANCHORS:
        left = width - new_w if anchor[1] == "r" else 0
        top = height - new_h if anchor[0] == "b" else 0
    else:
        raise ValueError(f"unknown crop anchor {anchor!r}")
    return image.crop((left, top, left + new_w, top + new_h))


# PDQ tolerates a crop of about 2% and not 5% (on the corpus, distance <= 31 for 83-87% of 2% centred crops and
# 4% of 5% ones), so one stored crop covers only the crops within a couple of percent of it. The grid below
# covers the 5, 10 and 20% crops of the benchmark exactly, centred or cut from one corner; crops in between
# match less often (the README gives the numbers).
DEFAULT_CROPS: tuple[float, ...] = (0.95, 0.9, 0.8)


def crop_label(keep: float, anchor: str) -> str:
    return f"crop{round(keep * 100)}" + ("" if anchor == "centre" else anchor)


def index_time_variants(
    image: Image.Image, crops: tuple[float, ...] = DEFAULT_CROPS, anchors: tuple[str, ...] = ANCHORS
) -> list[tuple[str, Image.Image]]:
    """Extra images to hash, besides the image itself, when an item is added from an image.

    Returns (label, image) pairs: "trim" and "strict" (when `trim_borders` finds borders under its lenient or
    strict rules, the same views a query is trimmed to, so a trim is a canonical form on both sides: an object
    on a plain background loses that background in both), one crop per keep fraction and anchor ("crop90",
    "crop90tl", ...), and with them the centred square ("square") of an image that is not square already. The
    crops are taken from the image as given, not from its trimmed view: a re-upload is cropped from what was
    shared, and the trimmer cuts into some photos' own flat edges. Every label's hash is stored under the same
    item.
    """
    rgb = image.convert("RGB")
    variants = [(label, rgb.crop(box)) for label, box in _trim_boxes(rgb)]
    for keep in crops:
        variants += [(crop_label(keep, anchor), anchored_crop(rgb, keep, anchor)) for anchor in anchors]
    if crops and max(rgb.size) > _SQUARE_ASPECT * min(rgb.size):
        variants.append(("square", square_crop(rgb)))
    return variants


# Apps crop to a centred square (feeds, avatars, thumbnails); a cut of the long side that no grid point is near.
# Images closer to square than this are covered by the grid already.
_SQUARE_ASPECT = 1.1


def square_crop(image: Image.Image) -> Image.Image:
    """The largest centred square."""
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    return image.crop((left, top, left + side, top + side))


# Every label `query_time_variants` may return, in a fixed order (the benchmark's tables have one slot each).
QUERY_LABELS: tuple[str, ...] = (
    "trim",
    "strict",
    *(f"frame{k + 1}" for k in range(frames.MAX_CANDIDATES)),
    "upright",
    "upright90",
)


def query_time_variants(image: Image.Image) -> list[tuple[str, Image.Image, bool]]:
    """Extra views of an upload to hash and look up, besides the upload itself: (label, image, dihedral).

    "trim" is the upload with added borders removed by the lenient rules (captions, screen chrome, blurred fill),
    "strict" the one with plain bars removed, "frame1".. the boxes `frames.frame_candidates` proposes (blurred
    padding, caption bars and chrome that the trimmer misses); each only when it differs from the views before
    it. These get the eight rotations/flips, since a re-framed picture may also have been rotated or flipped.
    "upright" is the upload turned back when it shows the corner fill of a small rotation (see `rotation`), and
    "upright90" its central 90%, which lies inside what the tilt kept and lands near the stored 90% crop.
    """
    rgb = image.convert("RGB")
    boxes = _trim_boxes(rgb)
    found = [box for box in frames.frame_candidates(rgb) if all(_differ(box, seen) for _, seen in boxes)]
    boxes += [(f"frame{k + 1}", box) for k, box in enumerate(found)]
    views = [(label, rgb.crop(box), True) for label, box in boxes]
    upright = rotation.undo_fill_rotation(rgb)
    if upright is not None:
        views += [("upright", upright, False), ("upright90", central_crop(upright, 0.9), False)]
    return views


def _trim_boxes(rgb: Image.Image) -> list[tuple[str, Box]]:
    """("trim", box) and ("strict", box) for the trims that find borders, the strict one only when it differs;
    both first passes share one reduced copy."""
    if min(rgb.size) < _MIN_SIDE:
        return []
    whole = _reduced(rgb, (0, 0, rgb.width, rgb.height))
    boxes: list[tuple[str, Box]] = []
    for label, box in (("trim", _trim_box(rgb, False, whole)), ("strict", _trim_box(rgb, True, whole))):
        if box is not None and all(_differ(box, seen) for _, seen in boxes):
            boxes.append((label, box))
    return boxes


def _differ(a: Box, b: Box) -> bool:
    """Whether two boxes differ by more than a rounding pixel or two (else hashing both is wasted work)."""
    size = (a[2] - a[0]) + (a[3] - a[1])
    return sum(abs(x - y) for x, y in zip(a, b, strict=True)) > max(2, 0.01 * size)
