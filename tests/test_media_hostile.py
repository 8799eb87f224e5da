"""Hostile uploads: each gets its typed error (or, for a valid image inside a polyglot, hashes) within a second,
without unbounded memory, and never any other exception."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hostile import HOSTILE, png_claiming

from hashsvc.errors import MediaError
from hashsvc.media import Limits, decode_first
from hashsvc.service.hashing import hash_image


def outcome(data: bytes) -> str:
    try:
        hash_image(data)
    except MediaError as error:
        return error.code
    return "ok"


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_input_gets_a_typed_answer_within_a_second(name: str) -> None:
    data, acceptable = HOSTILE[name]
    started = time.monotonic()
    result = outcome(data)
    elapsed = time.monotonic() - started
    assert result in acceptable
    assert elapsed < 1.0, f"{name} took {elapsed:.2f} s"


PROBE = r"""
import json, resource, sys, time
sys.path[:0] = sys.argv[1:3]
from hostile import HOSTILE
from images import encode, photo
from hashsvc.errors import MediaError
from hashsvc.service.hashing import hash_image
hash_image(encode(photo(800, 600)))  # warm up imports and allocator pools
report = {}
for name, (data, _) in HOSTILE.items():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        hash_image(data)
    except MediaError:
        pass
    report[name] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024
print(json.dumps(report))
"""


def test_hostile_inputs_do_not_grow_peak_memory_beyond_a_bound() -> None:
    tests_dir = Path(__file__).parent
    root = tests_dir.parent
    completed = subprocess.run(
        [sys.executable, "-c", PROBE, str(tests_dir), str(root)], capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr
    growth_mib = json.loads(completed.stdout)
    assert set(growth_mib) == set(HOSTILE)
    assert max(growth_mib.values()) < 64, growth_mib


def test_pixel_limit_is_checked_from_the_header_before_decoding() -> None:
    started = time.monotonic()
    with pytest.raises(MediaError) as info:
        decode_first(png_claiming(20_000, 10_000), Limits(max_pixels=100_000_000))
    assert info.value.code == "too_many_pixels"
    assert "20000x10000" in info.value.message
    assert info.value.http_status == 413
    assert time.monotonic() - started < 0.5


def test_byte_limit_is_checked_before_anything_else() -> None:
    with pytest.raises(MediaError) as info:
        decode_first(b"\xff\xd8" + b"\x00" * 2000, Limits(max_bytes=1000))
    assert info.value.code == "too_large"
    assert info.value.http_status == 413
