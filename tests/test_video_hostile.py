"""Hostile videos: every one is refused with a typed 4xx (a MediaError code) within bounded time, decoded in a
real sandbox worker under its memory limit, and the pool keeps serving afterwards."""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator

import numpy as np
import pytest
from videos import clip, clip_frames, encode, repeated, tiny_frames_gif

from hashsvc.errors import MediaError
from hashsvc.media_video import VideoLimits
from hashsvc.service.sandbox import Sandbox, SandboxLimits
from hashsvc.service.video_hashing import VideoHashes, hash_video

MIB = 1024 * 1024
SANDBOX = SandboxLimits(memory_bytes=1024 * MIB, deadline_s=20.0, recycle_rss_bytes=256 * MIB)


@pytest.fixture(scope="module")
def pool() -> Iterator[Sandbox]:
    sandbox = Sandbox(1, SANDBOX)
    sandbox.start()
    yield sandbox
    sandbox.close()


@pytest.fixture(scope="module")
def good_clip() -> bytes:
    return clip(4.0, seed=3)


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """600 identical 720p frames at 120 fps (5 s): about 0.3 kB per frame on disk, 1.4 MB each decoded."""
    frame = np.asarray(next(iter(clip_frames(0.1, size=(1280, 720), seed=5))))
    data = repeated(frame, 600, fps=120)
    assert len(data) < 600 * 1024
    return data


def refusal(pool: Sandbox, data: bytes, limits: VideoLimits | None = None, budget_s: float = 10.0) -> MediaError:
    """The MediaError the sandbox answers for `data`, checking that it came within `budget_s`."""
    started = time.monotonic()
    with pytest.raises(MediaError) as info:
        pool.run(hash_video, data, limits=limits or VideoLimits())
    assert time.monotonic() - started < budget_s
    assert 400 <= info.value.http_status < 500
    return info.value


def still_serves(pool: Sandbox, good_clip: bytes) -> None:
    result = pool.run(hash_video, good_clip)
    assert isinstance(result, VideoHashes) and len(result.features) == 4


def test_a_good_clip_hashes_in_the_sandbox_as_in_process(pool: Sandbox, good_clip: bytes) -> None:
    assert pool.run(hash_video, good_clip) == hash_video(good_clip)


