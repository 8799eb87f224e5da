"""Untrusted image bytes in, normalized pixels out: the only module that touches upload bytes.

Decoding rules, so that every hash sees the same pixels whatever the container:

1. The format is recognised from the content (magic bytes), never from a file name; only JPEG (and MPO, the
   multi-picture JPEG some cameras write), PNG, GIF, WebP, BMP, TIFF and HEIC/HEIF are accepted.
2. Limits are checked from the header before any pixel is decoded: bytes, width x height, frame count.
   Decoding runs against a deadline that is checked every time the decoder asks for more input, so a slow
   file stops with `decode_timeout` instead of holding a worker.
3. JPEGs much larger than the working size are decoded at 1/2, 1/4 or 1/8 scale by the JPEG decoder itself
   (Pillow's `draft()`): a 12 MP photo costs a fraction of a full decode, and the hashes only look at a 64x64
   (PDQ) or 32x32 (pHash) summary anyway. Other formats are decoded fully, then box-reduced by an integer factor.
4. EXIF orientation is applied (a phone photo and its rotated export hash alike); malformed EXIF is ignored
   rather than rejected, because the pixels are still fine.
5. Every mode becomes 8-bit RGB: palette and alpha images are composited onto a fixed white background (what a
   viewer sees, not the colour hidden under transparent pixels); 16-bit and float greys are scaled, not clipped;
   CMYK, LAB, YCbCr, HSV and 1-bit go through Pillow's conversions.
6. Animated images: the first frame, or every k-th frame on request.

`PixelRules.THREATEXCHANGE` reproduces python-threatexchange's conversions instead (alpha dropped, 16-bit
clipped by Pillow's `convert("RGB")`), for platforms that must produce byte-identical hashes with partners
who use it. The two agree on every opaque 8-bit image.
"""

from __future__ import annotations

import enum
import io
import time
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFile

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
    max_frames: int = 1000
    decode_timeout_s: float = 5.0


@dataclass(frozen=True)
class DecodedImage:
    """One normalized frame: 8-bit RGB pixels plus facts about the original."""

    pixels: Image.Image  # mode RGB, possibly reduced from the original size
    width: int  # of the original, after EXIF orientation
    height: int
    format: str
    frames: int  # frames in the file (1 for still images)
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
) -> list[DecodedImage]:
    """Decode untrusted bytes into normalized RGB frames: the first frame, or every k-th one.

    `work_size` is the shorter side the result may be reduced to (None: full resolution).
    Raises MediaError (empty, too_large, unsupported_format, too_many_pixels, too_many_frames, corrupt,
    decode_timeout) for anything that cannot be hashed; never any other exception.
    """
    limits = limits or Limits()
    if not data:
        raise MediaError("empty", "the upload is empty")
    if len(data) > limits.max_bytes:
        raise MediaError("too_large", f"the upload is {len(data)} bytes; the limit is {limits.max_bytes}")
    deadline = time.monotonic() + limits.decode_timeout_s
    try:
        return _decode(data, limits, deadline, work_size, every_kth_frame, rules)
    except MediaError:
        raise
    except _DecodeTimeout:
        raise MediaError(
            "decode_timeout", f"decoding took longer than the {limits.decode_timeout_s:g} s limit"
        ) from None
    except MemoryError:
        raise MediaError("too_many_pixels", "the image needs more memory to decode than is allowed") from None
    except Exception as exc:  # noqa: BLE001 - decoders of hostile input raise anything (OSError, ValueError,
        # struct.error, EOFError, IndexError, ZeroDivisionError...); all of them mean "this file is broken".
        raise MediaError("corrupt", f"the image could not be decoded: {_describe(exc)}") from None


def decode_first(data: bytes, limits: Limits | None = None, **options: object) -> DecodedImage:
    """Decode the first frame only (see decode)."""
    return decode(data, limits, every_kth_frame=None, **options)[0]  # type: ignore[arg-type]


