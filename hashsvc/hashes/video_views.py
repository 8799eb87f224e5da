"""The trimmed view of a video: the picture inside bars or a screen recording's desktop, hashed as a second track.

Why: a letterboxed or pillarboxed re-upload, or a screen recording (the video shrunk into a player window on a
desktop), changes every frame's PDQ by 90-120 bits, so no frame matches (bench_video_robustness: 0 %). Cutting
the added border off each frame gives back PDQs within a few bits of the original's. Unlike an image, a video
shows its border on every frame while the picture moves: the border is the box that the image trimmer
(`augment.trim_box`, strict and lenient rules) finds on most sampled frames, which ignores the frames where the
lenient rule runs on into dark picture content.

Pure functions on PDQ's grey frames (float32, 0..255).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
from PIL import Image

from hashsvc.hashes import augment

Box = tuple[int, int, int, int]  # left, top, right, bottom, in the frame's (possibly reduced) pixels

MIN_AGREEMENT = 0.5  # share of sampled frames that must show the same box: a border is there all along
_ANALYSIS_SIDE = 200  # frames are searched for borders at this longest side: 0.5 % per pixel, PDQ tolerates ~1 %
_SNAP = 0.01  # boxes within 1 % of the frame's size on every side are the same box (PDQ tolerates that)


def frame_boxes(gray: np.ndarray) -> list[Box]:
    """The trim boxes (lenient and strict rules, distinct) of one grey frame, in its pixels; empty if there is
    no border. Found on a copy reduced to _ANALYSIS_SIDE (the trimmer costs tens of ms per frame at 640x360)."""
    # Every k-th pixel first (k keeps at least twice the analysis side): converting and box-reducing a whole
    # 1280 x 720 frame cost ~10 ms of the ~50 ms of decoding a second of 720p24; bars are flat, noise averages.
    k = max(1, max(gray.shape) // (2 * _ANALYSIS_SIDE))
    image = Image.fromarray(np.clip(gray[::k, ::k], 0, 255).astype(np.uint8))
    scale = min(1.0, _ANALYSIS_SIDE / max(image.size))
    if scale < 1.0:
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.BOX)
    image = image.convert("RGB")
    sx, sy = gray.shape[1] / image.width, gray.shape[0] / image.height
    boxes = []
    for box in (augment.trim_box(image), augment.trim_box(image, strict=True)):
        if box is not None:  # back to the frame's pixels, rounded inwards so that no border pixel stays
            left, top, right, bottom = box
            boxes.append((math.ceil(left * sx), math.ceil(top * sy), math.floor(right * sx), math.floor(bottom * sy)))
    return list(dict.fromkeys(boxes))


def consensus_box(boxes_per_frame: Sequence[Iterable[Box]], shape: tuple[int, int]) -> Box | None:
    """The innermost box found on at least MIN_AGREEMENT of the frames (each frame votes once per distinct
    snapped box), as its most common exact form; None if no box is that common. `shape` is the frames' (height,
    width). Innermost: a screen recording's strict box keeps the player's title bar, its lenient one does not."""
    if not boxes_per_frame:
        return None
    height, width = shape
    step = (max(1.0, _SNAP * width), max(1.0, _SNAP * height))

    def snapped(box: Box) -> tuple[int, ...]:
        return tuple(round(v / step[i % 2]) for i, v in enumerate(box))

    votes: Counter[tuple[int, ...]] = Counter()
    exact: dict[tuple[int, ...], Counter[Box]] = {}
    for boxes in boxes_per_frame:
        keys = {snapped(box): box for box in boxes}
        votes.update(list(keys))  # one vote per distinct box of this frame
        for key, box in keys.items():
            exact.setdefault(key, Counter())[box] += 1
    if not votes:
        return None
    common = [key for key, count in votes.items() if count >= MIN_AGREEMENT * len(boxes_per_frame)]
    if not common:
        return None
    box = exact[min(common, key=lambda k: (k[2] - k[0]) * (k[3] - k[1]))].most_common(1)[0][0]
    return box


def crop(gray: np.ndarray, box: Box, shape: tuple[int, int]) -> np.ndarray:
    """`gray` cut to `box`, a box found on frames of `shape` (height, width): scaled if this frame differs."""
    sy, sx = gray.shape[0] / shape[0], gray.shape[1] / shape[1]
    left, top, right, bottom = box
    return gray[round(top * sy) : round(bottom * sy), round(left * sx) : round(right * sx)]