def test_truncated_video_is_corrupt(pool: Sandbox, good_clip: bytes) -> None:
    # PyAV's MP4 muxer writes the index (moov) at the end, as phones and most encoders do: a cut file has none.
    error = refusal(pool, good_clip[: len(good_clip) // 2])
    assert (error.code, error.http_status) == ("corrupt", 422)
    still_serves(pool, good_clip)


def test_a_container_without_frames_is_corrupt(pool: Sandbox, good_clip: bytes) -> None:
    # A Matroska file cut at its first cluster: header and video track intact, zero frames, zero duration.
    mkv = encode([np.zeros((48, 64, 3), np.uint8)] * 2, fps=10, container="matroska")
    empty = mkv[: mkv.index(b"\x1f\x43\xb6\x75")]
    error = refusal(pool, empty)
    assert error.code == "corrupt"
    assert refusal(pool, good_clip[:64]).code == "corrupt"  # the header boxes and nothing else
    still_serves(pool, good_clip)


def test_100k_tiny_frames_stop_at_the_frame_limit(pool: Sandbox, good_clip: bytes) -> None:
    gif = tiny_frames_gif(100_000)  # 2.3 MB, 100,000 frames of 1x1
    # An animation is hashed up to the limits, like images always took animations, and decoding stops there.
    started = time.monotonic()
    hashed = pool.run(hash_video, gif, limits=VideoLimits(max_frames=2_000))
    assert hashed.frames_decoded == 2_000 and time.monotonic() - started < 10.0
    # Under the defaults (100,000 x 100 ms is 10,000 s), decoding stops at the 600 s limit.
    hashed = pool.run(hash_video, gif)
    assert hashed.frames_decoded == 6_000 and hashed.duration_s == 600.0
    # A video is refused instead: its frames are the content, and a cut one could evade matching.
    many = encode((np.full((16, 16, 3), n % 256, np.uint8) for n in range(3000)), fps=1000)
    assert refusal(pool, many, VideoLimits(max_frames=1000)).code == "too_many_frames"
    still_serves(pool, good_clip)


def _patched_avi(width: int, height: int) -> bytes:
    """A raw-video AVI whose headers claim width x height (a 16x16 file inside)."""
    data = bytearray(encode([np.zeros((16, 16, 3), np.uint8)] * 2, fps=1, container="avi", codec="rawvideo",
                            pix_fmt="bgr24"))  # fmt: skip
    avih = data.index(b"avih") + 8
    struct.pack_into("<II", data, avih + 32, width, height)
    strf = data.index(b"strf") + 8
    struct.pack_into("<ii", data, strf + 4, width, height)
    return bytes(data)


def test_huge_resolution_in_the_header_is_refused_before_decoding(pool: Sandbox, good_clip: bytes) -> None:
    error = refusal(pool, _patched_avi(16_000, 9_000), budget_s=5.0)
    assert (error.code, error.http_status) == ("too_many_pixels", 413)
    gif = bytearray(tiny_frames_gif(3))
    struct.pack_into("<HH", gif, 6, 65535, 65535)  # the logical screen of a 3-frame GIF
    assert refusal(pool, bytes(gif), budget_s=5.0).code == "too_many_pixels"
    still_serves(pool, good_clip)


def test_codec_bomb_is_stopped_by_the_frame_and_time_limits(pool: Sandbox, good_clip: bytes, bomb: bytes) -> None:
    assert refusal(pool, bomb, VideoLimits(max_frames=300)).code == "too_many_frames"
    assert refusal(pool, bomb, VideoLimits(max_duration_s=2.0)).code == "video_too_long"  # 5 s declared
    # 600 frames of 720p take far longer than 20 ms to decode on any machine; at 0.2 s a quiet one finished them
    error = refusal(pool, bomb, VideoLimits(timeout_s=0.02))
    assert (error.code, error.http_status) == ("decode_timeout", 422)
    still_serves(pool, good_clip)


def test_the_sandbox_deadline_kills_a_job_the_decoder_does_not_stop(bomb: bytes) -> None:
    tight = Sandbox(1, SandboxLimits(memory_bytes=1024 * MIB, deadline_s=0.2, recycle_rss_bytes=256 * MIB))
    try:
        tight.start()  # the deadline is for the job, not for starting the worker
        started = time.monotonic()
        with pytest.raises(MediaError) as info:
            # 600 frames of 720p take far longer than 20 ms on any machine; at 0.3 s a quiet machine finished them.
            tight.run(hash_video, bomb, deadline_s=0.02, limits=VideoLimits(timeout_s=60.0))
        assert info.value.code == "decode_timeout"
        assert time.monotonic() - started < 5.0
    finally:
        tight.close()


def test_non_video_bytes_with_a_video_name_are_unsupported(pool: Sandbox) -> None:
    for data in (b"<html>not a video</html>" * 50, bytes(range(256)) * 40):
        error = refusal(pool, data)
        assert (error.code, error.http_status) == ("unsupported_format", 415)
    # Video magic followed by garbage: the container cannot be read.
    assert refusal(pool, b"\x00\x00\x00\x18ftypisom" + bytes(5000)).code == "corrupt"
    assert refusal(pool, b"\x1a\x45\xdf\xa3" + bytes(range(256)) * 20).code == "corrupt"
    assert refusal(pool, b"RIFF\x00\x10\x00\x00AVI LIST" + bytes(4000)).code == "corrupt"


def test_a_codec_outside_the_allow_list_is_refused(pool: Sandbox) -> None:
    data = encode([np.zeros((16, 16, 3), np.uint8)] * 3, fps=1, container="avi", codec="ffv1", pix_fmt="bgr0")
    error = refusal(pool, data)
    assert (error.code, error.http_status) == ("unsupported_format", 415)
