"""Exact Hamming range index (placeholder doc, replaced below)."""

from hashsvc.index.core import HammingIndex
from hashsvc.index.snapshot import SnapshotError

__all__ = ["HammingIndex", "SnapshotError"]
