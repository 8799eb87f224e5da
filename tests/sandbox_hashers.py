"""Hashers injected into sandbox pools by tests/test_sandbox.py: each misbehaves on one magic upload and hashes
anything else normally. A module of their own, importing nothing heavy, because every worker that runs them
imports it (importing the test module would cost each new worker a second)."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from hashsvc.service.hashing import ImageHashes, hash_image

MIB = 1024 * 1024
MAGIC = b"misbehave"




def sleeps(data: bytes, **options: Any) -> ImageHashes:
    if data == MAGIC:
        time.sleep(60)
    return hash_image(data, **options)


def spins(data: bytes, **options: Any) -> ImageHashes:
    while data == MAGIC:
        pass
    return hash_image(data, **options)


def segfaults(data: bytes, **options: Any) -> ImageHashes:
    if data == MAGIC:
        os.kill(os.getpid(), signal.SIGSEGV)
    return hash_image(data, **options)


def allocates(data: bytes, **options: Any) -> ImageHashes:
    if data == MAGIC:
        hoard = [bytearray(64 * MIB) for _ in range(64)]  # 4 GiB, far past the address-space limit
        return hoard  # type: ignore[return-value]
    return hash_image(data, **options)
