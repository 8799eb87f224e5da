"""Untrusted image bytes in, normalized pixels out: the only module that touches upload bytes.

Decoding rules, so that every hash sees the same pixels whatever the container:

1. The format is recognised from the content (magic bytes), never from a file name; only JPEG (and MPO, the
   multi-picture JPEG some cameras write), PNG, GIF, WebP, BMP, TIFF and HEIC/HEIF are accepted.
2. Limits are checked from the header before any pixel is decoded: bytes, width x height, and the peak memory
   that decoding and converting the frame will take (`media_cost`; `too_expensive`). Decoding runs against a
   deadline that is checked every time the decoder asks for more input; the sandbox (service/sandbox.py)
   enforces the same deadline, and memory and CPU limits, by killing its worker process.
3. JPEGs much larger than the working size are decoded at 1/2, 1/4 or 1/8 scale by the JPEG decoder itself
   (Pillow's `draft()`): a 12 MP photo costs a fraction of a full decode, and the hashes only look at a 64x64
   (PDQ) or 32x32 (pHash) summary anyway. Other formats are decoded fully, then box-reduced by an integer factor.
4. EXIF orientation is applied (a phone photo and its rotated export hash alike); malformed EXIF is ignored
   rather than rejected, because the pixels are still fine.
5. Every mode becomes 8-bit RGB: palette and alpha images are composited onto a fixed white background (what a
   viewer sees, not the colour hidden under transparent pixels); 16-bit and float greys are scaled, not clipped;
   CMYK, LAB, YCbCr, HSV and 1-bit go through Pillow's conversions.
6. Animated images: the first frame, whatever the frame count (nothing scans the whole file before it is
   decoded); or every k-th frame on request, at most `max_frames` of them.

`PixelRules.THREATEXCHANGE` reproduces python-threatexchange's conversions instead (alpha dropped, 16-bit
clipped by Pillow's `convert("RGB")`), for platforms that must produce byte-identical hashes with partners
who use it. The two agree on every opaque 8-bit image.
"""

from __future__ import annotations

import enum
import io
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageFile

from hashsvc import media_cost
from hashsvc.errors import MediaError

try:  # HEIC is what iPhones upload; pillow-heif is a declared dependency, but keep the error actionable.
    import pillow_heif

    pillow_heif.register_heif_opener()
    _HEIF = ("HEIF",)
except ImportError:  # pragma: no cover - only without the dependency
    _HEIF = ()

# Only these decoders are ever tried on upload bytes; everything else is `unsupported_format`. (MPO, the
# multi-picture JPEG of some cameras, comes through the JPEG decoder.)
ACCEPTED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", *_HEIF)

# We enforce our own, configurable pixel limit from the header before decoding (and per frame), so Pillow's
# process-wide decompression-bomb guard would only duplicate it with a different, fixed number.
Image.MAX_IMAGE_PIXELS = None
Image.init()  # load every plugin now: `Image.open(formats=...)` only knows formats whose plugin is loaded
ImageFile.LOAD_TRUNCATED_IMAGES = False

BACKGROUND = (255, 255, 255)
DEFAULT_WORK_SIZE = 400  # shorter side of the working image; see README "Faithfulness of the fast path"
# Peak memory one decode may take (README "Limits"): room for a 24 MP HEIC (~200 MiB), a 50 MP progressive JPEG
# (~150 MiB) or an 8K RGBA screenshot (~140 MiB); not for 100 MP of grey+alpha (400 MB decoded).
DEFAULT_MAX_DECODE_BYTES = 256 * 1024 * 1024

_ORIENTATION_TAG = 0x0112
_TRANSPOSE_FOR_ORIENTATION = {
    2: (Image.Transpose.FLIP_LEFT_RIGHT,),
    3: (Image.Transpose.ROTATE_180,),
    4: (Image.Transpose.FLIP_TOP_BOTTOM,),
    5: (Image.Transpose.TRANSPOSE,),
    6: (Image.Transpose.ROTATE_270,),
    7: (Image.Transpose.TRANSVERSE,),
    8: (Image.Transpose.ROTATE_90,),
}


