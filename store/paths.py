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

from pathlib import Path

# The name checks are contracts (a manifest is checked where it is accepted); the paths, here.
from contracts.names import (
    SLUG_PATTERN,
    PathEscape,
    check_slug,
    is_slug,
    relative_parts,
)

__all__ = ["SLUG_PATTERN", "PathEscape", "check_slug", "is_slug", "relative_parts", "under"]


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
