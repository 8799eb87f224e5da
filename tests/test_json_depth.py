"""The JSON reader's depth check counts brackets in the text: it must agree with the parsed value's depth."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hashsvc.errors import ValidationError
from hashsvc.json_input import MAX_JSON_DEPTH, loads, nesting_depth, text_depth

# Strings full of the characters a bracket counter could trip on: brackets, quotes, backslashes, non-ASCII.
tricky_text = st.text(alphabet=st.sampled_from(list('[]{}"\\\\ aé€😀\n\t')), max_size=12)
values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | tricky_text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(tricky_text, children, max_size=4),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None)
@given(value=values, ascii_only=st.booleans(), encoding=st.sampled_from(["str", "utf-8", "utf-16", "utf-32"]))
def test_text_depth_equals_the_parsed_values_depth(value: Any, ascii_only: bool, encoding: str) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)
    raw: str | bytes = text if encoding == "str" else text.encode(encoding)
    assert text_depth(raw) == nesting_depth(value)


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ('"[[[["', 0),
        ('["\\\\"]', 1),  # an escaped backslash does not escape the closing quote
        ('["\\"[[["]', 1),  # an escaped quote does not end the string
        ('{"a": [{"b": "]]]}"}]}', 3),
        ("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH, MAX_JSON_DEPTH),
    ],
)
def test_brackets_inside_strings_do_not_count(text: str, depth: int) -> None:
    assert text_depth(text) == depth
    assert nesting_depth(json.loads(text)) == depth


def test_one_level_too_deep_is_refused_and_the_limit_itself_is_not() -> None:
    assert loads("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH) is not None
    with pytest.raises(ValidationError, match="nested more than"):
        loads("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1))
    with pytest.raises(ValidationError, match="nested more than"):
        loads(json.dumps({"items": [nested(MAX_JSON_DEPTH)]}))


def nested(levels: int) -> Any:
    value: Any = []
    for _ in range(levels - 1):
        value = [value]
    return value
