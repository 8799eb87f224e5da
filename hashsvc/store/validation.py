"""Checks on everything a caller hands the store, raising ValidationError / InvalidHashError with a reason.

Limits are deliberately modest: the store holds curated hash lists, not documents, and every field ends up in
API responses and the audit log.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from hashsvc.errors import InvalidHashError, ValidationError
from hashsvc.hashes.codec import ALGORITHMS, get_algorithm, parse_hex
from hashsvc.store.records import HashInput
from hashsvc.store.schema import ACTIONS, CATEGORIES, SCOPES

BANK_NAME = re.compile(r"[a-z0-9]+(?:[-_][a-z0-9]+)*")
MAX_NAME = 64
MAX_REF = 255
MAX_ACTOR = 128
MAX_TEXT = 10_000
MAX_METADATA_BYTES = 16_384
MAX_HASHES_PER_ITEM = 64


def bank_name(name: Any) -> str:
    if not isinstance(name, str) or not BANK_NAME.fullmatch(name) or len(name) > MAX_NAME:
        raise ValidationError(
            f"bank name must be a lower-case slug (a-z, 0-9, single '-' or '_' between them), "
            f"at most {MAX_NAME} characters; got {name!r:.80}"
        )
    return name


def choice(field: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValidationError(f"{field} must be one of {', '.join(allowed)}; got {value!r:.80}")
    return str(value)


def category(value: Any) -> str:
    return choice("category", value, CATEGORIES)


def action(value: Any) -> str:
    return choice("action", value, ACTIONS)


def text(field: str, value: Any, *, max_length: int = MAX_TEXT, required: bool = False) -> str | None:
    if value is None or (value == "" and not required):
        if required:
            raise ValidationError(f"{field} is required")
        return None if value is None else ""
    if not isinstance(value, str):
        raise ValidationError(f"{field} must be a string, got {type(value).__name__}")
    if required and not value.strip():
        raise ValidationError(f"{field} must not be blank")
    if len(value) > max_length:
        raise ValidationError(f"{field} must be at most {max_length} characters, got {len(value)}")
    return value


def actor_name(value: Any) -> str:
    result = text("actor", value, max_length=MAX_ACTOR, required=True)
    assert result is not None
    return result


def thresholds(value: Mapping[str, Any] | None) -> dict[str, int]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationError('thresholds must be an object such as {"pdq": 31}')
    result: dict[str, int] = {}
    for name, limit in value.items():
        try:
            algo = get_algorithm(name)
        except InvalidHashError as exc:
            raise ValidationError(f"thresholds: {exc.message}") from None
        if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= algo.bits:
            raise ValidationError(f"thresholds: {algo.name} must be an integer from 0 to {algo.bits}, got {limit!r}")
        if not algo.perceptual and limit != 0:
            raise ValidationError(f"thresholds: {algo.name} is matched exactly, its threshold can only be 0")
        result[algo.name] = limit
    return result


def metadata(value: Mapping[str, Any] | None) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationError("metadata must be a JSON object")
    try:
        encoded = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"metadata must be JSON-serializable: {exc}") from None
    if len(encoded) > MAX_METADATA_BYTES:
        raise ValidationError(f"metadata must be at most {MAX_METADATA_BYTES} bytes as JSON, got {len(encoded)}")
    return dict(value)


def scopes(value: Any) -> list[str]:
    if isinstance(value, str) or not value:
        raise ValidationError(f"scopes must be a non-empty list of {', '.join(SCOPES)}")
    return sorted({choice("scope", s, SCOPES) for s in value})


# (hex digits, bytes) per algorithm, looked up once per hash on the bulk-import path.
_SIZES = {algo.name: (algo.hex_length, algo.nbytes) for algo in ALGORITHMS.values()}


def _code(algorithm: str, value: str | bytes) -> tuple[str, bytes]:
    sizes = _SIZES.get(algorithm)
    if sizes is not None and type(value) is str and len(value) == sizes[0]:
        # Fast path for well-formed hex: exactly hex_length characters that decode to nbytes bytes cannot
        # contain whitespace or anything but hex digits (fromhex rejects the rest); anything else takes the
        # slow path below, which says precisely what is wrong.
        try:
            code = bytes.fromhex(value)
        except ValueError:
            code = b""
        if len(code) == sizes[1]:
            return algorithm, code
    algo = get_algorithm(algorithm)
    if isinstance(value, bytes | bytearray | memoryview):
        code = bytes(value)
        if len(code) != algo.nbytes:
            raise InvalidHashError(f"{algo.name} hash must be {algo.nbytes} bytes, got {len(code)}")
        return algo.name, code
    return algo.name, parse_hex(algo.name, value)


def hashes(value: HashInput) -> list[tuple[str, bytes]]:
    """Validate an item's hashes into [(algorithm, packed code)], dropping exact duplicates, keeping order."""
    result: list[tuple[str, bytes]] = []
    if isinstance(value, Mapping):
        for name, codes in value.items():
            if type(codes) is str or isinstance(codes, bytes | bytearray | memoryview):
                result.append(_code(name, codes))
            else:
                result.extend(_code(name, code) for code in codes)
    elif isinstance(value, str | bytes):
        raise ValidationError("hashes must be a list of (algorithm, hex) pairs or an {algorithm: hex} object")
    else:
        for pair in value:
            if not isinstance(pair, tuple | list) or len(pair) != 2:
                raise ValidationError("hashes must be a list of (algorithm, hex) pairs")
            result.append(_code(pair[0], pair[1]))
    if not result:
        raise ValidationError("an item needs at least one hash")
    if len(result) > MAX_HASHES_PER_ITEM:
        raise ValidationError(f"an item may have at most {MAX_HASHES_PER_ITEM} hashes, got {len(result)}")
    return list(dict.fromkeys(result)) if len(result) > 1 else result
