"""Where a candidate came from, as the registry records it (:class:`contracts.model.Lineage`).

Enough to retrain it and to audit why it exists: the parent version, the strategy and
its parameters, digests of the data it was trained and chosen on, and the code version.
The candidate's version name is derived from the lineage, so a retried activity names
the same version.
"""

from __future__ import annotations

import hashlib
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import pandas as pd

from analysis.remediation.evaluation import TradeOffPoint
from analysis.remediation.setting import Setting
from contracts.model import Lineage


def lineage_of(
    setting: Setting, chosen: TradeOffPoint, parent_version: str | None, incident_id: str | None
) -> Lineage:
    parent = setting.parent
    return Lineage(
        parent=parent_version or parent.version or parent.source,
        strategy=chosen.name,
        parameters=dict(chosen.parameters),
        data_digests={
            "training": data_digest(setting.train),
            "validation": data_digest(setting.validation),
        },
        code_version=code_version(),
        incident_id=incident_id,
    )


def version_name(setting: Setting, chosen: TradeOffPoint, lineage: Lineage) -> str:
    """Parent, strategy and a digest of the lineage: a retried activity names the same version."""
    digest = hashlib.sha256(lineage.model_dump_json().encode()).hexdigest()
    return f"{setting.parent.version or 'model'}-{chosen.strategy}-{digest[:8]}"


def data_digest(frame: pd.DataFrame) -> str:
    """sha256 over the column names and every row's content hash, in order."""
    hasher = hashlib.sha256("\x1f".join(map(str, frame.columns)).encode())
    hasher.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return hasher.hexdigest()


@lru_cache(maxsize=1)
def code_version() -> str:
    """``git describe`` of the code that trained a candidate, else the installed package version.

    Asked once per process: the code a worker runs does not change under it.
    """
    try:
        described = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        return f"git {described}"
    except (OSError, subprocess.SubprocessError):
        try:
            return f"fairlane {metadata.version('fairlane')}"
        except metadata.PackageNotFoundError:
            return "unknown"
