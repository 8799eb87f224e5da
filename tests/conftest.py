"""Shared fixtures, and which tests run alone.

Tests that need `../shared` (Meta's PDQ vectors, the benchmark corpus) or a PostgreSQL server skip when those
are absent, as on a user's laptop. `.ci/run` sets HASHSVC_STRICT=1, which turns those skips into failures so
that CI can never pass by silently skipping.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from availability import SHARED_DIR, skip_or_fail

pytest_plugins = ["store_fixtures", "api_fixtures"]

# `make test` runs the suite on four processes (pytest-xdist), then these alone: each asserts a wall-clock bound
# (a deadline kept, a change seen on another replica within a second, a lease taken over, a fair share of a
# saturated server) that other test processes competing for the two cores would make flaky, not wrong.
SERIAL_MODULES = {
    "test_after_match_replicas.py",
    "test_exchanges_processes.py",
    "test_fair_sharing.py",
    "test_front.py",
    "test_media_cost.py",
    "test_media_hostile.py",
    "test_replicas.py",
    "test_sandbox.py",
    "test_server_slow_clients.py",
    "test_video_hostile.py",
}
SERIAL_TESTS = {"test_overload_is_answered_with_503_and_retry_after"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in SERIAL_MODULES or item.originalname in SERIAL_TESTS:  # type: ignore[attr-defined]
            item.add_marker(pytest.mark.serial)


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
