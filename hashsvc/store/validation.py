"""Checks on everything a caller hands the store, raising ValidationError / InvalidHashError with a reason.

Limits are deliberately modest: the store holds curated hash lists, not documents, and every field ends up in
API responses and the audit log.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from hashsvc.errors import InvalidHashError, ValidationError
from hashsvc.hashes.codec import ALGORITHMS, Algorithm, get_algorithm, parse_hex
from hashsvc.json_input import MAX_JSON_DEPTH
from hashsvc.store.records import HashInput, NewItem
from hashsvc.store.schema import ACTIONS, CATEGORIES, DISCLOSURES, SCOPES

BANK_NAME = re.compile(r"[a-z0-9]+(?:[-_][a-z0-9]+)*")
MAX_NAME = 64
MAX_REF = 255
MAX_ACTOR = 128
MAX_TEXT = 10_000
MAX_METADATA_BYTES = 16_384
MAX_HASHES_PER_ITEM = 64
MAX_VIDEO_HASHES = 10_002  # a video item: up to 10,000 distinct frame PDQs (nearly 3 h at 1 fps), MD5, SHA-256
# The largest threshold that still means "the same picture", per perceptual algorithm. Unrelated 256-bit PDQ
# codes are 128 +- 8 bits apart, so 63 is already 8 standard deviations closer than chance; unrelated 64-bit
# pHash/dHash codes are 32 +- 4 apart, and 16 is 4 standard deviations. Beyond these a bank would match (and
# block) unrelated uploads wholesale. Exact algorithms (md5, sha256) only take 0.
MAX_THRESHOLDS = {"pdq": 63, "phash": 16, "dhash": 16}
MAX_PDQ_QUALITY = 100


def storable(field: str, value: str) -> str:
    """`value` if both back ends can store it identically, else ValidationError naming `field`.

    NUL: PostgreSQL text cannot hold it (even in a WHERE clause), SQLite can. A lone surrogate (JSON "\\ud800")
    has no UTF-8 encoding, so neither back end can store it. Both are rejected here, before any SQL runs.
    """
    if "\x00" in value:
        raise ValidationError(f"{field} must not contain NUL (U+0000) characters")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValidationError(
                f"{field} must be valid Unicode text: character {exc.start} is a lone surrogate "
                f"(U+{ord(value[exc.start]):04X})"
            ) from None
    return value


def lookup(field: str, value: Any) -> str:
    """A name or reference used only to find a row: a string the store could hold, else ValidationError."""
    if not isinstance(value, str):
        raise ValidationError(f"{field} must be a string, got {type(value).__name__}")
    return storable(field, value)


def slug(field: str, name: Any) -> str:
    """A bank or key name: a lower-case slug, which also rules out NUL and surrogates."""
    if not isinstance(name, str) or not BANK_NAME.fullmatch(name) or len(name) > MAX_NAME:
        raise ValidationError(
            f"{field} must be a lower-case slug (a-z, 0-9, single '-' or '_' between them), "
            f"at most {MAX_NAME} characters; got {name!r:.80}"
        )
    return name


def bank_name(name: Any) -> str:
    return slug("bank name", name)


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
    return storable(field, value)


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
        result[algo.name] = _threshold(algo, limit)
    return result


def _threshold(algo: Algorithm, limit: Any) -> int:
    if not algo.perceptual:
        if type(limit) is not int or limit != 0:
            raise ValidationError(f"thresholds: {algo.name} is matched exactly, its threshold can only be 0")
        return limit
    bound = MAX_THRESHOLDS[algo.name]
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= bound:
        raise ValidationError(
            f"thresholds: {algo.name} must be an integer from 0 to {bound} (beyond {bound} bits of "
            f"{algo.bits}, unrelated images match), got {limit!r:.40}"
        )
    return limit


def pdq_quality(value: Any, field: str = "pdq.quality") -> int | None:
    """A PDQ quality a client reports with its hash: an integer 0..100 (quality below 50 downgrades a match)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_PDQ_QUALITY:
        raise ValidationError(f"{field} must be an integer from 0 to {MAX_PDQ_QUALITY}, got {value!r:.40}")
    return value


def metadata(value: Mapping[str, Any] | None) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationError("metadata must be a JSON object")
    _check_tree("metadata", value)
    try:
        encoded = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"metadata must be JSON-serializable: {exc}") from None
    if len(encoded) > MAX_METADATA_BYTES:
        raise ValidationError(f"metadata must be at most {MAX_METADATA_BYTES} bytes as JSON, got {len(encoded)}")
    return dict(value)


