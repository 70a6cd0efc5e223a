"""Names Fairlane will build paths from: slugs only, relative, never leading up or out.

Incident ids, version names, step names and artifact names arrive from callers (an
incident commander's manifest, a training pipeline's callback, a playbook). A name is
checked where it is accepted (a manifest's artifact, here in contracts) and again where
it becomes a path (:func:`store.paths.under`, which also resolves symlinks).
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

SLUG_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
"""A path component: letters, digits, ``.``, ``_``, ``-``; never starting with a dot."""
_SLUG = re.compile(SLUG_PATTERN)


class PathEscape(ValueError):
    """A name that is not a slug, or a path that would lead outside its root."""


def is_slug(value: str) -> bool:
    """One safe path component: no separator, no ``..``, no leading dot, at most 128 chars."""
    return bool(_SLUG.match(value)) and ".." not in value


def check_slug(value: str, what: str = "name") -> str:
    if not is_slug(value):
        raise PathEscape(
            f"{what} {value!r} must be a slug (letters, digits, '.', '_', '-'; "
            "not starting with '.', no '..')"
        )
    return value


def relative_parts(name: str, what: str = "name") -> tuple[str, ...]:
    """The components of a relative name like ``credit-limit/v1.skops``, each a slug."""
    if not name or name.startswith("/") or "\\" in name:
        raise PathEscape(f"{what} {name!r} must be a relative name, not a path")
    parts = PurePosixPath(name).parts
    if not parts or len(parts) > 8:
        raise PathEscape(f"{what} {name!r} must have between 1 and 8 parts")
    for part in parts:
        check_slug(part, what)
    return parts
