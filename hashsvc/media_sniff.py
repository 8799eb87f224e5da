"""Tell a video or an animation from a still image by its first bytes, without decoding anything.

Runs in the serving process (it only reads container headers, a few kilobytes at most, and walks a GIF's block
structure without decompressing it), so that the service can send an upload down the video path or the image
path. A file name or a content type is never consulted: formats are told by content, as for images.
"""

from __future__ import annotations

import struct

# The demuxer each container goes to: only these are ever tried on untrusted bytes (FFmpeg would otherwise
# probe every demuxer it has, including exotic ones with a history of bugs).
DEMUXERS: dict[str, str] = {"mp4": "mov", "mov": "mov", "webm": "matroska", "mkv": "matroska", "avi": "avi"}
ANIMATIONS = ("gif", "webp", "png")

_MOV_BRANDS_QT = (b"qt  ",)
_MP4_BOXES = (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip")
_GIF_SCAN_LIMIT = 64 * 1024 * 1024  # a GIF is never scanned further than this (uploads are smaller anyway)


def video_kind(data: bytes) -> str | None:
    """'mp4', 'mov', 'webm', 'mkv', 'avi' for a video container; 'gif', 'webp', 'png' for an animated image
    (more than one frame); None for anything else (a still image, or not media at all)."""
    head = data[:64]
    if len(head) >= 12 and head[4:8] in _MP4_BOXES:
        if head[4:8] == b"ftyp" and head[8:12] in _MOV_BRANDS_QT:
            return "mov"
        return "mp4" if head[4:8] == b"ftyp" else "mov"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm" if b"webm" in data[:4096] else "mkv"
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "avi"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif" if _gif_frames_at_least(data, 2) else None
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "webp" if _webp_animated(data) else None
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png" if _png_animated(data) else None
    return None


def _webp_animated(data: bytes) -> bool:
    # An animated WebP is an extended ("VP8X") file with the animation flag (bit 1 of its first byte) set.
    return data[12:16] == b"VP8X" and len(data) > 20 and bool(data[20] & 0x02)


def _png_animated(data: bytes) -> bool:
    """APNG: an acTL chunk before the first IDAT, declaring more than one frame."""
    offset = 8
    while offset + 8 <= len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        if kind == b"acTL" and offset + 12 <= len(data):
            (frames,) = struct.unpack(">I", data[offset + 8 : offset + 12])
            return frames > 1
        if kind in (b"IDAT", b"IEND"):
            return False
        offset += 12 + length
    return False


def _gif_frames_at_least(data: bytes, wanted: int) -> bool:
    """Whether the GIF holds at least `wanted` image descriptors, found by skipping its blocks (no LZW)."""
    end = min(len(data), _GIF_SCAN_LIMIT)
    if end < 13:
        return False
    flags = data[10]
    offset = 13 + (3 * (2 << (flags & 7)) if flags & 0x80 else 0)
    frames = 0
    while offset < end:
        marker = data[offset]
        if marker == 0x3B:  # trailer
            return False
        if marker == 0x21:  # extension: label, then sub-blocks
            offset = _skip_sub_blocks(data, offset + 2, end)
        elif marker == 0x2C:  # image descriptor (+ local colour table), LZW size byte, then sub-blocks
            frames += 1
            if frames >= wanted:
                return True
            if offset + 10 > end:
                return False
            local = data[offset + 9]
            offset += 10 + (3 * (2 << (local & 7)) if local & 0x80 else 0)
            offset = _skip_sub_blocks(data, offset + 1, end)
        else:
            return False
    return False


def _skip_sub_blocks(data: bytes, offset: int, end: int) -> int:
    while offset < end:
        size = data[offset]
        offset += 1 + size
        if size == 0:
            break
    return offset
