"""How much a 64-bit code says about its image: the measure behind the policy's information rule.

dHash sets a bit where a pixel of its 9x8 greyscale thumbnail is brighter than its left neighbour. On a photo
about half the bits are set; on a view with almost no texture (a star field, a dark scene, a flat fill, the
strip a trimmer leaves of a dark picture) neighbouring thumbnail pixels are equal, every such bit is 0, and the
code degenerates towards all zeros. Two degenerate codes then sit a few bits apart whatever the images were: the
issue's star fields reached `review` that way, from a dHash of a trimmed view within 3 bits of a stored one.

The count of the rarer bit value (`minority_bits`) measures it: about 32 for a random code and for photos, a
handful for degenerate views. pHash thresholds its DCT coefficients at their median, so its codes are balanced
by construction and say nothing this way: for pHash the view's PDQ quality (PDQ's own texture measure over the
same pixels) is the information measure (see hashsvc/service/policy.py).
"""

from __future__ import annotations


def minority_bits(code: bytes) -> int:
    """How many bits hold the rarer value (0 .. half the bits)."""
    ones = int.from_bytes(code, "big").bit_count()
    return min(ones, 8 * len(code) - ones)
