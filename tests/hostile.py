"""Hostile uploads, crafted byte by byte: what an attacker could send to a decoder.

Shared by the media tests and, later, the API tests (every one must give a typed 4xx error, never a 5xx).
"""

from __future__ import annotations

import functools
import io
import random
import struct
import zlib

from images import encode, photo
from PIL import Image


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def png_claiming(width: int, height: int) -> bytes:
    """A tiny, valid-looking PNG whose header claims width x height pixels (a decompression bomb's shape)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    scanline = b"\x00" + b"\x00" * 3 * min(width, 1024)
    data = zlib.compress(scanline * 64, 9)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", data) + _png_chunk(b"IEND", b"")


def gif_with_frames(count: int) -> bytes:
    """A 1x1 GIF with `count` frames, built directly (Pillow would take far longer to write it)."""
    out = bytearray(b"GIF89a" + struct.pack("<HHBBB", 1, 1, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff")
    control = b"\x21\xf9\x04\x04\x01\x00\x00\x00"  # graphic control extension: 10 ms delay
    frame = control + b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"
    out += frame * count
    out += b"\x3b"
    return bytes(out)


def tiff_bomb(width: int = 60_000, height: int = 60_000) -> bytes:
    """A few hundred bytes of deflate-compressed TIFF that would decode to width x height x 3 bytes."""
    strip = zlib.compress(b"\x00" * 65536, 9)
    entries = [
        (256, 4, 1, width),  # ImageWidth
        (257, 4, 1, height),  # ImageLength
        (258, 3, 1, 8),  # BitsPerSample
        (259, 3, 1, 8),  # Compression: deflate
        (262, 3, 1, 1),  # Photometric: min-is-black
        (273, 4, 1, 0),  # StripOffsets (patched below)
        (277, 3, 1, 1),  # SamplesPerPixel
        (278, 4, 1, height),  # RowsPerStrip
        (279, 4, 1, len(strip)),  # StripByteCounts
    ]
    ifd_offset = 8
    ifd_size = 2 + 12 * len(entries) + 4
    strip_offset = ifd_offset + ifd_size
    body = bytearray(b"II*\x00" + struct.pack("<I", ifd_offset) + struct.pack("<H", len(entries)))
    for tag, kind, count, value in entries:
        value = strip_offset if tag == 273 else value
        packed = struct.pack("<HI", value, 0)[:4] if kind == 3 else struct.pack("<I", value)
        body += struct.pack("<HHI", tag, kind, count) + packed
    body += struct.pack("<I", 0) + strip
    return bytes(body)


def jpeg_with_hostile_exif() -> bytes:
    """A valid JPEG whose EXIF block is 60 KB, with an IFD that points at itself (a nesting loop)."""
    ifd = struct.pack("<H", 2)
    ifd += struct.pack("<HHII", 0x8769, 4, 1, 8)  # ExifIFD pointer -> back to IFD0
    ifd += struct.pack("<HHII", 0x010E, 2, 60_000, 38)  # ImageDescription: 60 KB of text
    ifd += struct.pack("<I", 8)  # next IFD -> IFD0 again
    tiff = b"II*\x00" + struct.pack("<I", 8) + ifd + b"A" * 60_000
    app1 = b"Exif\x00\x00" + tiff
    jpeg = encode(photo(64, 48, seed=7))
    segment = b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1
    return jpeg[:2] + segment + jpeg[2:]


def truncated_jpeg() -> bytes:
    data = encode(photo(640, 480, seed=3))
    return data[: len(data) // 3]


def polyglot_html_gif() -> bytes:
    """An HTML page that starts with <html> and carries a GIF: not an image by its content."""
    gif = io.BytesIO()
    Image.new("P", (4, 4)).save(gif, "GIF")
    return b"<html><body><script>alert(1)</script><!--" + gif.getvalue() + b"--></body></html>"


def polyglot_jpeg_zip() -> bytes:
    """A real JPEG with a ZIP archive appended (a 'GIFAR'-style polyglot): the image part is hashable."""
    return encode(photo(64, 48, seed=9)) + b"PK\x03\x04" + b"\x00" * 26 + b"payload"


HOSTILE: dict[str, tuple[bytes, set[str]]] = {
    # name: (bytes, acceptable outcomes; "ok" means the image part is legitimately hashable)
    "zero_bytes": (b"", {"empty"}),
    "random_bytes": (random.Random(1).randbytes(4096), {"unsupported_format"}),
    "text": (b"just some text, not a picture\n" * 10, {"unsupported_format"}),
    "html": (b"<!doctype html><html><body><img src=x onerror=alert(1)></body></html>", {"unsupported_format"}),
    "truncated_jpeg": (truncated_jpeg(), {"corrupt"}),
    "png_100k_x_100k": (png_claiming(100_000, 100_000), {"too_many_pixels"}),
    "gif_10000_frames": (gif_with_frames(10_000), {"ok"}),  # its first frame is an image like any other
    "hostile_exif": (jpeg_with_hostile_exif(), {"ok", "corrupt"}),
    "tiff_bomb": (tiff_bomb(), {"too_many_pixels"}),
    "polyglot_html_gif": (polyglot_html_gif(), {"unsupported_format"}),
    "polyglot_jpeg_zip": (polyglot_jpeg_zip(), {"ok"}),
    "one_pixel_png": (encode(Image.new("L", (1, 1)), "PNG"), {"ok"}),
    "one_pixel_wide_png": (encode(Image.new("RGB", (1, 300)), "PNG"), {"ok"}),
}


# ------------------------------------------------------------------------------------------ heavy decodes
# Small files, within the pixel limit, that are expensive to decode: what the decode cost check refuses.


@functools.cache
def png_of_zeros(width: int, height: int, mode: str) -> bytes:
    """A valid PNG of width x height zero pixels in `mode` ("L", "LA", "RGB", "RGBA", "I;16"): about 194 KB
    at 9,990 x 9,990, because rows of zeros compress 1000:1."""
    color_type, channels, depth = {
        "L": (0, 1, 8), "LA": (4, 2, 8), "RGB": (2, 3, 8), "RGBA": (6, 4, 8), "I;16": (0, 1, 16),
    }[mode]
    row = b"\x00" * (1 + width * channels * depth // 8)
    packer = zlib.compressobj(9)
    body = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", body) + _png_chunk(b"IEND", b"")


def tiff_claiming(width: int, height: int, mode: str) -> bytes:
    """A deflate TIFF written by Pillow in `mode` at 8 x 8, whose header is then patched to claim width x height
    in one strip (its pixel data stays 8 x 8, so a decoder that went ahead would fail)."""
    data = bytearray(encode(Image.new(mode, (8, 8)), "TIFF", compression="tiff_adobe_deflate"))
    (ifd,) = struct.unpack_from("<I", data, 4)
    (count,) = struct.unpack_from("<H", data, ifd)
    for n in range(count):
        entry = ifd + 2 + 12 * n
        (tag,) = struct.unpack_from("<H", data, entry)
        value = {256: width, 257: height, 278: height}.get(tag)
        if value is not None:
            struct.pack_into("<HI", data, entry + 2, 4, 1)  # as a LONG, whatever Pillow wrote
            struct.pack_into("<I", data, entry + 8, value)
    return bytes(data)


HEAVY_TIFF_MODES = ("RGB", "RGBA", "CMYK", "LA", "I;16", "I", "F", "YCbCr")