class PixelRules(enum.StrEnum):
    HASHSVC = "hashsvc"
    THREATEXCHANGE = "threatexchange"


@dataclass(frozen=True)
class Limits:
    """What one upload may cost. Exceeding any of them raises MediaError with the matching code."""

    max_bytes: int = 50 * 1024 * 1024
    max_pixels: int = 100_000_000
    max_frames: int = 1000  # frames decoded when every k-th frame is asked for; the first frame is always read
    decode_timeout_s: float = 5.0
    max_decode_bytes: int = DEFAULT_MAX_DECODE_BYTES  # peak memory of one decode, from the header (media_cost)


@dataclass(frozen=True)
class DecodedImage:
    """One normalized frame: 8-bit RGB pixels plus facts about the original."""

    pixels: Image.Image  # mode RGB, possibly reduced from the original size
    width: int  # of the original, after EXIF orientation
    height: int
    format: str
    frames: int  # frames in the file, counted up to max_frames + 1 after the first frame is decoded
    frame_index: int = 0

    def array(self) -> np.ndarray:
        return np.asarray(self.pixels)


class _DecodeTimeout(Exception):
    pass


class _DeadlineReader(io.BytesIO):
    """A BytesIO that raises once the deadline has passed: Pillow's decoders pull input in small blocks
    through `read`, so this bounds decode time without threads or signals."""

    def __init__(self, data: bytes, deadline: float) -> None:
        super().__init__(data)
        self._deadline = deadline

    def read(self, size: int | None = -1) -> bytes:
        if time.monotonic() > self._deadline:
            raise _DecodeTimeout
        return super().read(size)


def decode(
    data: bytes,
    limits: Limits | None = None,
    *,
    work_size: int | None = DEFAULT_WORK_SIZE,
    every_kth_frame: int | None = None,
    rules: PixelRules = PixelRules.HASHSVC,
    hash_bytes_per_pixel: int = 0,
) -> list[DecodedImage]:
    """Decode untrusted bytes into normalized RGB frames: the first frame, or every k-th one.

    `work_size` is the shorter side the result may be reduced to (None: full resolution).
    `hash_bytes_per_pixel` is what the caller will spend per pixel of each result; it counts towards
    `limits.max_decode_bytes`.
    Raises MediaError (empty, too_large, unsupported_format, too_many_pixels, too_expensive, corrupt,
    decode_timeout) for anything that cannot be hashed; never any other exception.
    """
    limits = limits or Limits()
    if not data:
        raise MediaError("empty", "the upload is empty")
    if len(data) > limits.max_bytes:
        raise MediaError("too_large", f"the upload is {len(data)} bytes; the limit is {limits.max_bytes}")
    deadline = time.monotonic() + limits.decode_timeout_s
    plan = _Plan(data, limits, work_size, rules, hash_bytes_per_pixel)
    try:
        return _decode(plan, deadline, every_kth_frame)
    except MediaError:
        raise
    except _DecodeTimeout:
        raise MediaError(
            "decode_timeout", f"decoding took longer than the {limits.decode_timeout_s:g} s limit"
        ) from None
    except MemoryError:  # in the sandbox, the worker's address-space limit surfaces here
        raise MediaError("too_expensive", "the image needs more memory to decode than is allowed") from None
    except Exception as exc:  # noqa: BLE001 - decoders of hostile input raise anything (OSError, ValueError,
        # struct.error, EOFError, IndexError, ZeroDivisionError...); all of them mean "this file is broken".
        raise MediaError("corrupt", f"the image could not be decoded: {_describe(exc)}") from None


def decode_first(data: bytes, limits: Limits | None = None, **options: object) -> DecodedImage:
    """Decode the first frame only (see decode)."""
    return decode(data, limits, every_kth_frame=None, **options)[0]  # type: ignore[arg-type]