def _decode(
    data: bytes,
    limits: Limits,
    deadline: float,
    work_size: int | None,
    every_kth_frame: int | None,
    rules: PixelRules,
) -> list[DecodedImage]:
    reader = _DeadlineReader(data, deadline)
    try:
        image = Image.open(reader, formats=ACCEPTED_FORMATS)
    except Image.UnidentifiedImageError:
        raise MediaError(
            "unsupported_format",
            "not an image in an accepted format (JPEG, PNG, GIF, WebP, BMP, TIFF, HEIC)",
        ) from None
    with image:
        _check_pixels(image.size, limits)
        frame_count = _frame_count(image, limits)
        indices = [0] if not every_kth_frame else list(range(0, frame_count, every_kth_frame))
        frames = []
        for index in indices:
            if index:
                image.seek(index)
                _check_pixels(image.size, limits)
            frames.append(_normalize(image, frame_count, index, work_size, rules))
        return frames


def _check_pixels(size: tuple[int, int], limits: Limits) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise MediaError("corrupt", f"the image header declares an empty size {width}x{height}")
    if width * height > limits.max_pixels:
        raise MediaError(
            "too_many_pixels",
            f"the image declares {width}x{height} = {width * height:,} pixels; the limit is {limits.max_pixels:,}",
        )


def _frame_count(image: Image.Image, limits: Limits) -> int:
    count = int(getattr(image, "n_frames", 1))
    if count > limits.max_frames:
        raise MediaError("too_many_frames", f"the image has {count} frames; the limit is {limits.max_frames}")
    if count > 1:
        image.seek(0)  # counting frames may leave a multi-frame reader positioned at the end
    return count


def _normalize(
    image: Image.Image, frame_count: int, index: int, work_size: int | None, rules: PixelRules
) -> DecodedImage:
    orientation = _exif_orientation(image)
    full_width, full_height = image.size
    if work_size and image.format in ("JPEG", "MPO") and index == 0:
        # The JPEG decoder picks the largest 1/2^k scale that keeps both sides >= the requested box.
        scale = min(full_width, full_height) / work_size
        if scale >= 2:
            image.draft("RGB", (max(1, int(full_width / scale)), max(1, int(full_height / scale))))
    image.load()
    frame = _to_rgb(image, rules)
    if work_size:
        factor = int(min(frame.size) // work_size)
        if factor >= 2:
            frame = frame.reduce(factor)
    for step in _TRANSPOSE_FOR_ORIENTATION.get(orientation, ()):
        frame = frame.transpose(step)
    if orientation in (5, 6, 7, 8):
        full_width, full_height = full_height, full_width
    return DecodedImage(frame, full_width, full_height, str(image.format), frame_count, index)


def _exif_orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(_ORIENTATION_TAG, 1)
        return int(value) if int(value) in _TRANSPOSE_FOR_ORIENTATION else 1
    except Exception:  # noqa: BLE001 - a malformed EXIF block does not make the pixels unusable
        return 1


def _to_rgb(image: Image.Image, rules: PixelRules) -> Image.Image:
    mode = image.mode
    if rules is PixelRules.THREATEXCHANGE:
        return image if mode == "RGB" else image.convert("RGB")
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return _scale_to_8bit(image)
    if mode == "P":
        image = image.convert("RGBA") if "transparency" in image.info else image.convert("RGB")
        mode = image.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _scale_to_8bit(image: Image.Image) -> Image.Image:
    """Map 16-bit and 32-bit greys onto 0..255 by their nominal range (not Pillow's clipping, which turns
    most 16-bit photos white)."""
    values = np.asarray(image)
    if image.mode == "F":
        # Float images are either 0..1 (scientific) or 0..255 (converted from 8-bit); tell them apart by range.
        values = np.nan_to_num(values.astype(np.float64))
        scale = 255.0 if float(values.max(initial=0.0)) <= 1.0 else 1.0
        grey8 = np.clip(values * scale, 0, 255).astype(np.uint8)
    else:
        grey8 = (np.clip(values.astype(np.int64), 0, 65535) >> 8).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(grey8), mode="L").convert("RGB")


def _describe(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return (text or type(exc).__name__)[:200]
