"""Sample images for benchmarks: a folder of photos, and large JPEGs made from them.

Phone photos of 12 MP and more are what uploads look like, but the benchmark corpus is mostly small. Two ways
to make large inputs from it, both deterministic:

* `mosaic`: tiles of several photos at (near) native resolution - real detail at full size, like a photo;
* `upscale`: one photo enlarged with bicubic interpolation - unnaturally smooth, a worst case for any
  reduced-resolution shortcut, since PDQ's bits then sit close to their median.
"""

from __future__ import annotations

import io
import random
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".heic", ".heif"}


def list_images(folder: Path) -> list[Path]:
    """Every image file below `folder`, sorted, by suffix (the corpus also holds README and manifest files)."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def require_free_port(port: int) -> None:
    """For benchmark scripts that start a server: exit with one line if something already listens on `port`
    (measuring another server would give nonsense: ready at once, its memory, no answers)."""
    import socket

    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise SystemExit(f"error: port {port} is in use (another server?): pass --port with a free one") from None


def require_images(folder: Path, option: str = "--corpus") -> list[Path]:
    """For benchmark scripts: the images below `folder`, or exit with one line saying what is missing.

    The default folders are in ../shared, which a fresh clone does not have (see the README).
    """
    found = list_images(folder) if folder.is_dir() else []
    if not found:
        where = "does not exist" if not folder.exists() else "holds no JPEG/PNG/WebP/GIF/BMP/TIFF/HEIC images"
        raise SystemExit(
            f"error: {folder} {where}; the benchmarks read ../shared/corpus (not in the repository): "
            f"pass {option} with a folder of your own photos"
        )
    return found


def _size_for(megapixels: float, aspect: float = 4 / 3) -> tuple[int, int]:
    width = int((megapixels * 1e6 * aspect) ** 0.5)
    return width, int(width / aspect)


def mosaic(sources: Sequence[Path], megapixels: float, seed: int) -> Image.Image:
    """A width x height RGB image (4:3) tiled from randomly chosen sources, each scaled to one column's width."""
    rng = random.Random(seed)
    width, height = _size_for(megapixels)
    columns = rng.choice([3, 4, 5])
    tile_width = width // columns
    canvas = Image.new("RGB", (width, height))
    y = 0
    while y < height:
        row_height = None
        for column in range(columns + 1):
            with Image.open(rng.choice(sources)) as source:
                tile = source.convert("RGB")
            scale = tile_width / tile.width
            tile = tile.resize((tile_width, max(1, round(tile.height * scale))), Image.Resampling.LANCZOS)
            row_height = row_height or tile.height
            canvas.paste(tile.crop((0, 0, tile_width, row_height)), (column * tile_width, y))
        y += row_height or height
    return canvas


def upscale(source: Path, megapixels: float) -> Image.Image:
    with Image.open(source) as image:
        rgb = image.convert("RGB")
    scale = (megapixels * 1e6 / (rgb.width * rgb.height)) ** 0.5
    return rgb.resize((round(rgb.width * scale), round(rgb.height * scale)), Image.Resampling.BICUBIC)


def to_jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()
