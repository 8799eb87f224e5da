"""The decode cost check: what an image will cost in memory is known from its header, and a file that would cost
more than the budget is refused (413 `too_expensive`) before a pixel is decoded. Conversions run in strips, so
real images cost little more than their decoded pixels; long animations give their first frame."""

from __future__ import annotations

import io
import struct
import time

import numpy as np
import pytest
from hostile import HEAVY_TIFF_MODES, gif_with_frames, png_of_zeros, tiff_claiming
from images import encode, photo
from PIL import Image

from hashsvc import media, media_cost
from hashsvc.errors import MediaError
from hashsvc.media import Limits, PixelRules, decode, decode_first
from hashsvc.service.hashing import hash_image

MIB = 1024 * 1024


def refusal(data: bytes, limits: Limits | None = None) -> MediaError:
    with pytest.raises(MediaError) as info:
        decode_first(data, limits)
    return info.value


def test_a_100_mp_grey_alpha_png_of_194_kb_is_refused_before_decoding() -> None:
    data = png_of_zeros(9990, 9990, "LA")
    assert len(data) < 200_000
    started = time.monotonic()
    error = refusal(data)
    assert time.monotonic() - started < 0.5  # the header only: decoding it takes over a second
    assert error.code == "too_expensive"
    assert error.http_status == 413
    assert "9990x9990" in error.message and "MiB" in error.message


@pytest.mark.parametrize("mode", HEAVY_TIFF_MODES)
def test_heavy_tiffs_in_every_heavy_mode_are_refused_before_decoding(mode: str) -> None:
    # A decoder that went ahead would hit the 8 x 8 strip and answer `corrupt` instead.
    started = time.monotonic()
    assert refusal(tiff_claiming(9990, 9990, mode)).code == "too_expensive"
    assert time.monotonic() - started < 0.5


def test_a_one_strip_tiff_is_charged_for_libtiffs_strip_buffer() -> None:
    # 6,000 x 6,000 of 16-bit grey is 69 MiB decoded; in one deflate strip libtiff needs as much again.
    one_strip = tiff_claiming(6000, 6000, "I;16")
    image = Image.open(io.BytesIO(one_strip))
    cost = media_cost.peak_bytes(image, one_strip, full_size=image.size, work_size=400, hash_bytes_per_pixel=32)
    assert cost > 2 * 6000 * 6000 * 2
    assert refusal(one_strip, Limits(max_decode_bytes=128 * MIB)).code == "too_expensive"


def test_the_budget_is_a_setting() -> None:
    data = encode(photo(1200, 900), "PNG")
    assert decode_first(data, Limits(max_decode_bytes=64 * MIB)).pixels.mode == "RGB"
    assert refusal(data, Limits(max_decode_bytes=1 * MIB)).code == "too_expensive"


@pytest.mark.parametrize(
    ("size", "mode", "fmt"),
    [
        ((7680, 4320), "RGBA", "PNG"),  # an 8K screenshot
        ((6000, 4000), "RGB", "JPEG"),  # 24 MP: decoded at 1/8 scale
        ((8660, 5773), "RGB", "JPEG"),  # 50 MP
    ],
)
def test_real_photos_and_screenshots_are_within_the_default_budget(
    size: tuple[int, int], mode: str, fmt: str
) -> None:
    image = Image.new(mode, size)
    header_only = Image.open(io.BytesIO(encode(image, fmt)))
    if fmt == "JPEG":
        header_only.draft("RGB", (size[0] // 8, size[1] // 8))
    cost = media_cost.peak_bytes(header_only, b"", full_size=size, work_size=400, hash_bytes_per_pixel=80)
    assert cost < media.DEFAULT_MAX_DECODE_BYTES


def test_a_progressive_jpeg_is_charged_for_its_full_size_coefficients() -> None:
    # libjpeg keeps every coefficient of a multi-scan JPEG, even when it decodes at 1/8 scale.
    picture = photo(1600, 1200)
    baseline, progressive = encode(picture), encode(picture, progressive=True)
    costs = []
    for data in (baseline, progressive):
        image = Image.open(io.BytesIO(data))
        image.draft("RGB", (200, 150))
        costs.append(media_cost.peak_bytes(image, data, full_size=(1600, 1200), work_size=400, hash_bytes_per_pixel=0))
    assert costs[1] - costs[0] >= 1600 * 1200 * 2  # at least one 16-bit coefficient per luma sample


STRIP_MODES = ["LA", "RGBA", "PA", "P", "I;16", "I", "F", "CMYK", "L", "1"]


@pytest.mark.parametrize("mode", STRIP_MODES)
@pytest.mark.parametrize("work_size", [None, 100])
def test_converting_in_strips_gives_exactly_the_pixels_of_converting_the_whole_frame(
    mode: str, work_size: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(len(mode))
    source = Image.fromarray(rng.integers(0, 256, (333, 517, 4), dtype=np.uint8), "RGBA")
    if mode == "I;16":
        image = Image.fromarray(rng.integers(0, 65536, (333, 517), dtype=np.uint16))
    elif mode == "F":
        image = Image.fromarray(rng.uniform(0, 1, (333, 517)).astype(np.float32))
    elif mode in ("P", "PA"):
        image = source.convert("RGB").quantize(64)
        if mode == "PA":
            image.info["transparency"] = 3
    else:
        image = source.convert(mode)
    whole = media._to_rgb_reduced(image, PixelRules.HASHSVC, work_size)
    monkeypatch.setattr(media_cost, "STRIP_PIXELS", 517 * 7)  # strips of 6 or 7 rows, and a ragged last one
    strips = media._to_rgb_reduced(image, PixelRules.HASHSVC, work_size)
    assert strips.size == whole.size
    assert np.array_equal(np.asarray(strips), np.asarray(whole))


def first_frame_then(image: Image.Image, extra_frames: int) -> bytes:
    """A GIF whose first frame is `image`, followed by `extra_frames` 1 x 1 frames."""
    still = encode(image, "GIF")
    assert still.endswith(b"\x3b")
    frame = gif_with_frames(1)[len(b"GIF89a") + 7 + 6 : -1]  # one graphic control + 1 x 1 image block
    return still[:-1] + frame * extra_frames + b"\x3b"


def test_a_long_animation_is_hashed_by_its_first_frame() -> None:
    picture = photo(320, 240, seed=4)
    still = encode(picture, "GIF")
    animated = first_frame_then(picture, 1001)
    assert decode_first(animated).frames == 1001  # counted only up to max_frames + 1, after decoding
    ours, reference = hash_image(animated), hash_image(still)
    assert (ours.pdq.code, ours.phash, ours.dhash) == (reference.pdq.code, reference.phash, reference.dhash)


def test_max_frames_bounds_the_frames_decoded_when_every_kth_is_asked_for() -> None:
    data = gif_with_frames(10_000)
    started = time.monotonic()
    frames = decode(data, Limits(max_frames=5), every_kth_frame=3)
    assert [frame.frame_index for frame in frames] == [0, 3, 6, 9, 12]
    assert time.monotonic() - started < 1.0


def test_the_first_frame_of_a_10000_frame_gif_is_read_without_walking_the_file() -> None:
    data = gif_with_frames(10_000)
    started = time.monotonic()
    frame = decode_first(data)
    assert time.monotonic() - started < 0.5
    assert frame.frames == Limits().max_frames + 1  # "more than max_frames"
    assert struct.unpack("<HH", data[6:10]) == frame.pixels.size