def _check_tree(field: str, value: Any) -> None:
    """Every key and string in a JSON-like tree storable, and the tree at most MAX_JSON_DEPTH deep (so that
    json.dumps cannot recurse into an error on a value built in Python rather than parsed)."""
    stack: list[tuple[str, Any, int]] = [(field, value, 1)]
    while stack:
        path, node, depth = stack.pop()
        if isinstance(node, str):
            storable(path, node)
            continue
        if not isinstance(node, Mapping | list | tuple):
            continue
        if depth > MAX_JSON_DEPTH:
            raise ValidationError(f"{field} is nested more than {MAX_JSON_DEPTH} levels deep")
        if isinstance(node, Mapping):
            for key, child in node.items():
                if isinstance(key, str):
                    storable(f"{path} key {key!r:.40}", key)
                stack.append((f"{path}[{key!r:.40}]", child, depth + 1))
        else:
            stack.extend((f"{path}[{n}]", child, depth + 1) for n, child in enumerate(node))


def scopes(value: Any) -> list[str]:
    if not isinstance(value, list | tuple | set | frozenset) or not value:
        raise ValidationError(f"scopes must be a non-empty list of {', '.join(SCOPES)}")
    return sorted({choice("scope", s, SCOPES) for s in value})


def new_item(
    new: NewItem,
) -> tuple[str | None, str | None, str | None, dict[str, Any], list[tuple[str, bytes, bool]]]:
    """An item's fields validated: (external_ref, source, note, metadata, [(algorithm, code, is_view)]). Raises
    ValidationError, InvalidHashError. A view hash equal to one of the item's own is kept once, as its own."""
    limit = MAX_VIDEO_HASHES if new.video else MAX_HASHES_PER_ITEM  # a video's distinct frame PDQs
    own = hashes(new.hashes, limit=limit)
    views = hashes(new.views) if new.views else []
    if len(own) + len(views) > limit:
        raise ValidationError(f"an item may have at most {limit} hashes, got {len(own) + len(views)}")
    known = set(own)
    return (
        text("reference", new.external_ref, max_length=MAX_REF),
        text("source", new.source, max_length=MAX_REF),
        text("note", new.note),
        metadata(new.metadata),
        [(name, code, False) for name, code in own]
        + [(name, code, True) for name, code in views if (name, code) not in known],
    )


MAX_KEY_LIFETIME = dt.timedelta(days=3650)


def key_expiry(value: Any) -> dt.datetime | None:
    """A key's end of life: None (never), a timezone-aware datetime, or ISO 8601 text (no offset = UTC)."""
    if value is None:
        return None
    if isinstance(value, str) and len(value) <= 40:
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValidationError("expires_at must be an ISO 8601 time such as 2027-01-31T00:00:00Z") from None
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        raise ValidationError("expires_at must be an ISO 8601 time such as 2027-01-31T00:00:00Z, or null")
    now = dt.datetime.now(dt.UTC)
    if not now < value <= now + MAX_KEY_LIFETIME:
        raise ValidationError("expires_at must be in the future and at most 10 years ahead")
    return value


def disclosure(value: Any) -> str:
    return choice("disclosure", value, DISCLOSURES)


MAX_KEY_RATE = 1_000_000.0  # per second; far beyond any process, so a typo cannot overflow the bucket maths
MAX_KEY_COUNT = 1_000_000  # burst and in-flight requests


def key_rate(value: Any) -> float | None:
    """A per-key rate limit in requests per second (None: the server's default); must be positive."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= MAX_KEY_RATE:
        raise ValidationError(f"rate_per_s must be a number above 0 and at most {MAX_KEY_RATE:g}, got {value!r:.80}")
    return float(value)


def key_count(field: str, value: Any) -> int | None:
    """A per-key burst or concurrency (None: the server's default); a positive integer."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_KEY_COUNT:
        raise ValidationError(f"{field} must be an integer from 1 to {MAX_KEY_COUNT}, got {value!r:.80}")
    return value


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes | bytearray)


# (hex digits, bytes) per algorithm, looked up once per hash on the bulk-import path.
_SIZES = {algo.name: (algo.hex_length, algo.nbytes) for algo in ALGORITHMS.values()}


def _code(algorithm: str, value: str | bytes) -> tuple[str, bytes]:
    sizes = _SIZES.get(algorithm) if type(algorithm) is str else None  # a list is unhashable
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


def hashes(value: HashInput, limit: int = MAX_HASHES_PER_ITEM) -> list[tuple[str, bytes]]:
    """Validate an item's hashes into [(algorithm, packed code)], dropping exact duplicates, keeping order."""
    result: list[tuple[str, bytes]] = []
    if isinstance(value, Mapping):
        for name, codes in value.items():
            if _is_list(codes):
                result.extend(_code(name, code) for code in codes)
            else:  # one code; a number, an object or null is rejected by _code with the algorithm's name
                result.append(_code(name, codes))
    elif not _is_list(value):
        raise ValidationError("hashes must be a list of (algorithm, hex) pairs or an {algorithm: hex} object")
    else:
        for pair in value:
            if not isinstance(pair, tuple | list) or len(pair) != 2:
                raise ValidationError("hashes must be a list of (algorithm, hex) pairs")
            result.append(_code(pair[0], pair[1]))
    if not result:
        raise ValidationError("an item needs at least one hash")
    if len(result) > limit:
        raise ValidationError(f"an item may have at most {limit} hashes, got {len(result)}")
    return list(dict.fromkeys(result)) if len(result) > 1 else result
