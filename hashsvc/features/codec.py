"""`Features` <-> bytes: the form an item's features take in the store (one blob per item).

Layout (little-endian): version u8 | count u16 | positions float32[count, 2] | descriptors uint8[count, 32].
A blob is data, never code; `decode` checks the version, the count bound and the exact length, so a damaged or
foreign row fails loudly (FeatureCodecError) instead of yielding garbage keypoints.
"""

from __future__ import annotations

import struct

import numpy as np

from hashsvc.features.orb import DESCRIPTOR_BYTES, MAX_STORED, Features

VERSION = 1
_HEAD = struct.Struct("<BH")
ROW_BYTES = 8 + DESCRIPTOR_BYTES  # one keypoint: x, y float32 and its descriptor


class FeatureCodecError(ValueError):
    """A stored features blob is of an unknown version, too long, or truncated."""


def encode(features: Features) -> bytes:
    count = len(features)
    if count > MAX_STORED:
        raise ValueError(f"an item stores at most {MAX_STORED} features, got {count}")
    positions = np.ascontiguousarray(features.positions, dtype="<f4").reshape(count, 2)
    descriptors = np.ascontiguousarray(features.descriptors, dtype=np.uint8).reshape(count, DESCRIPTOR_BYTES)
    return _HEAD.pack(VERSION, count) + positions.tobytes() + descriptors.tobytes()


def decode(blob: bytes) -> Features:
    if len(blob) < _HEAD.size:
        raise FeatureCodecError("features blob is truncated (header)")
    version, count = _HEAD.unpack_from(blob)
    if version != VERSION:
        raise FeatureCodecError(f"features blob has version {version}; this code reads {VERSION}")
    if count > MAX_STORED:
        raise FeatureCodecError(f"features blob holds {count} features, more than {MAX_STORED}")
    if len(blob) != _HEAD.size + count * ROW_BYTES:
        raise FeatureCodecError(f"features blob is {len(blob)} bytes, its header says {_HEAD.size + count * ROW_BYTES}")
    split = _HEAD.size + count * 8
    positions = np.frombuffer(blob, dtype="<f4", count=count * 2, offset=_HEAD.size).reshape(count, 2)
    descriptors = np.frombuffer(blob, dtype=np.uint8, offset=split).reshape(count, DESCRIPTOR_BYTES)
    if not np.isfinite(positions).all():
        raise FeatureCodecError("features blob holds a non-finite keypoint position")
    return Features(positions.astype(np.float32), descriptors.copy())
