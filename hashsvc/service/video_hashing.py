"""Use case: video or animation bytes -> vPDQ frame hashes plus MD5 and SHA-256 of the file.

`hash_video` is what a sandbox worker runs for a video upload (service/sandbox.py `Sandbox.run`): the frames
stream out of the decoder one at a time and only their 32-byte hashes are kept, so a worker's memory is that
of one decoded frame whatever the length.

A query video (`views`) also gets its sampled frames' neighbours, the frames a quarter second either side of
each (vpdq.hits: a re-timed copy shows the item's sampled moments between its own whole seconds); they are
matched with the frames they flank and never exported.

A query video is also hashed as its trimmed view when a border shows on most of its frames (letterbox bars, a
screen recording's desktop; hashes/video_views.py): a second decoding pass, only for such videos, hashes every
sampled frame cut to that box. That track is matched like the frames themselves and never exported.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from hashsvc import media_video
from hashsvc.errors import MediaError
from hashsvc.features import video as video_features
from hashsvc.hashes import compute, video_views, vpdq
from hashsvc.hashes.codec import to_hex


@dataclass(frozen=True)
class VideoHashes:
    features: tuple[vpdq.Feature, ...]
    md5: bytes
    sha256: bytes
    kind: str  # mp4, mov, webm, mkv, avi, gif, webp, png
    width: int
    height: int
    fps: float
    duration_s: float
    frames_decoded: int
    trimmed: tuple[vpdq.Feature, ...] = ()  # the frames cut to the video's border box, when it has one
    neighbours: tuple[vpdq.Neighbour, ...] = ()  # a query's frames either side of its sampled ones
    trimmed_neighbours: tuple[vpdq.Neighbour, ...] = ()  # the same, cut to the border box
    keyframes: tuple[video_features.Keyframe, ...] = ()  # ORB features of chosen frames (features.video)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of the API and the CLI: `vpdq` in the exchange format (a list of
        "pdq,quality,timestamp" strings, as python-threatexchange serializes a `vpdq` signal)."""
        return {
            "media": "video",
            "format": self.kind,
            "vpdq": [str(f) for f in self.features],
            "md5": to_hex(self.md5),
            "sha256": to_hex(self.sha256),
            "width": self.width,
            "height": self.height,
            "duration_s": round(self.duration_s, 3),
            "frames_decoded": self.frames_decoded,
        }


def hash_video(
    data: bytes,
    limits: media_video.VideoLimits | None = None,
    *,
    seconds_per_hash: float = vpdq.SECONDS_PER_HASH,
    work_size: int | None = 400,
    views: bool = False,
    keyframes: int = 0,
    keyframe_change: int = video_features.KEYFRAME_CHANGE,
) -> VideoHashes:
    """Decode `data` (a video or an animated image) and hash its sampled frames; with `views`, also their
    neighbours and the trimmed view (see module doc); with `keyframes`, the ORB features of at most that many
    sampled frames spread over the video, each more than `keyframe_change` PDQ bits from the last one chosen
    (features.video.KeyframePicker), from the same decode. Raises MediaError."""
    info = media_video.VideoInfo("")
    started = time.monotonic()
    features, boxes, neighbours = [], [], []
    shape = (0, 0)
    spread = vpdq.NEIGHBOUR_S if views else 0.0
    picker = video_features.KeyframePicker(keyframes, keyframe_change)
    frames = media_video.sample(
        data, limits, seconds_per_hash=seconds_per_hash, work_size=work_size, info=info, neighbours_s=spread
    )
    for frame in frames:
        code, quality = vpdq.frame_pdq(frame.gray, frame.full_height, frame.full_width)
        feature = vpdq.Feature(code, quality, frame.timestamp, frame.number)
        if frame.neighbour_of is not None:
            neighbours.append((frame.neighbour_of, feature))
            continue
        features.append(feature)
        picker.offer(code, frame.timestamp, frame.gray)
        if views:
            shape = frame.gray.shape
            boxes.append(video_views.frame_boxes(frame.gray))
    box = video_views.consensus_box(boxes, shape) if views else None
    trimmed: tuple[vpdq.Feature, ...] = ()
    trimmed_neighbours: tuple[vpdq.Neighbour, ...] = ()
    if box is not None:
        # The second pass gets what is left of the time budget, and running out of it only costs the view: a
        # long letterboxed film that decodes once in time must not fail because its view took a second pass.
        limits = limits or media_video.VideoLimits()
        left = limits.timeout_s - (time.monotonic() - started)
        try:
            if left <= 0:
                raise MediaError("decode_timeout", "no time left for the trimmed view")
            second = dataclasses.replace(limits, timeout_s=left)
            trimmed, trimmed_neighbours = _trimmed(data, second, box, shape, seconds_per_hash, work_size, spread)
        except MediaError as exc:
            if exc.code != "decode_timeout":
                raise
    return VideoHashes(
        features=features,
        md5=compute.md5(data),
        sha256=compute.sha256(data),
        kind=info.kind,
        width=info.width,
        height=info.height,
        fps=info.fps,
        duration_s=info.duration_s,
        frames_decoded=info.frames_decoded,
        trimmed=trimmed,
        neighbours=_flanking(neighbours, features),
        trimmed_neighbours=_flanking(trimmed_neighbours, trimmed),
        keyframes=picker.keyframes(),
    )


def _trimmed(
    data: bytes,
    limits: media_video.VideoLimits | None,
    box: video_views.Box,
    shape: tuple[int, int],
    seconds_per_hash: float,
    work_size: int | None,
    spread: float,
) -> tuple[tuple[vpdq.Feature, ...], tuple[vpdq.Neighbour, ...]]:
    """The second pass: every sampled frame and neighbour cut to `box` (found on frames of `shape`), hashed."""
    features, neighbours = [], []
    frames = media_video.sample(
        data, limits, seconds_per_hash=seconds_per_hash, work_size=work_size, neighbours_s=spread
    )
    for frame in frames:
        part = video_views.crop(frame.gray, box, shape)
        scale = frame.full_height / frame.gray.shape[0]
        height, width = round(part.shape[0] * scale), round(part.shape[1] * scale)
        code, quality = vpdq.frame_pdq(part, height, width)
        feature = vpdq.Feature(code, quality, frame.timestamp, frame.number)
        if frame.neighbour_of is None:
            features.append(feature)
        else:
            neighbours.append((frame.neighbour_of, feature))
    return tuple(features), tuple(neighbours)


def _flanking(neighbours: Iterable[vpdq.Neighbour], features: Iterable[vpdq.Feature]) -> tuple[vpdq.Neighbour, ...]:
    """The neighbours whose sampled frame exists (the last one's "before" neighbour comes out of the decoder
    before the video turns out to end short of that sample)."""
    sampled = {f.frame for f in features}
    return tuple((anchor, f) for anchor, f in neighbours if anchor in sampled)
