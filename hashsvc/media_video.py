"""Untrusted video and animation bytes in, sampled greyscale frames out: the video counterpart of `media`.

Runs inside the decode sandbox (service/sandbox.py), which adds the hard limits (address space, CPU time, a
wall-clock deadline enforced by killing the worker). This module refuses what it can see coming, each with a
typed MediaError before or while decoding:

- bytes (`too_large`), an unknown container (`unsupported_format`), a container without a video stream or whose
  codec is not on the allow-list (`unsupported_format`), an unreadable or truncated header (`corrupt`);
- the frame size declared by the header, and by every decoded frame (`too_many_pixels`);
- the duration declared by the header, and the timestamp of every decoded frame (`video_too_long`);
- the number of frames decoded (`too_many_frames`), and the wall time (`decode_timeout`);
- a file that yields no frame at all (`corrupt`).

Sampling follows Meta's vpdq: frames are numbered in decoding order from 0, frame n is hashed when
n % floor(seconds_per_hash * fps) == 0 (every frame when that is 0), and its timestamp is n / fps, fps being the
stream's average frame rate. Animated GIF, WebP and PNG are decoded by Pillow (their frames have their own
durations): the frame on screen at each multiple of seconds_per_hash is hashed, with its start time. An
animation longer than the duration or frame limit is hashed up to the limit instead of being refused (a long
animation was never a reason to refuse its first frames, and images were always taken that way); decoding stops
there, so the cost stays bounded.

The frames come out as PDQ's grey (0.299 R + 0.587 G + 0.114 B, 0..255), reduced by a whole-number box factor
towards `work_size` when large. For 8-bit YUV video the grey is the Y plane rescaled to full range: for the
BT.601 matrix FFmpeg converts with by default, the RGB weights PDQ applies give back exactly the rescaled Y
(chroma cancels to within 0.001), so the RGB conversion of the reference pipeline is skipped.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image

from hashsvc.errors import MediaError
from hashsvc.media_sniff import DEMUXERS, video_kind

# Codecs a video stream may use: the common ones of uploads and screen recordings. Anything else in FFmpeg
# (hundreds of rarely used decoders) is refused rather than exposed to hostile input.
ALLOWED_CODECS = frozenset(
    {
        "h264", "hevc", "vp8", "vp9", "av1", "libdav1d", "mpeg4", "mpeg1video", "mpeg2video", "h263", "mjpeg",
        "msmpeg4v2", "msmpeg4v3", "wmv1", "wmv2", "theora", "prores", "dvvideo", "rawvideo", "png", "gif",
    }
)  # fmt: skip
_LIMITED_RANGE_FORMATS = frozenset({"yuv420p", "yuv422p", "yuv444p", "nv12", "nv21", "yuv411p", "yuv410p", "yuv440p"})
_FULL_RANGE_FORMATS = frozenset({"yuvj420p", "yuvj422p", "yuvj444p", "yuvj440p", "gray"})
_LUMA = np.array((0.299, 0.587, 0.114), dtype=np.float32)
_MIN_GIF_DELAY_MS = 20  # browsers show GIF frames with a smaller delay (often 0) for 0.1 s
_BROWSER_GIF_DELAY_MS = 100
# Neighbours (see `sample`) are reduced towards this shorter side, not work_size: they only widen a query's
# temporal tolerance, so a few bits of the reduced path's error (pdq_geometry) are worth the cost: hashed at full
# size they added 19-50 % to a 720p query's hashing, reduced 0-12 % (scripts/bench_video_views.py, docs/video.md).
NEIGHBOUR_WORK_SIZE = 240
ANIMATION_FORMATS = {"gif": "GIF", "webp": "WEBP", "png": "PNG"}


@dataclass(frozen=True)
class VideoLimits:
    """What one video upload may cost. Exceeding any of them raises MediaError with the matching code."""

    max_bytes: int = 200 * 1024 * 1024
    max_duration_s: float = 600.0
    max_pixels: int = 3840 * 2160  # per frame
    max_frames: int = 40_000  # frames decoded (not only those hashed)
    timeout_s: float = 60.0


@dataclass(frozen=True)
class Frame:
    """One sampled frame: its number in decoding order, its time, and its grey pixels."""

    number: int
    timestamp: float
    gray: np.ndarray  # float32 (h, w), 0..255, possibly box-reduced from the full size
    full_height: int
    full_width: int
    # For a neighbour (see `sample`), the number of the sampled frame it flanks; None for a sampled frame.
    neighbour_of: int | None = None


@dataclass
class VideoInfo:
    """Facts about the decoded file, complete once every frame was read."""

    kind: str
    width: int = 0
    height: int = 0
    fps: float = 0.0
    frames_decoded: int = 0
    duration_s: float = 0.0  # time of the last decoded frame plus one frame
    codec: str = ""


def sample(
    data: bytes,
    limits: VideoLimits | None = None,
    *,
    seconds_per_hash: float = 1.0,
    work_size: int | None = 400,
    info: VideoInfo | None = None,
    neighbours_s: float = 0.0,
) -> Iterator[Frame]:
    """Decode `data` and yield the sampled frames one at a time (so memory stays that of one frame).

    With `neighbours_s` > 0 (videos only, not animations), the frames that many seconds before and after each
    sampled frame are yielded too, marked with `neighbour_of` (a query's temporal tolerance, hashes/vpdq.py
    `hits`); the sampled frames, their numbers and times are the same as without. `info`, if given, is filled
    in as decoding goes. Raises MediaError (see module doc); never another error for bad input.
    """
    limits = limits or VideoLimits()
    if not data:
        raise MediaError("empty", "the upload is empty")
    if len(data) > limits.max_bytes:
        raise MediaError("too_large", f"the video is {len(data)} bytes; the limit is {limits.max_bytes}")
    kind = video_kind(data)
    if kind is None:
        raise MediaError(
            "unsupported_format", "not a video in an accepted format (MP4, MOV, WebM, MKV, AVI, animated GIF/WebP/PNG)"
        )
    info = info if info is not None else VideoInfo(kind)
    info.kind = kind
    deadline = time.monotonic() + limits.timeout_s
    if kind in ANIMATION_FORMATS:
        yield from _guarded(_animation_frames(data, kind, limits, seconds_per_hash, work_size, info, deadline))
    else:
        frames = _video_frames(data, kind, limits, seconds_per_hash, work_size, info, deadline, neighbours_s)
        yield from _guarded(frames)
    if info.frames_decoded == 0:
        raise MediaError("corrupt", "the video could not be decoded: it holds no frame")


def _guarded(frames: Iterator[Frame]) -> Iterator[Frame]:
    """Turn whatever a decoder of hostile input raises into a typed MediaError."""
    try:
        yield from frames
    except MediaError:
        raise
    except MemoryError:  # in the sandbox, the worker's address-space limit surfaces here
        raise MediaError("too_expensive", "the video needs more memory to decode than is allowed") from None
    except Exception as exc:  # noqa: BLE001 - FFmpeg and Pillow raise many types on broken input
        text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise MediaError("corrupt", f"the video could not be decoded: {text}") from None


# ------------------------------------------------------------------------------------------------ video


def _video_frames(
    data: bytes,
    kind: str,
    limits: VideoLimits,
    seconds_per_hash: float,
    work_size: int | None,
    info: VideoInfo,
    deadline: float,
    neighbours_s: float = 0.0,
) -> Iterator[Frame]:
    import av  # imported here: the image path never pays for FFmpeg's libraries

    try:
        container = av.open(
            io.BytesIO(data),
            format=DEMUXERS[kind],
            options={"probesize": "5000000", "analyzeduration": "5000000"},
            metadata_errors="ignore",
        )
    except av.FFmpegError as exc:
        raise MediaError("corrupt", f"the video container could not be read: {_describe(exc)}") from None
    with container:
        if not container.streams.video:
            raise MediaError("unsupported_format", "the file holds no video stream")
        stream = container.streams.video[0]
        context = stream.codec_context
        if context.name not in ALLOWED_CODECS:
            raise MediaError("unsupported_format", f"video codec {context.name!r} is not accepted")
        _check_size(context.width, context.height, limits, "the video header declares")
        fps = _frame_rate(stream)
        _check_declared_duration(stream, container, limits)
        context.thread_count = 1  # one core per job: the sandbox's CPU budget and fairness assume it
        info.width, info.height, info.fps, info.codec = context.width, context.height, fps, context.name
        frame_mod = max(1, int(seconds_per_hash * fps))  # vpdq: floor, and every frame when that is 0
        # Neighbours sit `offset` frames either side of a sampled frame; none when they would reach the next
        # sample's (every-frame sampling, or a rate too low to place them between samples).
        offset = round(neighbours_s * fps)
        offset = offset if offset > 0 and 2 * offset < frame_mod else 0
        for number, frame in enumerate(container.decode(stream)):
            if time.monotonic() > deadline:
                raise _timeout(limits)
            if number >= limits.max_frames:
                raise MediaError(
                    "too_many_frames", f"the video has more than {limits.max_frames:,} frames; that is the limit"
                )
            timestamp = number / fps
            if timestamp > limits.max_duration_s:
                raise _too_long(limits)
            _check_size(frame.width, frame.height, limits, "a video frame has")
            info.frames_decoded = number + 1
            info.duration_s = (number + 1) / fps
            if number % frame_mod == 0:
                yield Frame(number, timestamp, _video_gray(frame, work_size), frame.height, frame.width)
            elif offset and (number + offset) % frame_mod == 0:
                gray = _video_gray(frame, _neighbour_size(work_size))
                yield Frame(number, timestamp, gray, frame.height, frame.width, neighbour_of=number + offset)
            elif offset and (number - offset) % frame_mod == 0:
                gray = _video_gray(frame, _neighbour_size(work_size))
                yield Frame(number, timestamp, gray, frame.height, frame.width, neighbour_of=number - offset)


def _neighbour_size(work_size: int | None) -> int:
    return min(work_size, NEIGHBOUR_WORK_SIZE) if work_size else NEIGHBOUR_WORK_SIZE


def _frame_rate(stream: object) -> float:
    for name in ("average_rate", "guessed_rate", "base_rate"):
        rate = getattr(stream, name, None)
        if rate and 0 < float(rate) <= 1000:
            return float(rate)
    return 30.0  # a stream without any rate: vpdq would divide by zero; assume a common rate


def _check_declared_duration(stream: object, container: object, limits: VideoLimits) -> None:
    duration = None
    if getattr(stream, "duration", None) and getattr(stream, "time_base", None):
        duration = float(stream.duration * stream.time_base)  # type: ignore[attr-defined]
    elif getattr(container, "duration", None):
        duration = container.duration / 1_000_000  # type: ignore[attr-defined]
    if duration is not None and duration > limits.max_duration_s:
        raise _too_long(limits, duration)


def _video_gray(frame: object, work_size: int | None) -> np.ndarray:
    """PDQ's grey of a decoded frame, box-reduced towards work_size."""
    fmt = frame.format.name  # type: ignore[attr-defined]
    if fmt in _LIMITED_RANGE_FORMATS or fmt in _FULL_RANGE_FORMATS:
        plane = frame.planes[0]  # type: ignore[attr-defined]
        rows = np.frombuffer(plane, dtype=np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width]
        full_range = fmt in _FULL_RANGE_FORMATS or frame.color_range == 2  # type: ignore[attr-defined]
        gray = _reduce(rows, work_size)
        if full_range:
            return gray
        # Limited range: 16..235 -> 0..255, clipped as the RGB conversion clips.
        return np.clip((gray - np.float32(16.0)) * np.float32(255.0 / 219.0), 0.0, 255.0)
    rgb = frame.to_ndarray(format="rgb24")  # type: ignore[attr-defined]
    return _reduce_float(rgb.astype(np.float32) @ _LUMA, work_size)


