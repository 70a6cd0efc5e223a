"""Deploying at a flagd flag file gives a model its first route, through the product.

A flag file holds routes, not deployments: the team's own service serves the versions
the flag names. So `fairlane model deploy` writes a model's first route (its version
serving as primary) when the flag is absent, and leaves a route that is there alone.
"""

from __future__ import annotations

import json
from pathlib import Path

from sqlmodel import SQLModel, create_engine

from config.targets import FlagdFileTarget, TargetResolver
from contracts.model import ModelManifest
from registry.deployment import DeployRequest, deploy_registered
from registry.service import ModelRegistry
from store.artifacts import ArtifactStore
from targets.flagd_flag import flag_key

FLAGS = "team-flags"


def manifest(model: str) -> ModelManifest:
    return ModelManifest.model_validate(
        {
            "id": model,
            "versions": [{"version": "v1", "artifact": f"{model}/v1.skops"}],
            "primary_version": "v1",
            "outcomes": {"decision": "hired"},
            "features": [{"name": "years", "type": "numeric"}],
            "protected_attributes": ["race"],
            "router": {"target": FLAGS},
        }
    )


async def test_the_first_deploy_writes_the_route_and_a_second_leaves_it(tmp_path: Path) -> None:
    flag_file = tmp_path / "flags.json"
    other = {
        "flags": {
            "team.other": {"state": "ENABLED", "variants": {"on": True}, "defaultVariant": "on"}
        }
    }
    flag_file.write_text(json.dumps(other))
    engine = create_engine("sqlite://")
    SQLModel.metadata.create_all(engine)
    registry = ModelRegistry(engine)
    registry.register(manifest("hiring"), "admin")
    targets = TargetResolver({FLAGS: FlagdFileTarget(kind="flagd-file", path=flag_file)})
    store = ArtifactStore(tmp_path / "artifacts")

    first = await deploy_registered(
        registry, store, targets, "hiring", DeployRequest(version="v1", reason="go live")
    )
    assert (first.target, first.primary_version, first.generation) == (FLAGS, "v1", 1)
    written = json.loads(flag_file.read_text())
    flag = written["flags"][flag_key("hiring")]
    assert flag["defaultVariant"] == "primary"
    assert written["flags"]["team.other"] == other["flags"]["team.other"]  # kept

    before = flag_file.read_bytes()
    again = await deploy_registered(
        registry, store, targets, "hiring", DeployRequest(version="v1", reason="again")
    )
    assert again.generation == 1
    assert flag_file.read_bytes() == before  # the route there is the route
