"""The naive pipeline that HMA and python-threatexchange run: full decode, then hash. Our baseline."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import imagehash
import numpy as np
import pdqhash
from PIL import Image

from hashsvc.hashes.codec import bits_to_bytes


@dataclass(frozen=True)
class NaiveHashes:
    pdq: bytes
    quality: int
    phash: bytes
    md5: bytes


def naive_hashes(data: bytes) -> NaiveHashes:
    """`Image.open` -> RGB at full resolution -> `pdqhash.compute` + `imagehash.phash` + MD5."""
    with Image.open(io.BytesIO(data)) as image:
        rgb = image.convert("RGB")
    vector, quality = pdqhash.compute(np.asarray(rgb))
    return NaiveHashes(
        pdq=bits_to_bytes(vector),
        quality=int(quality),
        phash=bits_to_bytes(imagehash.phash(rgb).hash),
        md5=hashlib.md5(data, usedforsecurity=False).digest(),
    )
