"""Decoding rules: every container and mode ends as the same 8-bit RGB pixels the hashes see."""

from __future__ import annotations

import numpy as np
import pytest
from images import encode, photo
from PIL import Image

from hashsvc.errors import MediaError
from hashsvc.media import BACKGROUND, Limits, PixelRules, decode, decode_first
from hashsvc.service.hashing import hash_image


@pytest.mark.parametrize(
    ("fmt", "options"),
    [("JPEG", {}), ("PNG", {}), ("GIF", {}), ("WEBP", {"quality": 90}), ("BMP", {}), ("TIFF", {}), ("HEIF", {})],
)
def test_every_accepted_format_decodes_to_rgb(fmt: str, options: dict[str, object]) -> None:
    decoded = decode_first(encode(photo(160, 120), fmt, **options))
    assert decoded.pixels.mode == "RGB"
    assert (decoded.width, decoded.height) == (160, 120)
    assert decoded.array().shape == (120, 160, 3)


@pytest.mark.parametrize("fmt", ["ICO", "PPM", "TGA", "PCX", "SGI"])
def test_formats_outside_the_list_are_rejected_by_content(fmt: str) -> None:
    with pytest.raises(MediaError) as info:
        decode_first(encode(photo(32, 32), fmt))
    assert info.value.code == "unsupported_format"
    assert info.value.http_status == 415


def test_lossless_formats_give_identical_pixels() -> None:
    reference = np.asarray(photo())
    for fmt in ("PNG", "BMP", "TIFF"):
        assert np.array_equal(decode_first(encode(photo(), fmt)).array(), reference), fmt


@pytest.mark.parametrize(
    ("orientation", "stored_as"),
    [
        (1, None),
        (2, Image.Transpose.FLIP_LEFT_RIGHT),
        (3, Image.Transpose.ROTATE_180),
        (4, Image.Transpose.FLIP_TOP_BOTTOM),
        (5, Image.Transpose.TRANSPOSE),
        (6, Image.Transpose.ROTATE_90),
        (7, Image.Transpose.TRANSVERSE),
        (8, Image.Transpose.ROTATE_270),
    ],
)
def test_exif_orientation_is_applied(orientation: int, stored_as: Image.Transpose | None) -> None:
    upright = photo(200, 120)
    stored = upright.transpose(stored_as) if stored_as is not None else upright
    exif = Image.Exif()
    exif[0x0112] = orientation
    decoded = decode_first(encode(stored, "PNG", exif=exif.tobytes()))
    assert (decoded.width, decoded.height) == (200, 120)
    assert np.array_equal(decoded.array(), np.asarray(upright))


def test_transparent_pixels_are_composited_onto_the_fixed_background() -> None:
    rgba = np.zeros((10, 10, 4), dtype=np.uint8)
    rgba[..., :3] = (200, 30, 30)  # a colour hidden under full transparency...
    rgba[:5, ..., 3] = 255  # ...except the top half, which is opaque
    decoded = decode_first(encode(Image.fromarray(rgba, "RGBA"), "PNG")).array()
    assert tuple(decoded[0, 0]) == (200, 30, 30)
    assert tuple(decoded[9, 9]) == BACKGROUND


def test_threatexchange_rules_drop_alpha_instead() -> None:
    rgba = np.zeros((10, 10, 4), dtype=np.uint8)
    rgba[..., :3] = (200, 30, 30)
    decoded = decode_first(encode(Image.fromarray(rgba, "RGBA"), "PNG"), rules=PixelRules.THREATEXCHANGE).array()
    assert tuple(decoded[9, 9]) == (200, 30, 30)


def test_palette_with_transparency_is_composited() -> None:
    image = Image.new("P", (4, 4), 1)
    image.putpalette([0, 0, 0, 10, 200, 10] + [0] * 762)
    image.info["transparency"] = 1
    decoded = decode_first(encode(image, "PNG", transparency=1)).array()
    assert tuple(decoded[0, 0]) == BACKGROUND


def test_sixteen_bit_greys_are_scaled_not_clipped() -> None:
    grey = np.full((8, 8), 32768, dtype=np.uint16)
    decoded = decode_first(encode(Image.fromarray(grey), "PNG")).array()
    assert tuple(decoded[0, 0]) == (128, 128, 128)


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "RGBA", "CMYK", "I", "F", "YCbCr", "I;16"])
def test_every_mode_becomes_rgb_of_the_same_size(mode: str) -> None:
    source = photo(64, 48)
    converted = source.convert(mode) if mode != "I;16" else source.convert("L").convert("I;16")
    fmt = {"CMYK": "JPEG", "YCbCr": "JPEG", "F": "TIFF", "I": "TIFF"}.get(mode, "PNG")
    decoded = decode_first(encode(converted, fmt))
    assert decoded.pixels.mode == "RGB"
    assert decoded.array().shape == (48, 64, 3)


def test_animated_images_use_the_first_frame_or_every_kth() -> None:
    frames = [photo(64, 48, seed=seed) for seed in range(6)]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    first = decode(data)
    assert [f.frame_index for f in first] == [0]
    assert first[0].frames == 6
    every_other = decode(data, every_kth_frame=2)
    assert [f.frame_index for f in every_other] == [0, 2, 4]
    assert not np.array_equal(every_other[0].array(), every_other[1].array())


def test_large_jpegs_are_decoded_at_reduced_scale_but_report_their_real_size() -> None:
    big = photo(4000, 3000)
    decoded = decode_first(encode(big))
    assert (decoded.width, decoded.height) == (4000, 3000)
    assert min(decoded.pixels.size) < 1500
    assert min(decoded.pixels.size) >= 400


def test_decode_time_is_bounded() -> None:
    noisy = Image.fromarray(np.random.default_rng(0).integers(0, 255, (1500, 1500, 3), dtype=np.uint8))
    with pytest.raises(MediaError) as info:
        decode_first(encode(noisy, "PNG"), Limits(decode_timeout_s=0.001))
    assert info.value.code == "decode_timeout"


def test_the_hash_json_shape() -> None:
    result = hash_image(encode(photo(300, 200))).to_dict()
    assert set(result) == {"pdq", "phash", "dhash", "md5", "sha256", "width", "height"}
    assert len(result["pdq"]["value"]) == 64
    assert 0 <= result["pdq"]["quality"] <= 100
    assert (len(result["phash"]), len(result["dhash"]), len(result["md5"]), len(result["sha256"])) == (16, 16, 32, 64)
    assert (result["width"], result["height"]) == (300, 200)


def test_small_edits_stay_close_and_different_images_stay_far() -> None:
    from hashsvc.hashes import hamming

    original = hash_image(encode(photo(400, 300, seed=1)))
    recompressed = hash_image(encode(photo(400, 300, seed=1), quality=60))
    resized = hash_image(encode(photo(400, 300, seed=1).resize((200, 150))))
    other = hash_image(encode(photo(400, 300, seed=2)))
    for edited in (recompressed, resized):
        assert hamming(original.pdq.code, edited.pdq.code) <= 31
        assert hamming(original.phash, edited.phash) <= 8
    assert hamming(original.pdq.code, other.pdq.code) > 31
