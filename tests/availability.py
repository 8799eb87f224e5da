"""Where optional test dependencies live, and the rule for when they are missing.

Tests that need `../shared` or PostgreSQL skip when those are absent (a user's laptop); `.ci/run` sets
HASHSVC_STRICT=1, which turns those skips into failures so that CI cannot pass by skipping.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DIR = Path(os.environ.get("HASHSVC_SHARED_DIR", Path(__file__).resolve().parents[1].parent / "shared"))
POSTGRES_URL = os.environ.get("HASHSVC_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
STRICT = os.environ.get("HASHSVC_STRICT", "") not in ("", "0")


def skip_or_fail(reason: str) -> None:
    """Skip on a laptop; fail under CI, where every dependency must be present."""
    if STRICT:
        pytest.fail(f"{reason} (HASHSVC_STRICT is set, so this is mandatory)")
    pytest.skip(reason)