@dataclass(frozen=True)
class _Plan:
    """One decode's inputs, passed down together."""

    data: bytes
    limits: Limits
    work_size: int | None
    rules: PixelRules
    hash_bytes_per_pixel: int


def _decode(plan: _Plan, deadline: float, every_kth_frame: int | None) -> list[DecodedImage]:
    reader = _DeadlineReader(plan.data, deadline)
    try:
        image = Image.open(reader, formats=ACCEPTED_FORMATS)
    except Image.UnidentifiedImageError:
        raise MediaError(
            "unsupported_format",
            "not an image in an accepted format (JPEG, PNG, GIF, WebP, BMP, TIFF, HEIC)",
        ) from None
    with image:
        _check_pixels(image.size, plan.limits)
        # The first frame is decoded before anything else looks at the file: counting frames walks the whole
        # file (n_frames on a 10,000-frame GIF), and a long animation is no reason to refuse its first frame.
        frames = [_normalize(image, 0, plan)]
        if every_kth_frame:
            frames += _later_frames(image, every_kth_frame, plan)
        count = _count_frames(image, plan.limits.max_frames)
    return [replace(frame, frames=count) for frame in frames]


def _later_frames(image: Image.Image, every_kth_frame: int, plan: _Plan) -> list[DecodedImage]:
    """Frames k, 2k, ... while the file has them, `max_frames` decoded frames in all (the first included)."""
    frames = []
    index = every_kth_frame
    while len(frames) + 1 < plan.limits.max_frames:
        try:
            image.seek(index)
        except EOFError:
            break
        _check_pixels(image.size, plan.limits)
        frames.append(_normalize(image, index, plan))
        index += every_kth_frame
    return frames


def _count_frames(image: Image.Image, max_frames: int) -> int:
    """Frames in the file, counted by seeking (no pixels decoded) and only up to max_frames + 1."""
    if not getattr(image, "is_animated", False):
        return 1
    count = max(1, image.tell() + 1)
    while count <= max_frames:
        try:
            image.seek(count)
        except EOFError:
            break
        count += 1
    return count


def _check_pixels(size: tuple[int, int], limits: Limits) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise MediaError("corrupt", f"the image header declares an empty size {width}x{height}")
    if width * height > limits.max_pixels:
        raise MediaError(
            "too_many_pixels",
            f"the image declares {width}x{height} = {width * height:,} pixels; the limit is {limits.max_pixels:,}",
        )


def _check_cost(image: Image.Image, full_size: tuple[int, int], plan: _Plan) -> None:
    cost = media_cost.peak_bytes(
        image,
        plan.data,
        full_size=full_size,
        work_size=plan.work_size,
        hash_bytes_per_pixel=plan.hash_bytes_per_pixel,
    )
    if cost > plan.limits.max_decode_bytes:
        mib = 1024 * 1024
        raise MediaError(
            "too_expensive",
            f"decoding this {image.size[0]}x{image.size[1]} {image.format} {image.mode} image needs about "
            f"{cost // mib:,} MiB; the limit is {plan.limits.max_decode_bytes // mib:,} MiB",
        )


def _normalize(image: Image.Image, index: int, plan: _Plan) -> DecodedImage:
    full_width, full_height = image.size
    if plan.work_size and image.format in ("JPEG", "MPO") and index == 0:
        # The JPEG decoder picks the largest 1/2^k scale that keeps both sides >= the requested box.
        scale = min(full_width, full_height) / plan.work_size
        if scale >= 2:
            image.draft("RGB", (max(1, int(full_width / scale)), max(1, int(full_height / scale))))
    _check_cost(image, (full_width, full_height), plan)
    orientation = _exif_orientation(image)  # after the cost check: a PNG's getexif() decodes the whole image
    image.load()
    frame = _to_rgb_reduced(image, plan.rules, plan.work_size)
    for step in _TRANSPOSE_FOR_ORIENTATION.get(orientation, ()):
        frame = frame.transpose(step)
    if orientation in (5, 6, 7, 8):
        full_width, full_height = full_height, full_width
    return DecodedImage(frame, full_width, full_height, str(image.format), 1, index)


