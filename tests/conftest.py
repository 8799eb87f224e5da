"""Shared fixtures.

Tests that need `../shared` (Meta's PDQ vectors, the benchmark corpus) or a PostgreSQL server skip when those
are absent, as on a user's laptop. `.ci/run` sets HASHSVC_STRICT=1, which turns those skips into failures so
that CI can never pass by silently skipping.
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


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not (SHARED_DIR / "DESIGN.md").exists():
        skip_or_fail(f"shared data not found at {SHARED_DIR}")
    return SHARED_DIR


@pytest.fixture(scope="session")
def pdq_conformance(shared_dir: Path) -> Path:
    path = shared_dir / "pdq-conformance"
    if not path.is_dir():
        skip_or_fail(f"{path} not found")
    return path


@pytest.fixture(scope="session")
def corpus_dir(shared_dir: Path) -> Path:
    path = shared_dir / "corpus"
    if not path.is_dir():
        skip_or_fail(f"{path} not found")
    return path