def _reduce(pixels: np.ndarray, work_size: int | None) -> np.ndarray:
    factor = _factor(pixels.shape, work_size)
    if factor == 1:
        return pixels.astype(np.float32)
    image = Image.fromarray(np.ascontiguousarray(pixels), mode="L").reduce(factor)
    return np.asarray(image, dtype=np.float32)


def _reduce_float(gray: np.ndarray, work_size: int | None) -> np.ndarray:
    factor = _factor(gray.shape, work_size)
    if factor == 1:
        return gray
    image = Image.fromarray(np.ascontiguousarray(gray), mode="F").reduce(factor)
    return np.asarray(image, dtype=np.float32)


def _factor(shape: tuple[int, ...], work_size: int | None) -> int:
    if not work_size:
        return 1
    return max(1, min(shape[0], shape[1]) // work_size)


# -------------------------------------------------------------------------------------------- animations


def _animation_frames(
    data: bytes,
    kind: str,
    limits: VideoLimits,
    seconds_per_hash: float,
    work_size: int | None,
    info: VideoInfo,
    deadline: float,
) -> Iterator[Frame]:
    image = Image.open(io.BytesIO(data), formats=[ANIMATION_FORMATS[kind]])
    with image:
        _check_size(image.width, image.height, limits, "the animation header declares")
        info.width, info.height, info.codec = image.width, image.height, kind
        # Times in whole milliseconds (frame delays are whole milliseconds): sums of floats would drift.
        start_ms = 0
        next_sample_ms = 0
        step_ms = round(seconds_per_hash * 1000)
        number = 0
        while True:
            if time.monotonic() > deadline:
                raise _timeout(limits)
            if number >= limits.max_frames:
                break  # an animation is hashed up to the limits (see the module doc), a video is refused
            try:
                image.seek(number)
            except EOFError:
                break
            _check_size(image.width, image.height, limits, "an animation frame has")
            delay_ms = round(float(image.info.get("duration") or 0))
            if delay_ms < _MIN_GIF_DELAY_MS:
                delay_ms = _BROWSER_GIF_DELAY_MS
            end_ms = start_ms + delay_ms
            if start_ms >= limits.max_duration_s * 1000:
                break
            info.frames_decoded = number + 1
            info.duration_s = end_ms / 1000
            if step_ms <= 0 or next_sample_ms < end_ms:
                yield Frame(number, start_ms / 1000, _image_gray(image, work_size), image.height, image.width)
                # Later sample points this frame also covers would hash the same picture again.
                while step_ms > 0 and next_sample_ms < end_ms:
                    next_sample_ms += step_ms
            start_ms = end_ms
            number += 1
        if info.frames_decoded:
            info.fps = info.frames_decoded / info.duration_s if info.duration_s else 0.0


def _image_gray(image: Image.Image, work_size: int | None) -> np.ndarray:
    """The frame as PDQ's grey, alpha composited onto white as `media` does for still images."""
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    rgb = np.asarray(Image.alpha_composite(background, rgba).convert("RGB"), dtype=np.float32)
    return _reduce_float(rgb @ _LUMA, work_size)


# ---------------------------------------------------------------------------------------------- checks


def _check_size(width: int, height: int, limits: VideoLimits, what: str) -> None:
    if width <= 0 or height <= 0:
        raise MediaError("corrupt", f"{what} an empty size {width}x{height}")
    if width * height > limits.max_pixels:
        pixels = f"{width}x{height} = {width * height:,} pixels"
        raise MediaError("too_many_pixels", f"{what} {pixels}; the limit is {limits.max_pixels:,}")


def _too_long(limits: VideoLimits, declared: float | None = None) -> MediaError:
    said = f" ({declared:,.1f} s declared)" if declared is not None else ""
    return MediaError("video_too_long", f"the video is longer than the {limits.max_duration_s:g} s limit{said}")


def _timeout(limits: VideoLimits) -> MediaError:
    return MediaError("decode_timeout", f"decoding took longer than the {limits.timeout_s:g} s limit")


def _describe(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return (text or type(exc).__name__)[:200]
