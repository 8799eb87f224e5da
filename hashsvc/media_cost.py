"""What decoding one image will cost in memory, known from its header before any pixel is decoded.

A 194 KB PNG can declare 100 MP of grey+alpha: under the pixel limit, yet gigabytes once decoded and converted.
`peak_bytes` adds up what `hashsvc.media` will hold at its peak for one frame:

- the decoded frame, in Pillow's storage (`bytes_per_pixel`: 1, 2 or 4 bytes per pixel; RGB is stored in 4);
- the decoder's own buffers: libjpeg's full-size coefficient arrays for progressive and multi-scan JPEGs
  (draft() does not shrink them), libtiff's strip or tile buffer, libwebp's and libheif's output copies;
- the conversion to RGB, done in strips of rows (`STRIP_PIXELS`), so its working set is bounded whatever the
  image size;
- the normalized result (reduced to the working size, or full size) and what hashing spends per pixel of it.

Factors marked "measured" come from peak RSS of a fresh process decoding 24 MP files (docs in the README,
"Limits"). The model errs on the side of overestimating; the sandbox's address-space limit backs it up.
"""

from __future__ import annotations

import math

from PIL import Image

# Pillow's in-memory pixel sizes (Imaging's `pixelsize`): every mode not listed takes 4 bytes per pixel,
# including RGB, LA, PA, I, F and CMYK.
_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}

STRIP_PIXELS = 1 << 18  # pixels converted to RGB at once; see media._to_rgb_reduced
# Per strip pixel, at most: the cropped strip (4), a 16-bit grey's int64 arithmetic (3 x 8) or an alpha
# composite's RGBA copy, background, result and RGB (4 x 4), plus the reduced strip.
_CONVERSION_BYTES_PER_PIXEL = 32
_RGB_BYTES_PER_PIXEL = 4  # the normalized frame (Pillow stores RGB in 4 bytes)

# Decoder buffers beyond the decoded frame, per pixel (measured, rounded up): pillow-heif holds libheif's
# YCbCr planes and an RGB copy (7.45 B/px in all, frame included); Pillow's WebP decoder goes through
# libwebp's animation decoder and its RGBA canvases (16.3 B/px in all).
_HEIF_EXTRA_BYTES_PER_PIXEL = 4
_WEBP_EXTRA_BYTES_PER_PIXEL = 13
_JPEG_COEFFICIENT_BYTES = 2  # libjpeg keeps one 16-bit coefficient per sample for multi-scan images


def bytes_per_pixel(mode: str) -> int:
    return _BYTES_PER_PIXEL.get(mode, 4)


def reduce_factor(size: tuple[int, int], work_size: int | None) -> int:
    """The whole-number box factor media reduces a frame of `size` by (1 = not reduced)."""
    if not work_size:
        return 1
    return max(1, int(min(size) // work_size))


def strip_rows(width: int, factor: int) -> int:
    """Rows per conversion strip: about STRIP_PIXELS, and a multiple of the reduce factor, so that reducing
    strip by strip gives exactly the pixels of reducing the whole frame."""
    rows = max(1, STRIP_PIXELS // max(1, width))
    return max(factor, rows // factor * factor)


def peak_bytes(
    image: Image.Image,
    data: bytes,
    *,
    full_size: tuple[int, int],
    work_size: int | None,
    hash_bytes_per_pixel: int,
) -> int:
    """Peak bytes to decode, normalize and hash the current frame of `image` (opened, not loaded; after any
    draft()). `full_size` is the size before draft(); `hash_bytes_per_pixel` is what the caller spends per
    pixel of the normalized frame."""
    width, height = image.size
    pixels = width * height
    decoded = pixels * bytes_per_pixel(image.mode)
    factor = reduce_factor(image.size, work_size)
    output = math.ceil(width / factor) * math.ceil(height / factor)
    conversion = 0
    if image.mode != "RGB":
        conversion = min(height, strip_rows(width, factor)) * width * _CONVERSION_BYTES_PER_PIXEL
    return (
        decoded
        + _decoder_bytes(image, data, full_size)
        + conversion
        + output * (_RGB_BYTES_PER_PIXEL + hash_bytes_per_pixel)
    )


def _decoder_bytes(image: Image.Image, data: bytes, full_size: tuple[int, int]) -> int:
    pixels = image.size[0] * image.size[1]
    if image.format in ("JPEG", "MPO"):
        return _jpeg_coefficients(image, data, full_size)
    if image.format == "TIFF":
        return _tiff_buffer(image)
    if image.format == "WEBP":
        return pixels * _WEBP_EXTRA_BYTES_PER_PIXEL
    if image.format in ("HEIF", "AVIF"):
        return pixels * _HEIF_EXTRA_BYTES_PER_PIXEL
    return 0  # PNG, GIF, BMP decode row by row into the frame


def _jpeg_coefficients(image: Image.Image, data: bytes, full_size: tuple[int, int]) -> int:
    """libjpeg buffers every DCT coefficient of the full-size image when the file has several scans
    (progressive, or components in separate scans); a single interleaved scan is decoded row by row."""
    if not _jpeg_has_several_scans(image, data):
        return 0
    layers = getattr(image, "layer", None) or [("", 1, 1, 0)] * len(image.getbands())
    h_max = max(h for _, h, _, _ in layers) or 1
    v_max = max(v for _, _, v, _ in layers) or 1
    width, height = full_size
    total = 0
    for _, h, v, _ in layers:
        blocks_wide = math.ceil(width * h / h_max / 8)
        blocks_high = math.ceil(height * v / v_max / 8)
        total += blocks_wide * blocks_high * 64 * _JPEG_COEFFICIENT_BYTES
    return total


def _jpeg_has_several_scans(image: Image.Image, data: bytes) -> bool:
    if image.info.get("progressive") or image.info.get("progression"):
        return True
    start = _first_scan_data(data)
    if start is None:
        return False
    # Entropy-coded data stuffs every 0xFF byte, so a second SOS marker (FF DA) before the image's EOI is a
    # real second scan. Starting after the first scan's header keeps EXIF thumbnails out; stopping at EOI keeps
    # out whatever follows the image (an MPO's second picture, a polyglot's payload).
    end = data.find(b"\xff\xd9", start)
    return data.find(b"\xff\xda", start, end if end >= 0 else len(data)) >= 0


def _first_scan_data(data: bytes) -> int | None:
    """Offset of the first scan's entropy-coded data: walk the marker segments from SOI to the first SOS."""
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte before a marker
            position += 1
            continue
        length = int.from_bytes(data[position + 2 : position + 4], "big")
        if marker == 0xDA:
            return position + 2 + length
        position += 2 + length
    return None


def _tiff_buffer(image: Image.Image) -> int:
    """libtiff decodes one strip or tile at a time into a buffer of its own; a hostile file can declare one
    strip (or one tile) as large as the image, or larger."""
    if not image.tile or image.tile[0].codec_name != "libtiff":
        return 0  # uncompressed strips are read straight into the frame
    tags = image.tag_v2
    width, height = image.size
    samples = int(tags.get(277, 1) or 1)
    bits = tags.get(258, 8)
    bits_per_sample = max(bits) if isinstance(bits, tuple) else int(bits or 8)
    raw_bytes_per_pixel = max(4, math.ceil(samples * bits_per_sample / 8))
    if 322 in tags and 323 in tags:  # TileWidth, TileLength
        return int(tags[322]) * int(tags[323]) * raw_bytes_per_pixel
    rows = int(tags.get(278, height) or height)  # RowsPerStrip
    return min(rows, height) * width * raw_bytes_per_pixel
