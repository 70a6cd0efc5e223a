"""Manifest parts keep the keys they do not know, so registration can refuse them by path."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

KeyPath = tuple[str | int, ...]


class ManifestPart(BaseModel):
    """A part of a manifest, which keeps any key it does not know instead of dropping it.

    A manifest names every key it uses: an unknown key (a typo, a key of another release)
    is refused *at registration* with its path (:meth:`unknown_keys`), rather than silently
    ignored. Decoding stays lenient, because manifests are also workflow input: recorded
    histories and running incidents carry keys older releases wrote, and must still read.
    """

    model_config = ConfigDict(extra="allow")

    def unknown_keys(self, at: KeyPath = ()) -> list[KeyPath]:
        """The path of every key, here or in a nested part, that the manifest format lacks."""
        found: list[KeyPath] = [(*at, key) for key in (self.model_extra or {})]
        for name in type(self).model_fields:
            found += _unknown_in(getattr(self, name), (*at, name))
        return found


def _unknown_in(value: object, at: KeyPath) -> list[KeyPath]:
    if isinstance(value, ManifestPart):
        return value.unknown_keys(at)
    if isinstance(value, list):
        return [path for i, item in enumerate(value) for path in _unknown_in(item, (*at, i))]
    if isinstance(value, dict):
        return [path for key, item in value.items() for path in _unknown_in(item, (*at, key))]
    return []
