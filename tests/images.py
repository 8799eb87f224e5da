"""Test images made on the fly with Pillow, so that the suite ships no third-party pictures."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def photo(width: int = 320, height: int = 240, seed: int = 0) -> Image.Image:
    """A deterministic picture with structure at several scales (a gradient, shapes with edges, texture),
    so that perceptual hashes have something to see (PDQ quality 100) and small edits stay small."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    base = np.stack(
        [(rng.uniform(0.2, 1) * x / width + rng.uniform(0, 1) * y / height) / 2 * 255 for _ in range(3)], axis=-1
    )
    image = Image.fromarray(base.astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    scale = max(width, height)
    for _ in range(40):
        x0, y0 = rng.uniform(-0.1, 1.0) * width, rng.uniform(-0.1, 1.0) * height
        w, h = rng.uniform(0.05, 0.4) * scale, rng.uniform(0.05, 0.4) * scale
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape((x0, y0, x0 + w, y0 + h), fill=colour)
    return image.filter(ImageFilter.GaussianBlur(radius=max(1.0, scale / 400)))


def encode(image: Image.Image, fmt: str = "JPEG", **options: object) -> bytes:
    buffer = io.BytesIO()
    if fmt == "JPEG" and "quality" not in options:
        options["quality"] = 92
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()
