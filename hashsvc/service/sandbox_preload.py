"""Imported once by the sandbox's fork server, so that every sandbox worker forked from it starts warm.

Importing this module pays, in the fork server, for what the first hash in a fresh process costs (imports,
pdqhash's and Pillow's lazy initialisation: about 0.5 s here); workers forked from the server inherit all of
it, so starting or replacing a worker costs a fork, not an interpreter start. `warm_up` is also called by
each worker, which makes it correct (only slower) when the fork server was started without this module.
"""

from __future__ import annotations

import io

import av  # noqa: F401 - FFmpeg's libraries, loaded once here rather than by each worker's first video
import numpy as np
from PIL import Image

from hashsvc.service.hashing import hash_image

_warm = False


def warm_up() -> None:
    """Hash a tiny image once through every path a job takes (query and index views)."""
    global _warm
    if _warm:
        return
    pixels = (np.arange(64 * 48 * 3) % 251).astype(np.uint8).reshape(48, 64, 3)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    hash_image(buffer.getvalue(), dihedral=True, extras="query")
    hash_image(buffer.getvalue(), extras="index", features=8)  # loads OpenCV too (hashsvc.features.native)
    _warm = True


warm_up()
