"""Small tilts with uniform corner fill are recognised and undone; everything else is left alone.

A re-uploader's "rotate by a few degrees" (same canvas or expanded, black or white corners) must be found, its
angle recovered within 0.3 degrees, and the picture turned back so that it hashes like the original. Ordinary
photos, photos whose corners happen to be dark, and padded or letterboxed images must not be taken for one.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from images import encode, photo
from PIL import Image, ImageDraw

from hashsvc.hashes import compute
from hashsvc.hashes.rotation import detect_fill_rotation, undo_fill_rotation, valid_scale

BLACK = (0, 0, 0)
WHITE = (255, 255, 255)
PHOTO = photo(320, 240, seed=1)
MATCH_BITS = 31  # the service's PDQ match threshold


def _jpeg(image: Image.Image, quality: int = 90) -> Image.Image:
    """The image as an upload would arrive: JPEG-compressed and decoded again."""
    with Image.open(io.BytesIO(encode(image.convert("RGB"), "JPEG", quality=quality))) as decoded:
        return decoded.convert("RGB")


def _tilted(angle: float, fill: tuple[int, int, int] = BLACK, expand: bool = False) -> Image.Image:
    return _jpeg(PHOTO.rotate(angle, resample=Image.Resampling.BICUBIC, expand=expand, fillcolor=fill))


def _central(image: Image.Image, keep: float) -> Image.Image:
    width, height = image.size
    w, h = round(width * keep), round(height * keep)
    left, top = (width - w) // 2, (height - h) // 2
    return image.crop((left, top, left + w, top + h))


def _pdq_distance(a: Image.Image, b: Image.Image) -> int:
    x = compute.pdq(np.asarray(a.convert("RGB"))).code
    y = compute.pdq(np.asarray(b.convert("RGB"))).code
    return (int.from_bytes(x, "big") ^ int.from_bytes(y, "big")).bit_count()


@pytest.mark.parametrize("expand", [False, True], ids=["same-canvas", "expanded"])
@pytest.mark.parametrize("fill", [BLACK, WHITE], ids=["black", "white"])
@pytest.mark.parametrize("angle", [2.0, -2.0, 5.0, -5.0])
def test_recognises_a_small_rotation_and_recovers_its_angle(
    angle: float, fill: tuple[int, int, int], expand: bool
) -> None:
    found = detect_fill_rotation(_tilted(angle, fill, expand))

    assert found is not None
    assert abs(found.angle - angle) < 0.3
    assert max(abs(a - b) for a, b in zip(found.fill, fill, strict=True)) <= 16


@pytest.mark.parametrize("expand", [False, True], ids=["same-canvas", "expanded"])
def test_undoing_returns_the_picture_upright_at_its_own_size(expand: bool) -> None:
    tilted = _tilted(-5.0, WHITE, expand)

    upright = undo_fill_rotation(tilted)

    assert upright is not None
    assert upright.mode == "RGB"
    # Same canvas: the canvas size. Expanded: the picture that was rotated, not the grown canvas.
    assert abs(upright.width - PHOTO.width) <= 2 and abs(upright.height - PHOTO.height) <= 2
    if expand:
        assert tilted.size != PHOTO.size


@pytest.mark.parametrize("angle", [2.0, -5.0])
def test_the_upright_picture_hashes_like_the_original(angle: float) -> None:
    reference = _central(PHOTO, 0.9)  # what the service stores besides the full original
    tilted = _tilted(angle)

    upright = undo_fill_rotation(tilted)

    assert upright is not None
    assert _pdq_distance(_central(upright, 0.9), reference) <= MATCH_BITS
    assert _pdq_distance(_central(upright, 0.9), reference) < _pdq_distance(_central(tilted, 0.9), reference)


def test_five_degrees_is_beyond_pdq_without_undoing() -> None:
    # Why the module exists: the tilted upload alone is nowhere near the original.
    assert _pdq_distance(_tilted(5.0), PHOTO) > MATCH_BITS


@pytest.mark.parametrize("seed", range(6))
def test_ordinary_photos_are_left_alone(seed: int) -> None:
    assert detect_fill_rotation(_jpeg(photo(320, 240, seed))) is None
    assert undo_fill_rotation(_jpeg(photo(320, 240, seed))) is None


def _vignetted(image: Image.Image) -> Image.Image:
    """Corners darkened to black by a radial fall-off, as some lenses and filters do."""
    height, width = image.height, image.width
    y, x = np.mgrid[0:height, 0:width]
    r = np.hypot((x - width / 2) / (width / 2), (y - height / 2) / (height / 2)) / math.sqrt(2)
    gain = np.clip((1.0 - r) / 0.35, 0, 1)[..., None]
    return Image.fromarray((np.asarray(image, dtype=np.float64) * gain).astype(np.uint8))


def _on_black(image: Image.Image) -> Image.Image:
    """The picture inside an ellipse on a black background (a product shot, a porthole frame)."""
    mask = Image.new("L", image.size, 0)
    ImageDraw.Draw(mask).ellipse((10, 10, image.width - 10, image.height - 10), fill=255)
    return Image.composite(image, Image.new("RGB", image.size, BLACK), mask)


def _rounded(image: Image.Image, radius: int = 30) -> Image.Image:
    """Rounded black corners (quarter circles, not triangles)."""
    mask = Image.new("L", image.size, 0)
    ImageDraw.Draw(mask).rounded_rectangle((0, 0, image.width - 1, image.height - 1), radius=radius, fill=255)
    return Image.composite(image, Image.new("RGB", image.size, BLACK), mask)


def _wedges(image: Image.Image, slopes_deg: tuple[float, float, float, float], legs: tuple[int, ...]) -> Image.Image:
    """Black right triangles in the corners, laid out as a counter-clockwise tilt would (long legs along the top
    edge at the top left, the right edge at the top right, ...), with the given slopes and long legs."""
    out = image.copy()
    draw = ImageDraw.Draw(out)
    w, h = out.width - 1, out.height - 1
    (a, b, c, d), (la, lb, lc, ld) = slopes_deg, legs
    t = [math.tan(math.radians(s)) for s in (a, b, c, d)]
    draw.polygon([(0, 0), (la, 0), (0, la * t[0])], fill=BLACK)  # top left, along the top
    draw.polygon([(w, 0), (w, lb), (w - lb * t[1], 0)], fill=BLACK)  # top right, along the right
    draw.polygon([(0, h), (0, h - lc), (lc * t[2], h)], fill=BLACK)  # bottom left, along the left
    draw.polygon([(w, h), (w - ld, h), (w, h - ld * t[3])], fill=BLACK)  # bottom right, along the bottom
    return out


@pytest.mark.parametrize(
    "make",
    [
        _vignetted,
        _on_black,
        _rounded,
        # Triangles whose slopes disagree: not one rotation.
        lambda im: _wedges(im, (2.0, 6.0, 3.5, 9.0), (150, 110, 110, 150)),
        # One slope, but wedges of sizes no rotation about the centre makes.
        lambda im: _wedges(im, (4.0, 4.0, 4.0, 4.0), (150, 110, 20, 25)),
    ],
    ids=["vignette", "on-black", "rounded-corners", "disagreeing-slopes", "off-centre"],
)
def test_photos_with_dark_corners_are_left_alone(make) -> None:  # type: ignore[no-untyped-def]
    assert detect_fill_rotation(_jpeg(make(PHOTO))) is None


def _padded(image: Image.Image, fill: tuple[int, int, int], extra_x: int, extra_y: int) -> Image.Image:
    canvas = Image.new("RGB", (image.width + 2 * extra_x, image.height + 2 * extra_y), fill)
    canvas.paste(image, (extra_x, extra_y))
    return canvas


@pytest.mark.parametrize(
    ("fill", "extra_x", "extra_y"),
    [(BLACK, 16, 12), (BLACK, 0, 24), (BLACK, 24, 0), (WHITE, 16, 12), (WHITE, 0, 24)],
    ids=["pad-black", "letterbox-black", "pillarbox-black", "pad-white", "letterbox-white"],
)
def test_padded_and_letterboxed_images_are_left_alone(fill: tuple[int, int, int], extra_x: int, extra_y: int) -> None:
    # Bars are rectangles: every row along a bar stays in the fill, there is no hypotenuse.
    assert detect_fill_rotation(_jpeg(_padded(PHOTO, fill, extra_x, extra_y))) is None


@pytest.mark.parametrize("size", [(1, 1), (10, 10), (47, 300)])
def test_tiny_images_are_left_alone(size: tuple[int, int]) -> None:
    small = photo(*size, seed=2).rotate(5, fillcolor=BLACK)
    assert detect_fill_rotation(small) is None
    assert undo_fill_rotation(Image.new("RGB", size, BLACK)) is None


def test_grayscale_and_rgba_input() -> None:
    assert detect_fill_rotation(PHOTO.convert("L")) is None
    assert detect_fill_rotation(PHOTO.convert("RGBA")) is None

    grey = detect_fill_rotation(_tilted(5.0).convert("L"))
    assert grey is not None and abs(grey.angle - 5.0) < 0.3

    # An RGBA rotation leaves transparent corners: they read as the black under them.
    transparent = PHOTO.convert("RGBA").rotate(-2.0, resample=Image.Resampling.BICUBIC, expand=True)
    found = detect_fill_rotation(transparent)
    assert found is not None and abs(found.angle + 2.0) < 0.3
    upright = undo_fill_rotation(transparent)
    assert upright is not None and upright.mode == "RGB"


@pytest.mark.parametrize(("width", "height"), [(400, 300), (300, 400), (500, 500), (1000, 250)])
@pytest.mark.parametrize("angle", [0.5, 2.0, -5.0, 10.0])
def test_valid_scale_is_the_largest_centred_box_inside_the_picture(width: int, height: int, angle: float) -> None:
    s = valid_scale(width, height, angle)
    t = math.radians(angle)

    def inside(scale: float) -> bool:
        # After undoing a same-canvas rotation the picture is the canvas turned by the angle: a box is inside it
        # when its corners, turned back, are inside the canvas.
        corners = [(sx * scale * width / 2, sy * scale * height / 2) for sx in (-1, 1) for sy in (-1, 1)]
        return all(
            abs(x * math.cos(t) - y * math.sin(t)) <= width / 2 + 1e-9
            and abs(x * math.sin(t) + y * math.cos(t)) <= height / 2 + 1e-9
            for x, y in corners
        )

    assert 0 < s < 1
    assert inside(s)
    assert not inside(s * 1.001)
    assert valid_scale(width, height, -angle) == s
    c, n = math.cos(abs(t)), math.sin(abs(t))
    assert s == pytest.approx(min(1 / (c + height / width * n), 1 / (c + width / height * n)))


def test_valid_scale_without_rotation_is_the_whole_image() -> None:
    assert valid_scale(400, 300, 0.0) == 1.0
