"""Canonical hashing: the one way Fairlane turns values into digests and chains records.

Every digest in the trail (activity inputs and outputs, record hashes) goes through
``canonical_json`` so the same value always yields the same bytes, whichever process,
database or Python version produced it: keys sorted, no whitespace, datetimes in UTC.
An auditor holding an export can recompute every hash with these three functions alone.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from pydantic_core import to_jsonable_python

GENESIS_HASH = "0" * 64
"""The ``prev_hash`` of record 1: there is nothing before it to chain to."""


def canonical_json(obj: Any) -> str:
    """Serialise ``obj`` deterministically: sorted keys, no whitespace, UTC datetimes.

    Pydantic models are dumped field by field (so their datetimes are normalised too);
    anything else pydantic can serialise (dataclasses, enums, UUIDs, bytes...) falls back
    to pydantic's own JSON-able form.
    """
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_jsonable
    )


def digest(obj: Any) -> str:
    """``"sha256:<hex>"`` of the canonical JSON of ``obj`` (a JSON-able value or model)."""
    return "sha256:" + _sha256(canonical_json(obj))


def record_hash(prev_hash: str, fields: Mapping[str, Any]) -> str:
    """Hex SHA-256 chaining one record to the one before it.

    ``fields`` are every stored column of the record except ``hash`` and ``prev_hash``;
    ``prev_hash`` is folded in under its own key, so changing any column, or moving the
    record to another place in the chain, changes the hash.
    """
    return _sha256(canonical_json({**fields, "prev_hash": prev_hash}))


def as_utc(moment: datetime) -> datetime:
    """The same instant in UTC; a naive datetime is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def utc_iso(moment: datetime) -> str:
    """ISO 8601 in UTC, always with microseconds, so equal instants print identically."""
    return as_utc(moment).isoformat(timespec="microseconds")


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, datetime):
        return utc_iso(obj)
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="python")
    return to_jsonable_python(obj)
