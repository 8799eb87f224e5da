"""Reading console form fields into the plain values the service takes; bad input becomes ValidationError."""

from __future__ import annotations

from typing import Any

from flask import request

from hashsvc.errors import MediaError, ValidationError
from hashsvc.hashes import ALGORITHMS

THRESHOLD_ALGORITHMS = ("pdq", "phash", "dhash")


def text(name: str, default: str | None = None) -> str | None:
    value = request.values.get(name, "").strip()
    return value or default


def integer(name: str, low: int, high: int, default: int | None = None) -> int | None:
    raw = request.values.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ValidationError(f"'{name}' must be a whole number from {low} to {high}")
    return int(raw)


def thresholds() -> dict[str, int]:
    """The per-algorithm threshold fields that were filled in (empty: the algorithm's default)."""
    found = {}
    for name in THRESHOLD_ALGORITHMS:
        value = integer(f"threshold_{name}", 0, ALGORITHMS[name].bits)
        if value is not None:
            found[name] = value
    return found


def upload(name: str) -> bytes:
    """An uploaded file's bytes, read into memory only (never written anywhere)."""
    file = request.files.get(name)
    if file is None or not file.filename:
        raise ValidationError(f"choose a file for '{name}'")
    data = file.read()
    if not data:
        raise MediaError("empty", "the file is empty")
    return data


def fields(*names: str) -> dict[str, Any]:
    """The named text fields that were filled in."""
    return {name: value for name in names if (value := text(name)) is not None}
