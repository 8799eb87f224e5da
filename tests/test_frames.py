"""Behaviour of `frame_candidates`: where a picture pasted inside an added frame lies, and nothing on photos."""

from __future__ import annotations

import io

import numpy as np
import pytest
from images import photo
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from hashsvc.hashes.frames import MAX_CANDIDATES, frame_candidates

Box = tuple[int, int, int, int]


def textured(width: int = 320, height: int = 240, seed: int = 0) -> Image.Image:
    """`photo` with the fine texture real photographs have (sensor noise, detail). The detector relies on the
    picture being sharper than blurred fill; the flat shapes of `photo` alone are not (a documented limit)."""
    base = np.asarray(photo(width, height, seed=seed), dtype=np.float32)
    noise = np.random.default_rng(seed + 1000).normal(0, 4, (height, width, 1))
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8), "RGB")


def upload(image: Image.Image) -> Image.Image:
    """As re-uploads arrive: JPEG quality 90."""
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def blur_padded(picture: Image.Image, percent: int, letterbox: bool) -> tuple[Image.Image, Box]:
    """The picture centred on a canvas `percent` larger (taller only for a letterbox), filled with a blurred,
    enlarged copy of itself ("cover" fill, as social apps do)."""
    w, h = picture.size
    width = w if letterbox else w + round(w * percent / 100)
    height = h + round(h * percent / 100)
    scale = max(width / w, height / h)
    cover = picture.resize((round(w * scale), round(h * scale)), Image.Resampling.BILINEAR)
    left, top = (cover.width - width) // 2, (cover.height - height) // 2
    canvas = cover.crop((left, top, left + width, top + height))
    canvas = canvas.filter(ImageFilter.GaussianBlur(max(4.0, max(width, height) / 25)))
    box = ((width - w) // 2, (height - h) // 2, (width - w) // 2 + w, (height - h) // 2 + h)
    canvas.paste(picture, box[:2])
    return upload(canvas), box


def captioned(picture: Image.Image, below: bool = False) -> tuple[Image.Image, Box]:
    """A white bar 20% of the picture's height with black caption text, above (or below) the picture."""
    w, h = picture.size
    bar = round(0.2 * h)
    canvas = Image.new("RGB", (w, h + bar), (255, 255, 255))
    top = 0 if below else bar
    canvas.paste(picture, (0, top))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=max(8, int(bar * 0.45)))
    draw.text((w // 6, (h if below else 0) + bar // 4), "when you see it", font=font, fill=(0, 0, 0))
    return upload(canvas), (0, top, w, top + h)


def screenshot(picture: Image.Image) -> tuple[Image.Image, Box]:
    """A phone screenshot of the picture in a feed: 85% of the width, inside status bar, header and like row."""
    width = picture.width
    inner = picture.resize((round(width * 0.85), round(width * 0.85 * picture.height / width)))
    unit = width / 100
    top = round(21 * unit)
    canvas = Image.new("RGB", (width, top + inner.height + round(14 * unit)), (250, 250, 250))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=max(8, round(3 * unit)))
    draw.rectangle((0, 0, width, round(5 * unit)), fill=(30, 30, 30))
    draw.text((round(3 * unit), round(unit)), "9:41", font=font, fill=(255, 255, 255))
    draw.ellipse((round(4 * unit), round(8 * unit), round(14 * unit), round(18 * unit)), fill=(120, 140, 200))
    draw.text((round(17 * unit), round(11 * unit)), "someone_reposting", font=font, fill=(20, 20, 20))
    left = (width - inner.width) // 2
    canvas.paste(inner, (left, top))
    y = top + inner.height + round(2 * unit)
    for i in range(3):
        x = round((5 + 10 * i) * unit)
        draw.ellipse((x, y, x + round(6 * unit), y + round(6 * unit)), outline=(0, 0, 0))
    draw.text((round(5 * unit), y + round(7 * unit)), "liked by many", font=font, fill=(60, 60, 60))
    return upload(canvas), (left, top, left + inner.width, top + inner.height)


def found(candidates: list[Box], truth: Box, size: tuple[int, int], tolerance: float = 0.02) -> bool:
    """Whether some candidate has every edge within `tolerance` of the image's dimension of the true one."""
    width, height = size
    scale = (width, height, width, height)
    return any(
        all(abs(c - t) <= tolerance * s for c, t, s in zip(box, truth, scale, strict=True)) for box in candidates
    )


@pytest.mark.parametrize("letterbox", [False, True], ids=["pad", "letterbox"])
@pytest.mark.parametrize("percent", [10, 20])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_blurred_padding_gives_the_picture_box(percent: int, letterbox: bool, seed: int) -> None:
    query, truth = blur_padded(textured(seed=seed), percent, letterbox)
    assert found(frame_candidates(query), truth, query.size)


@pytest.mark.parametrize("below", [False, True], ids=["above", "below"])
@pytest.mark.parametrize("seed", [0, 1])
def test_caption_bar_gives_the_picture_without_it(below: bool, seed: int) -> None:
    query, truth = captioned(textured(seed=seed), below)
    assert found(frame_candidates(query), truth, query.size)


@pytest.mark.parametrize("size", [(320, 240), (240, 320)])
def test_screenshot_chrome_gives_the_picture_inside_it(size: tuple[int, int]) -> None:
    query, truth = screenshot(textured(*size, seed=3))
    assert found(frame_candidates(query), truth, query.size)


def test_boxes_are_in_the_given_image_pixels() -> None:
    """A large upload is analysed on a reduced copy; the boxes still come back in its own coordinates."""
    query, truth = blur_padded(textured(1200, 900, seed=4), 10, letterbox=False)
    candidates = frame_candidates(query)
    assert found(candidates, truth, query.size, tolerance=0.01)
    assert all(0 <= b[0] < b[2] <= query.width and 0 <= b[1] < b[3] <= query.height for b in candidates)


@pytest.mark.parametrize("seed", range(4))
def test_ordinary_photos_give_no_candidate(seed: int) -> None:
    for image in (photo(400, 300, seed=seed), textured(400, 300, seed), textured(300, 400, seed)):
        assert frame_candidates(upload(image)) == []


def test_tiny_and_blank_images_give_nothing() -> None:
    assert frame_candidates(textured(8, 8)) == []
    assert frame_candidates(Image.new("RGB", (400, 300), (128, 128, 128))) == []
    assert frame_candidates(Image.new("L", (300, 200), 0)) == []


def test_the_list_stays_short() -> None:
    """Even a frame inside a frame (a padded screenshot) gives at most MAX_CANDIDATES boxes."""
    inner, _ = screenshot(textured(seed=5))
    query, _ = blur_padded(inner, 20, letterbox=False)
    assert 1 <= len(frame_candidates(query)) <= MAX_CANDIDATES
