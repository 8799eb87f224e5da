"""Test videos made on the fly with PyAV from generated pictures, so that the suite ships no video files.

A "clip" is a slow pan and zoom across one large generated picture, with a cut to another picture every
`scene_s` seconds: frames change continuously like a real video's, and distinct seeds give distinct videos.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import av
import numpy as np
from images import photo
from PIL import Image


def clip_frames(
    seconds: float, fps: int = 10, size: tuple[int, int] = (320, 240), seed: int = 0, scene_s: float = 4.0
) -> Iterator[np.ndarray]:
    """RGB frames (h, w, 3) of a pan-and-zoom clip: a new scene (picture) every `scene_s` seconds."""
    width, height = size
    scenes: dict[int, Image.Image] = {}
    for n in range(round(seconds * fps)):
        t = n / fps
        scene = int(t // scene_s)
        if scene not in scenes:
            scenes[scene] = photo(width * 2, height * 2, seed=seed * 1000 + scene)
        picture = scenes[scene]
        progress = (t % scene_s) / scene_s
        zoom = 1.6 - 0.3 * progress  # the visible window shrinks: a slow zoom in
        w, h = width * zoom, height * zoom
        x0 = (picture.width - w) * progress  # while panning left to right
        y0 = (picture.height - h) * 0.5
        view = picture.resize((width, height), Image.BILINEAR, box=(x0, y0, x0 + w, y0 + h))
        yield np.asarray(view)


def encode(
    frames: Iterator[np.ndarray] | list[np.ndarray],
    fps: int = 10,
    container: str = "mp4",
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    options: dict[str, str] | None = None,
) -> bytes:
    """Encode RGB frames into a video file in memory."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=container) as output:
        stream = output.add_stream(codec, rate=fps)
        stream.pix_fmt = pix_fmt
        stream.options = options or ({"preset": "ultrafast"} if codec == "libx264" else {})
        first = True
        for rgb in frames:
            if first:
                stream.height, stream.width = rgb.shape[:2]
                first = False
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)
    return buffer.getvalue()


def repeated(rgb: np.ndarray, count: int, fps: int) -> bytes:
    """An H.264 MP4 of one picture shown `count` times (converted to YUV once: fast to make)."""
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24").reformat(format="yuv420p")
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as output:
        stream = output.add_stream("libx264", rate=fps)
        stream.pix_fmt = "yuv420p"
        stream.height, stream.width = rgb.shape[:2]
        stream.options = {"preset": "ultrafast", "tune": "zerolatency"}
        for _ in range(count):
            frame.pts = None
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)
    return buffer.getvalue()


def clip(seconds: float = 6.0, fps: int = 10, size: tuple[int, int] = (320, 240), seed: int = 0, **kw: object) -> bytes:
    """An H.264 MP4 of `clip_frames`."""
    return encode(clip_frames(seconds, fps, size, seed), fps=fps, **kw)  # type: ignore[arg-type]


def animated_gif(frames: list[np.ndarray], duration_ms: int = 100) -> bytes:
    images = [Image.fromarray(f) for f in frames]
    buffer = io.BytesIO()
    images[0].save(buffer, "GIF", save_all=True, append_images=images[1:], duration=duration_ms, loop=0)
    return buffer.getvalue()


def tiny_frames_gif(count: int) -> bytes:
    """A GIF of `count` 1x1 frames, written byte by byte (Pillow would take minutes for 100k frames)."""
    header = b"GIF89a" + (1).to_bytes(2, "little") * 2 + bytes([0x80, 0, 0]) + b"\x00\x00\x00\xff\xff\xff"
    frame = (
        b"\x21\xf9\x04\x00\x01\x00\x00\x00"  # graphic control: 10 ms delay
        + b"\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00"  # image descriptor 1x1, no local table
        + b"\x02\x02\x44\x01\x00"  # LZW min code size 2, one sub-block, end
    )
    return header + frame * count + b"\x3b"