def _exif_orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(_ORIENTATION_TAG, 1)
        return int(value) if int(value) in _TRANSPOSE_FOR_ORIENTATION else 1
    except Exception:  # noqa: BLE001 - a malformed EXIF block does not make the pixels unusable
        return 1


def _to_rgb_reduced(image: Image.Image, rules: PixelRules, work_size: int | None) -> Image.Image:
    """The frame as 8-bit RGB, box-reduced towards `work_size`.

    Conversions run strip by strip (rows in multiples of the reduce factor, so the result is pixel for pixel
    that of converting, then reducing, the whole frame): an alpha composite of the whole frame would hold four
    more full-size copies, which made a 100 MP grey+alpha PNG cost gigabytes."""
    factor = media_cost.reduce_factor(image.size, work_size)
    if image.mode == "RGB":
        return image.reduce(factor) if factor >= 2 else image
    convert = _converter(image, rules)
    width, height = image.size
    rows = media_cost.strip_rows(width, factor)
    if rows >= height:
        frame = convert(image)
        return frame.reduce(factor) if factor >= 2 else frame
    result = Image.new("RGB", (-(-width // factor), -(-height // factor)))
    for top in range(0, height, rows):
        strip = convert(image.crop((0, top, width, min(height, top + rows))))
        result.paste(strip.reduce(factor) if factor >= 2 else strip, (0, top // factor))
    return result


def _converter(image: Image.Image, rules: PixelRules) -> Callable[[Image.Image], Image.Image]:
    """The per-pixel conversion of `image`'s mode to RGB, to apply to the whole frame or to strips of it."""
    if rules is PixelRules.THREATEXCHANGE:
        return lambda part: part.convert("RGB")
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        return _grey16_to_rgb
    if image.mode == "F":
        scale = 255.0 if _float_maximum(image) <= 1.0 else 1.0
        return lambda part: _float_to_rgb(part, scale)
    if image.mode == "P" and "transparency" in image.info:
        return lambda part: _composite(part.convert("RGBA"))
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        return _composite
    return lambda part: part.convert("RGB")


def _composite(image: Image.Image) -> Image.Image:
    """Alpha onto the fixed background: what a viewer sees, not the colour hidden under transparent pixels."""
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _grey16_to_rgb(image: Image.Image) -> Image.Image:
    """16-bit and 32-bit integer greys onto 0..255 by their nominal range (not Pillow's clipping, which turns
    most 16-bit photos white)."""
    values = np.asarray(image)
    grey8 = (np.clip(values.astype(np.int64), 0, 65535) >> 8).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(grey8), mode="L").convert("RGB")


def _float_maximum(image: Image.Image) -> float:
    """The largest value of a float frame, NaN read as 0, computed strip by strip like the conversion."""
    width, height = image.size
    rows = media_cost.strip_rows(width, 1)
    maximum = 0.0
    for top in range(0, height, rows):
        values = np.nan_to_num(np.asarray(image.crop((0, top, width, min(height, top + rows)))).astype(np.float64))
        maximum = max(maximum, float(values.max(initial=0.0)))
    return maximum


def _float_to_rgb(image: Image.Image, scale: float) -> Image.Image:
    """Float images are either 0..1 (scientific) or 0..255 (converted from 8-bit); `scale` says which, from the
    whole frame's range."""
    values = np.nan_to_num(np.asarray(image).astype(np.float64))
    grey8 = np.clip(values * scale, 0, 255).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(grey8), mode="L").convert("RGB")


def _describe(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return (text or type(exc).__name__)[:200]
