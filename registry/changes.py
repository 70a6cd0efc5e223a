"""What changed between two revisions of a manifest, as the trail records it.

A manifest decides where Fairlane flips a model's route and what it judges, so every
registration and every change is an audit record (``model.registered`` /
``model.changed``) with who, why, and each changed field's old and new value.
"""

from __future__ import annotations

from typing import Any

from contracts.model import ModelManifest

MODEL_REGISTERED = "model.registered"
MODEL_CHANGED = "model.changed"

FieldChange = dict[str, Any]


def manifest_diff(old: ModelManifest, new: ModelManifest) -> dict[str, FieldChange]:
    """``{"router.target": {"old": "gateway", "new": "prod"}, ...}``, one entry per field
    that differs; nested objects are walked, lists compared whole."""
    changes: dict[str, FieldChange] = {}
    _walk(old.model_dump(mode="json"), new.model_dump(mode="json"), "", changes)
    return changes


def _walk(old: Any, new: Any, path: str, changes: dict[str, FieldChange]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            _walk(old.get(key), new.get(key), f"{path}.{key}" if path else key, changes)
        return
    if old != new:
        changes[path or "manifest"] = {"old": old, "new": new}
