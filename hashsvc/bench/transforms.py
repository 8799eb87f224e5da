"""The edit suite of the robustness benchmark: what people do to known images to slip past hash filters.

Each `Transform` maps an RGB image to an edited RGB image plus the container it is saved in, and states the size
it produces (`size`), so tests can check every edit does what its name says. Edits that need randomness (the
off-centre crop corner, the noise) draw it from a generator seeded by the transform name and the caller's key,
so a run is reproducible file by file, whatever the order or the process that makes it.

Conventions, stated once so the table reads unambiguously:
* crop p%: p% of the width and p% of the height are removed (kept area (1-p)^2); "centre" splits it evenly
  between the sides, "offcentre" takes it all from one corner (chosen by the seeded generator).
* pad p%: the canvas is p% larger in each dimension, the image centred on it; letterbox p%: bars above and below
  only (the canvas p% taller). "blur" fills with a blurred, enlarged copy of the image, as social apps do.
* every edit is saved as JPEG quality 90 (what upload pipelines re-encode to), except the re-encoding edits.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps

Size = tuple[int, int]
Edit = Callable[[Image.Image, np.random.Generator], Image.Image]


@dataclass(frozen=True)
class Transform:
    name: str
    family: str  # groups edits for targets: photometric, resize, reencode, flip, rotate90, crop, pad, ...
    edit: Edit
    size: Callable[[Size], Size]  # the size the edit claims to produce from an input size
    fmt: str = "JPEG"
    options: dict[str, object] = field(default_factory=lambda: {"quality": 90})

    def apply(self, image: Image.Image, key: str = "") -> Image.Image:
        return self.edit(image.convert("RGB"), rng_for(self.name, key))

    def encode(self, image: Image.Image, key: str = "") -> bytes:
        """The edited file, as it would be uploaded."""
        buffer = io.BytesIO()
        self.apply(image, key).save(buffer, self.fmt, **self.options)
        return buffer.getvalue()


def rng_for(name: str, key: str) -> np.random.Generator:
    # crc32, not hash(): str hashing is salted per process, and the suite must not depend on the process.
    return np.random.default_rng(zlib.crc32(f"{name}|{key}".encode()))


def _same(size: Size) -> Size:
    return size


def _scaled(factor_x: float, factor_y: float | None = None) -> Callable[[Size], Size]:
    fy = factor_x if factor_y is None else factor_y
    return lambda s: (max(1, round(s[0] * factor_x)), max(1, round(s[1] * fy)))


def _resize(factor_x: float, factor_y: float | None = None) -> Edit:
    size_of = _scaled(factor_x, factor_y)
    return lambda im, _rng: im.resize(size_of(im.size), Image.Resampling.LANCZOS)


def _crop_box(size: Size, percent: float, centred: bool, corner: int) -> tuple[int, int, int, int]:
    width, height = size
    cut_x, cut_y = round(width * percent / 100), round(height * percent / 100)
    if centred:
        left, top = cut_x // 2, cut_y // 2
    else:
        left = cut_x if corner & 1 else 0
        top = cut_y if corner & 2 else 0
    return left, top, left + width - cut_x, top + height - cut_y


def _crop(percent: float, centred: bool) -> Edit:
    def edit(im: Image.Image, rng: np.random.Generator) -> Image.Image:
        return im.crop(_crop_box(im.size, percent, centred, int(rng.integers(0, 4))))

    return edit


def _crop_size(percent: float) -> Callable[[Size], Size]:
    return lambda s: (s[0] - round(s[0] * percent / 100), s[1] - round(s[1] * percent / 100))


def _fill(im: Image.Image, size: Size, fill: str) -> Image.Image:
    if fill == "black":
        return Image.new("RGB", size, (0, 0, 0))
    if fill == "white":
        return Image.new("RGB", size, (255, 255, 255))
    # Blurred "cover" background: the image scaled to cover the canvas, blurred hard.
    scale = max(size[0] / im.width, size[1] / im.height)
    cover = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.Resampling.BILINEAR)
    left, top = (cover.width - size[0]) // 2, (cover.height - size[1]) // 2
    cover = cover.crop((left, top, left + size[0], top + size[1]))
    return cover.filter(ImageFilter.GaussianBlur(radius=max(4.0, max(size) / 25)))


def _pad_size(percent: float, letterbox: bool) -> Callable[[Size], Size]:
    def size(s: Size) -> Size:
        extra_x = 0 if letterbox else round(s[0] * percent / 100)
        return s[0] + extra_x, s[1] + round(s[1] * percent / 100)

    return size


def _pad(percent: float, letterbox: bool, fill: str) -> Edit:
    size_of = _pad_size(percent, letterbox)

    def edit(im: Image.Image, _rng: np.random.Generator) -> Image.Image:
        canvas = _fill(im, size_of(im.size), fill)
        canvas.paste(im, ((canvas.width - im.width) // 2, (canvas.height - im.height) // 2))
        return canvas

    return edit


def _font(height: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    # Pillow's bundled font: the same glyphs on every machine, so the suite stays deterministic.
    return ImageFont.load_default(size=max(8, height))


def _watermark(im: Image.Image, _rng: np.random.Generator) -> Image.Image:
    """A semi-transparent text watermark in the lower right, about 1/12 of the height tall."""
    overlay = Image.new("RGBA", im.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    font = _font(im.height // 12)
    text = "© reupload.example"
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    x = im.width - (right - left) - im.width // 30
    y = im.height - (bottom - top) - im.height // 20
    draw.text((x + 1, y + 1), text, font=font, fill=(0, 0, 0, 110))
    draw.text((x, y), text, font=font, fill=(255, 255, 255, 150))
    return Image.alpha_composite(im.convert("RGBA"), overlay).convert("RGB")


def _caption_size(s: Size) -> Size:
    return s[0], s[1] + round(s[1] * 0.2)


def _caption(im: Image.Image, _rng: np.random.Generator) -> Image.Image:
    """Meme style: a white bar above the image, 20% of its height, with black caption text."""
    canvas = Image.new("RGB", _caption_size(im.size), (255, 255, 255))
    canvas.paste(im, (0, canvas.height - im.height))
    bar = canvas.height - im.height
    draw = ImageDraw.Draw(canvas)
    font = _font(int(bar * 0.45))
    text = "when you see it"
    left, _top, right, _bottom = draw.textbbox((0, 0), text, font=font)
    draw.text(((im.width - (right - left)) // 2, bar // 4), text, font=font, fill=(0, 0, 0))
    return canvas


def _screenshot_size(s: Size) -> Size:
    return s[0], round(s[0] * 0.85 * s[1] / s[0]) + round(s[0] * 0.35)


def _screenshot(im: Image.Image, _rng: np.random.Generator) -> Image.Image:
    """A phone screenshot of the image in a feed: scaled to 85% of the width inside app chrome (status bar,
    header with avatar and name, like/comment row, text lines)."""
    width = im.width
    inner = im.resize((round(width * 0.85), round(width * 0.85 * im.height / im.width)), Image.Resampling.BILINEAR)
    canvas = Image.new("RGB", _screenshot_size(im.size), (250, 250, 250))
    draw = ImageDraw.Draw(canvas)
    unit = width / 100
    draw.rectangle((0, 0, width, round(5 * unit)), fill=(30, 30, 30))  # status bar
    font = _font(round(3 * unit))
    draw.text((round(3 * unit), round(1 * unit)), "9:41", font=font, fill=(255, 255, 255))
    draw.ellipse((round(4 * unit), round(8 * unit), round(14 * unit), round(18 * unit)), fill=(120, 140, 200))
    draw.text((round(17 * unit), round(11 * unit)), "someone_reposting", font=font, fill=(20, 20, 20))
    top = round(21 * unit)
    canvas.paste(inner, ((width - inner.width) // 2, top))
    y = top + inner.height + round(2 * unit)
    for i in range(3):
        x = round((5 + 10 * i) * unit)
        draw.ellipse((x, y, x + round(6 * unit), y + round(6 * unit)), outline=(0, 0, 0))
    draw.text((round(5 * unit), y + round(7 * unit)), "liked by many · view all comments", font=font, fill=(60, 60, 60))
    return canvas


def _rotate(angle: float) -> Edit:
    # Same canvas, black corners: what a tilted re-photograph or a quick "straighten" in an editor gives.
    return lambda im, _rng: im.rotate(angle, resample=Image.Resampling.BICUBIC, expand=False, fillcolor=(0, 0, 0))


def _transpose(method: Image.Transpose) -> Edit:
    return lambda im, _rng: im.transpose(method)


def _swap(s: Size) -> Size:
    return s[1], s[0]


def _gamma(value: float) -> Edit:
    table = [round(255 * (i / 255) ** value) for i in range(256)] * 3
    return lambda im, _rng: im.point(table)


def _noise(sigma: float) -> Edit:
    def edit(im: Image.Image, rng: np.random.Generator) -> Image.Image:
        pixels = np.asarray(im, dtype=np.float32) + rng.normal(0, sigma, (im.height, im.width, 3))
        return Image.fromarray(np.clip(pixels + 0.5, 0, 255).astype(np.uint8), "RGB")

    return edit


def _enhance(kind: type[ImageEnhance._Enhance], factor: float) -> Edit:
    return lambda im, _rng: kind(im).enhance(factor)


def _blur(im: Image.Image, _rng: np.random.Generator) -> Image.Image:
    return im.filter(ImageFilter.GaussianBlur(radius=max(1.0, max(im.size) / 200)))


def _chain(first: Transform, second: Transform) -> Transform:
    """Two edits in a row; the intermediate image stays in memory (the final save is the second edit's)."""

    def edit(im: Image.Image, rng: np.random.Generator) -> Image.Image:
        return second.edit(first.edit(im, rng), rng)

    return Transform(
        f"{first.name}+{second.name}",
        "chain",
        edit,
        lambda s: second.size(first.size(s)),
        second.fmt,
        dict(second.options),
    )


def build_suite() -> list[Transform]:
    t: list[Transform] = []
    for quality in (90, 70, 50, 30):
        t.append(Transform(f"jpeg_q{quality}", "reencode", lambda im, _r: im, _same, "JPEG", {"quality": quality}))
    t.append(Transform("webp", "reencode", lambda im, _r: im, _same, "WEBP", {"quality": 80}))
    t.append(Transform("png", "reencode", lambda im, _r: im, _same, "PNG", {}))
    for name, factor in (("resize_50", 0.5), ("resize_25", 0.25), ("resize_200", 2.0)):
        t.append(Transform(name, "resize", _resize(factor), _scaled(factor)))
    t.append(Transform("stretch_x_10", "stretch", _resize(1.1, 1.0), _scaled(1.1, 1.0)))
    for percent in (2, 5, 10, 20):
        t.append(Transform(f"crop_centre_{percent}", "crop", _crop(percent, True), _crop_size(percent)))
        t.append(Transform(f"crop_offcentre_{percent}", "crop", _crop(percent, False), _crop_size(percent)))
    for percent in (10, 20):
        for fill in ("black", "white", "blur"):
            t.append(Transform(f"pad_{fill}_{percent}", "pad", _pad(percent, False, fill), _pad_size(percent, False)))
            t.append(
                Transform(f"letterbox_{fill}_{percent}", "pad", _pad(percent, True, fill), _pad_size(percent, True))
            )
    t.append(Transform("rot90", "rotate90", _transpose(Image.Transpose.ROTATE_90), _swap))
    t.append(Transform("rot180", "rotate90", _transpose(Image.Transpose.ROTATE_180), _same))
    t.append(Transform("rot270", "rotate90", _transpose(Image.Transpose.ROTATE_270), _swap))
    t.append(Transform("flip_h", "flip", _transpose(Image.Transpose.FLIP_LEFT_RIGHT), _same))
    t.append(Transform("flip_v", "flip", _transpose(Image.Transpose.FLIP_TOP_BOTTOM), _same))
    t.append(Transform("rot_2", "small_rotation", _rotate(2), _same))
    t.append(Transform("rot_5", "small_rotation", _rotate(5), _same))
    for sign, factor in (("+", 1.3), ("-", 0.7)):
        t.append(Transform(f"brightness_{sign}30", "photometric", _enhance(ImageEnhance.Brightness, factor), _same))
        t.append(Transform(f"contrast_{sign}30", "photometric", _enhance(ImageEnhance.Contrast, factor), _same))
    t.append(Transform("gamma_0.6", "photometric", _gamma(0.6), _same))
    t.append(Transform("gamma_1.6", "photometric", _gamma(1.6), _same))
    t.append(Transform("grayscale", "photometric", lambda im, _r: ImageOps.grayscale(im).convert("RGB"), _same))
    t.append(Transform("blur", "photometric", _blur, _same))
    t.append(Transform("noise_10", "photometric", _noise(10), _same))
    t.append(Transform("watermark", "overlay", _watermark, _same))
    t.append(Transform("caption_bar", "overlay", _caption, _caption_size))
    t.append(Transform("screenshot", "overlay", _screenshot, _screenshot_size))
    by_name = {x.name: x for x in t}
    for a, b in (
        ("crop_centre_5", "jpeg_q70"),
        ("resize_50", "jpeg_q50"),
        ("flip_h", "brightness_+30"),
        ("pad_blur_10", "watermark"),
        ("rot_2", "resize_50"),
        ("caption_bar", "crop_offcentre_5"),
    ):
        t.append(_chain(by_name[a], by_name[b]))
    t += _geometric_chains(by_name) + _offgrid_crops()
    return t


def _geometric_chains(by_name: dict[str, Transform]) -> list[Transform]:
    """A flip or a rotation, then a shrink to half and JPEG quality 60: the README's walk-through edit (mirror,
    50%, q60) and its siblings. Each part alone is caught; together they stack the losses of all three."""
    shrink = by_name["resize_50"]
    chains = []
    for geometric in ("flip_h", "flip_v", "rot90", "rot180", "rot270", "rot_2", "rot_5"):
        first = by_name[geometric]
        chains.append(Transform(
            f"{geometric}+resize_50+jpeg_q60",
            "geometric_chain",
            (lambda a: lambda im, rng: shrink.edit(a.edit(im, rng), rng))(first),
            (lambda a: lambda s: shrink.size(a.size(s)))(first),
            "JPEG",
            {"quality": 60},
        ))
    return chains


def _offgrid_box(size: Size, percent: float, one_side: bool, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """p% of the width and of the height cut at a random split between opposite sides; or, `one_side`, p% of
    the width cut from the left or the right edge (drawn at random)."""
    width, height = size
    cut_x, cut_y = round(width * percent / 100), round(height * percent / 100)
    if one_side:
        left = cut_x if rng.integers(0, 2) else 0
        return left, 0, left + width - cut_x, height
    left, top = int(rng.integers(0, cut_x + 1)), int(rng.integers(0, cut_y + 1))
    return left, top, left + width - cut_x, top + height - cut_y


def _offgrid_crops() -> list[Transform]:
    """Crops that do not sit on the stored crop grid (95/90/80%, centred or in a corner): at random offsets, and
    from one side only. Saved as JPEG 90 like the other edits."""
    crops = []
    for percent in (5, 10, 15, 20, 30):
        crops.append(Transform(
            f"crop_random_{percent}", "offgrid_crop",
            (lambda p: lambda im, rng: im.crop(_offgrid_box(im.size, p, False, rng)))(percent),
            _crop_size(percent),
        ))
    for percent in (10, 20, 30):
        crops.append(Transform(
            f"crop_side_{percent}", "offgrid_crop",
            (lambda p: lambda im, rng: im.crop(_offgrid_box(im.size, p, True, rng)))(percent),
            (lambda p: lambda s: (s[0] - round(s[0] * p / 100), s[1]))(percent),
        ))
    return crops


SUITE: tuple[Transform, ...] = tuple(build_suite())


def select(names: Sequence[str] | None) -> list[Transform]:
    """The named transforms (all when `names` is empty), in suite order; unknown names are an error."""
    if not names:
        return list(SUITE)
    known = {t.name: t for t in SUITE}
    missing = [n for n in names if n not in known]
    if missing:
        raise ValueError(f"unknown transforms: {', '.join(missing)}")
    return [t for t in SUITE if t.name in set(names)]
