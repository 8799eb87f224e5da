"""The hash algorithms: metadata, codecs, distances and (in `compute`) the hashers themselves."""

from hashsvc.hashes.codec import (
    ALGORITHMS,
    Algorithm,
    bits_to_bytes,
    bytes_to_bits,
    get_algorithm,
    hamming,
    normalize_hex,
    parse_hex,
    to_hex,
)

__all__ = [
    "ALGORITHMS",
    "Algorithm",
    "bits_to_bytes",
    "bytes_to_bits",
    "get_algorithm",
    "hamming",
    "normalize_hex",
    "parse_hex",
    "to_hex",
]
