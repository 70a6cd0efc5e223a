"""The raw-text check of JSON bounds never vouches for a body the full walk would refuse.

``plainly_within_bounds`` lets the API skip parsing and walking a body; that is sound only
if every body it passes is one :func:`contracts.bounds.first_problem` passes too (or is
not JSON at all). Hypothesis throws nested values with brackets, quotes, backslashes and
surrogate halves in their strings and keys at both.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.bounds import MAX_DEPTH, first_problem, plainly_within_bounds

_TRICKY = st.sampled_from(['"', "\\", "[", "]", "{", "}", "\ud800", "\udfff", "\U0001f600", "é"])
_TEXT = st.lists(st.one_of(_TRICKY, st.text(max_size=3)), max_size=6).map("".join)
_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), _TEXT)


def _nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


def _encodings(value: Any) -> list[bytes]:
    """The value as ASCII-escaped JSON, and as raw UTF-8 (surrogates as json.loads reads them)."""
    return [
        json.dumps(value).encode(),
        json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass"),
    ]


@settings(max_examples=400, deadline=None)
@given(
    st.recursive(
        _SCALARS,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(_TEXT, inner, max_size=3)
        ),
        max_leaves=12,
    ),
    st.integers(min_value=0, max_value=MAX_DEPTH + 3),
)
def test_what_the_raw_check_passes_the_walk_passes(value: Any, depth: int) -> None:
    for body in _encodings(_nested(depth, value)):
        if plainly_within_bounds(body):
            assert first_problem(json.loads(body)) is None, body


def test_depth_is_counted_to_the_bound_and_no_further() -> None:
    at_bound = json.dumps(_nested(MAX_DEPTH)).encode()
    over = json.dumps(_nested(MAX_DEPTH + 1)).encode()
    assert first_problem(json.loads(at_bound)) is None
    assert plainly_within_bounds(at_bound)
    assert first_problem(json.loads(over)) is not None
    assert not plainly_within_bounds(over)
    unclosed = b"[" * (MAX_DEPTH + 1)
    assert not plainly_within_bounds(unclosed)


def test_brackets_and_escaped_quotes_inside_strings_are_text() -> None:
    deep_looking = {"note": "[" * 100 + '\\"{{{' + "]" * 3, "k": ["{", "["]}
    for body in _encodings(deep_looking):
        assert plainly_within_bounds(body)


def test_a_lone_surrogate_is_never_vouched_for_escaped_or_raw() -> None:
    for body in _encodings({"decisions": [{"group": "a\ud800b"}]}):
        assert first_problem(json.loads(body)) is not None
        assert not plainly_within_bounds(body)


def test_a_batch_of_plain_records_is_vouched_for() -> None:
    """The common case the check exists for: no escapes, shallow nesting."""
    batch = {
        "decisions": [
            {"decision_id": f"d-{i}", "values": {"race": "x", "years": 3.5}, "decision": True}
            for i in range(1000)
        ]
    }
    assert plainly_within_bounds(json.dumps(batch).encode())


def test_text_not_in_utf8_is_left_to_the_walk() -> None:
    body = json.dumps({"a": [1, 2]}).encode("utf-16")
    assert not plainly_within_bounds(body)
