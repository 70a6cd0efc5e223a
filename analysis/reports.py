"""Reports as files: canonical JSON, named and referenced by the sha256 of their bytes."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from contracts.analysis import ReportRef
from store.paths import check_slug, under


def report_bytes(report: BaseModel) -> bytes:
    """Canonical: sorted keys, no whitespace variation, so equal reports hash equally."""
    data = report.model_dump(mode="json")
    return json.dumps(data, sort_keys=True, indent=1, ensure_ascii=False).encode()


def sha256_ref(content: bytes) -> str:
    return "sha256:" + hashlib.sha256(content).hexdigest()


def write_report(folder: Path, name: str, report: BaseModel) -> ReportRef:
    """Write atomically; the digest lets an auditor check the file was not changed since."""
    content = report_bytes(report)
    digest = sha256_ref(content)
    check_slug(name, "report name")  # a step name from a playbook: never a path
    path = under(folder, f"{name}-{digest[7:19]}.json")
    folder.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(content)
    os.replace(partial, path)
    return ReportRef(path=str(path), digest=digest)


def read_report(ref: ReportRef) -> dict[str, Any]:
    """Read a report back, refusing one whose bytes no longer match its digest."""
    content = Path(ref.path).read_bytes()
    if sha256_ref(content) != ref.digest:
        raise ValueError(f"report {ref.path} was altered: its digest is no longer {ref.digest}")
    data: dict[str, Any] = json.loads(content)
    return data
