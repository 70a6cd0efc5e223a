"""Paths Fairlane builds from names it was given: slugs only, and always under a root.

Incident ids, version names, step names and artifact names arrive from callers (an
incident commander's manifest, a training pipeline's callback, a playbook). Joined
into a path unchecked, ``../../../x`` or ``/etc/x`` writes or reads wherever its
author chose. Every path Fairlane writes or loads from such names is built by
:func:`under`: each part must be a slug, and the resolved result (symlinks followed)
must still lie inside the resolved root, so neither ``..`` nor a symlink planted in
the data directory can lead out of it.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

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


def under(root: Path, *parts: str) -> Path:
    """``root/part/...``, each part a slug (or a relative name of slugs), kept inside ``root``.

    The result is resolved (symlinks followed, as far as they exist) and must lie under
    the resolved root; otherwise :class:`PathEscape`. Directories are not created.
    """
    base = root.resolve()
    components: list[str] = []
    for part in parts:
        components.extend(relative_parts(part))
    path = base.joinpath(*components).resolve()
    if not path.is_relative_to(base):
        raise PathEscape(f"{'/'.join(components)!r} leads outside {base}")
    return path
