"""Reading JSON that someone else wrote: request bodies, bulk lines, import lines, CSV metadata cells.

`json.loads` alone is not safe on hostile input: it recurses once per nesting level, so a value nested ~1000
deep raises RecursionError (an HTTP 500) instead of a parse error; it accepts `NaN`, `Infinity` and `1e400`
(which becomes inf), none of which is JSON; and a 5,000-digit integer fails with a message about
`sys.set_int_max_str_digits`. `loads` turns every one of these into a ValidationError that says what is wrong.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from numba import njit

from hashsvc.errors import ValidationError

# Nothing hashsvc reads is nested more than a few levels (a batch of hash sets with a PDQ object is 4); item
# metadata gets room to spare. Both are far below the depth at which Python's parser recurses into an error.
MAX_JSON_DEPTH = 32
# Longest number literal accepted: 64-bit ids take 20 characters, a float with a full exponent about 25.
MAX_NUMBER_CHARS = 40


def loads(text: str | bytes, *, code: str = "invalid_request", what: str = "the body") -> Any:
    """Parse `text` as JSON, or raise ValidationError(code) naming `what` and the reason."""
    try:
        value = json.loads(text, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except RecursionError:
        raise ValidationError(_too_deep(what), code=code) from None
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise ValidationError(f"{what} is not valid JSON: {exc.msg} at {where}", code=code) from None
    except UnicodeDecodeError:
        raise ValidationError(f"{what} is not valid JSON: it is not UTF-8 text", code=code) from None
    except ValueError as exc:  # raised by the number hooks below
        raise ValidationError(f"{what} is not valid JSON: {exc}", code=code) from None
    if text_depth(text) > MAX_JSON_DEPTH:
        raise ValidationError(_too_deep(what), code=code)
    return value


def text_depth(text: str | bytes) -> int:
    """How deep the arrays/objects of valid JSON `text` nest (`nesting_depth` of its value), from its bytes.

    Walking the parsed value node by node cost ~8 ms per batch of 1,000 hash sets, several times the parse;
    one compiled pass over the bytes costs a small fraction of it. UTF-8 continuation bytes never look like
    ASCII brackets, quotes or backslashes, so the bytes can be scanned as they are.
    """
    if isinstance(text, str):
        data = text.encode("utf-8", "surrogatepass")
    else:
        encoding = json.detect_encoding(text)
        data = bytes(text) if encoding == "utf-8" else bytes(text).decode(encoding).encode("utf-8", "surrogatepass")
    return int(_bracket_depth(np.frombuffer(data, dtype=np.uint8), MAX_JSON_DEPTH))


@njit(cache=True, nogil=True)
def _bracket_depth(chars: np.ndarray, stop_above: int) -> int:
    """Deepest bracket nesting outside strings (stops counting once past `stop_above`)."""
    depth = 0
    deepest = 0
    in_string = False
    escaped = False
    for c in chars:
        if in_string:
            if escaped:
                escaped = False
            elif c == 92:  # backslash
                escaped = True
            elif c == 34:  # quote
                in_string = False
        elif c == 34:
            in_string = True
        elif c == 91 or c == 123:  # [ {
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > stop_above:
                    return deepest
        elif c == 93 or c == 125:  # ] }
            depth -= 1
    return deepest


def nesting_depth(value: Any) -> int:
    """How many arrays/objects deep `value` goes (a scalar is 0, `[]` is 1), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list | tuple):
            children = node
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        if deepest > MAX_JSON_DEPTH:
            return deepest  # enough to reject; no need to walk the rest of a huge value
        stack.extend((child, depth) for child in children)
    return deepest


def _too_deep(what: str) -> str:
    return f"{what} is nested more than {MAX_JSON_DEPTH} levels deep"


def _int(literal: str) -> int:
    if len(literal) > MAX_NUMBER_CHARS:
        raise ValueError(f"a number has more than {MAX_NUMBER_CHARS} digits")
    return int(literal)


def _float(literal: str) -> float:
    if len(literal) > MAX_NUMBER_CHARS:
        raise ValueError(f"a number has more than {MAX_NUMBER_CHARS} characters")
    value = float(literal)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"the number {literal} is out of range")
    return value


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")
