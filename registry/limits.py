"""What a manifest must keep to be registered: so that, once stored, it can always be read
back, listed, and sent to Temporal as part of an incident's input.

An incident's input is the manifest together with its playbook, and Temporal refuses a
payload over 2 MB (a gRPC message over 4 MB). A manifest of at most
:data:`MAX_MANIFEST_BYTES` serialised leaves ample room for any playbook and for the
candidate versions an incident adds; :data:`~contracts.bounds.MAX_DEPTH` keeps free-form
parts (a version's lineage parameters) readable by every JSON parser on the way.
"""

from __future__ import annotations

from contracts.bounds import Loc, first_problem
from contracts.model import ModelManifest

MAX_MANIFEST_BYTES = 256 * 1024


class ManifestRejected(ValueError):
    """A manifest that validates but could not be stored safely; ``loc`` names where."""

    def __init__(self, loc: Loc, msg: str, type_: str) -> None:
        self.loc = loc
        self.msg = msg
        self.type = type_
        where = ".".join(str(part) for part in loc) or "manifest"
        super().__init__(f"{where}: {msg}")


def storable_json(manifest: ModelManifest) -> str:
    """The manifest's JSON, once it is known to keep every bound; else ManifestRejected."""
    problem = first_problem(manifest)
    if problem is not None:
        raise ManifestRejected(problem.loc, problem.msg, problem.type)
    text = manifest.model_dump_json()
    size = len(text.encode())
    if size > MAX_MANIFEST_BYTES:
        raise ManifestRejected(
            (),
            f"the manifest is {size} bytes serialised; at most {MAX_MANIFEST_BYTES} are "
            "accepted, so that an incident's input stays far below Temporal's payload limit",
            "too_large",
        )
    return text
