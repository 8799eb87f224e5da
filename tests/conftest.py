"""Shared fixtures.

Tests that need `../shared` (Meta's PDQ vectors, the benchmark corpus) or a PostgreSQL server skip when those
are absent, as on a user's laptop. `.ci/run` sets HASHSVC_STRICT=1, which turns those skips into failures so
that CI can never pass by silently skipping.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from availability import SHARED_DIR, skip_or_fail

pytest_plugins = ["store_fixtures", "api_fixtures"]


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
