"""Hash algorithms' metadata, hex codecs, validation of client-sent hashes, and Hamming distance.

Every hash is held as bytes, packed MSB-first: bit 0 of the algorithm's bit vector is the top bit of byte 0.
That makes the hex forms the ecosystem's own for free:

* PDQ: 64 lowercase hex chars, as ThreatExchange, python-threatexchange and HMA write them (the 256-element
  bit vector from `pdqhash`, concatenated MSB-first).
* pHash / dHash: imagehash's 16-char hex (its 8x8 bit array flattened row-major, MSB-first).
* MD5 / SHA-256: the usual hex digests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from hashsvc.errors import InvalidHashError


@dataclass(frozen=True)
class Algorithm:
    """What the service knows about one hash algorithm."""

    name: str
    bits: int
    perceptual: bool  # False: cryptographic, matched exactly (distance 0 only)
    default_threshold: int  # largest Hamming distance still counted as a match
    version: str  # bumped if the way we compute it changes, so stored hashes can be told apart

    @property
    def nbytes(self) -> int:
        return self.bits // 8

    @property
    def hex_length(self) -> int:
        return self.bits // 4


ALGORITHMS: dict[str, Algorithm] = {
    a.name: a
    for a in (
        Algorithm("pdq", 256, True, 31, "pdqhash-0.2"),
        Algorithm("phash", 64, True, 8, "imagehash-4"),
        Algorithm("dhash", 64, True, 8, "imagehash-4"),
        Algorithm("md5", 128, False, 0, "1"),
        Algorithm("sha256", 256, False, 0, "1"),
    )
}

_HEX = re.compile(r"[0-9a-f]*")


def get_algorithm(name: str) -> Algorithm:
    """Return the Algorithm called `name` (case-insensitive); raise InvalidHashError if unknown."""
    key = name.strip().lower() if isinstance(name, str) else name
    try:
        return ALGORITHMS[key]
    except (KeyError, TypeError):
        known = ", ".join(ALGORITHMS)
        raise InvalidHashError(f"unknown hash algorithm {name!r}; known: {known}") from None


def normalize_hex(algorithm: str, text: str) -> str:
    """Validate a client-sent hash and return its canonical lowercase hex.

    Surrounding whitespace and upper case are forgiven; anything else that is not exactly `bits / 4` hex
    digits raises InvalidHashError with a message saying what is wrong.
    """
    algo = get_algorithm(algorithm)
    if not isinstance(text, str):
        raise InvalidHashError(f"{algo.name} hash must be a hex string, got {type(text).__name__}")
    value = text.strip().lower()
    if not _HEX.fullmatch(value):
        raise InvalidHashError(f"{algo.name} hash must contain only hex digits 0-9a-f")
    if len(value) != algo.hex_length:
        raise InvalidHashError(
            f"{algo.name} hash must be {algo.hex_length} hex digits ({algo.bits} bits), got {len(value)}"
        )
    return value


def parse_hex(algorithm: str, text: str) -> bytes:
    """Validate and decode a hex hash into its packed bytes (see normalize_hex)."""
    return bytes.fromhex(normalize_hex(algorithm, text))


def to_hex(code: bytes) -> str:
    return code.hex()


def bits_to_bytes(bits: np.ndarray) -> bytes:
    """Pack a vector of 0/1 values MSB-first."""
    return np.packbits(np.asarray(bits, dtype=np.uint8).ravel()).tobytes()


def bytes_to_bits(code: bytes) -> np.ndarray:
    return np.unpackbits(np.frombuffer(code, dtype=np.uint8))


def hamming(a: bytes, b: bytes) -> int:
    """Number of differing bits between two equally long codes."""
    if len(a) != len(b):
        raise InvalidHashError(f"cannot compare hashes of {len(a) * 8} and {len(b) * 8} bits")
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).bit_count()
