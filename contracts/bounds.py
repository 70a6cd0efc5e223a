"""Bounds that data must keep to survive its round trips: nesting depth and encodable text.

Whatever Fairlane accepts is serialised again later: into its database, into Temporal
payloads, into JSON answers. Two kinds of input pass validation and break that much
later, far from where they came in:

* text that JSON can spell but UTF-8 cannot encode, a lone surrogate such as
  ``"\\ud800"``: every later encode of it fails;
* nesting deeper than a parser will read back (pydantic's JSON parser gives up at 200
  levels, Python's recursion near 1,000): it is written fine and never read again.

:func:`first_problem` finds the first of either anywhere in a value (parsed JSON, or
pydantic models holding free-form data), walking iteratively so that depth itself
cannot overflow the walk. :func:`plainly_within_bounds` answers the same question for
raw JSON text without parsing it, for the common case only: it says True only when the
text certainly keeps both bounds, so a caller walks the parsed value only when it says
False.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import BaseModel

MAX_DEPTH = 32
"""Containers (objects, arrays, models) nested in one another; far beyond any real
manifest, alert or decision, far below what any parser on the way refuses."""

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class BoundsProblem:
    """Where a value breaks a bound (``loc``, the path into it) and why."""

    loc: Loc
    msg: str
    type: str


def first_problem(value: object, max_depth: int = MAX_DEPTH) -> BoundsProblem | None:
    """The first place in ``value`` nested deeper than ``max_depth`` or holding
    unencodable text, in document order; ``None`` when it keeps both bounds."""
    stack: list[tuple[object, Loc]] = [(value, ())]
    while stack:
        node, loc = stack.pop()
        if isinstance(node, str):
            problem = _unencodable(node, loc)
            if problem is not None:
                return problem
            continue
        children = _children(node)
        if children is None:
            continue
        if len(loc) >= max_depth:
            return BoundsProblem(loc, f"nested more than {max_depth} levels deep", "too_deep")
        for key, child in reversed(children):
            if isinstance(key, str):
                problem = _unencodable(key, loc)
                if problem is not None:
                    return BoundsProblem(loc, f"a key: {problem.msg}", problem.type)
            stack.append((child, (*loc, key)))
    return None


def _children(node: object) -> list[tuple[str | int, object]] | None:
    """The entries of a container, or ``None`` for a scalar."""
    if isinstance(node, BaseModel):
        return [(name, getattr(node, name)) for name in type(node).model_fields]
    if isinstance(node, Mapping):
        return [(key if isinstance(key, str | int) else str(key), v) for key, v in node.items()]
    if isinstance(node, list | tuple | set | frozenset):
        return list(enumerate(node))
    return None


def _unencodable(text: str, loc: Loc) -> BoundsProblem | None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        char = text[error.start]
        return BoundsProblem(
            loc,
            f"text is not valid Unicode: it holds a lone surrogate (\\u{ord(char):04x}) that "
            "cannot be encoded, stored or sent",
            "string_unicode",
        )
    return None


_ESCAPED_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")
_ENCODED_SURROGATE = re.compile(rb"\xed[\xa0-\xbf]")  # what json.loads' surrogatepass reads
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = bytes(sorted(set(range(256)) - set(b"[]{}")))
_INNERMOST = re.compile(rb"\{\}|\[\]")


def plainly_within_bounds(body: bytes, max_depth: int = MAX_DEPTH) -> bool:
    """Whether the JSON text ``body`` certainly keeps both bounds, read without parsing it.

    Walking a parsed batch of a thousand decisions node by node costs more than
    validating and writing it; this reads the raw bytes at C speed instead. True means
    that :func:`first_problem` of the parsed value would find nothing (or the text is not
    JSON at all, which the reader refuses in its own words); False only means "not
    certain": an escape that may spell a surrogate half (a valid pair too), text not in
    UTF-8, or containers nested too deep or not closed. Then the caller parses and walks.

    Depth is read from the brackets left once every string is cut out: each pass removes
    the innermost empty containers, so a text that empties within ``max_depth`` passes
    nests at most ``max_depth`` containers deep.
    """
    if json.detect_encoding(body) != "utf-8":
        return False
    if b"\xed" in body and _ENCODED_SURROGATE.search(body):
        return False
    if b"\\" in body:
        if _ESCAPED_SURROGATE.search(body):
            return False
        outside_strings = _STRING.sub(b"", body)
    else:  # no escapes: every string runs from one quote to the next
        outside_strings = b"".join(body.split(b'"')[::2])
    brackets = outside_strings.translate(None, _NOT_BRACKET)
    for _ in range(max_depth):
        if not brackets:
            return True
        brackets = _INNERMOST.sub(b"", brackets)
    return not brackets
