"""Registration's check that the model's routing target knows the model.

A model registered but never deployed would open its first incident on a 404 from its
router, at the worst moment. So registration asks the declared target for the model's
route (``GET /v1/models/{id}/route``, the documented route contract every target
implements) and refuses, naming ``router.target``, when the target does not know it.

Deploying a version needs its registration (``fairlane model deploy`` deploys a
registered version), so a new model is registered with ``allow_undeployed`` (CLI:
``--allow-undeployed``), then deployed; the registration records that it was.
"""

from __future__ import annotations

from config.targets import TargetResolver, UnknownTarget
from contracts.model import ModelManifest
from targets.open import open_target
from targets.protocol import TargetError

TIMEOUT_S = 5.0
NOT_THERE = frozenset({"RouterRefused404", "RouteNotFound"})
"""What a target of either kind answers for a model it does not know."""


async def unknown_to_target(resolver: TargetResolver, manifest: ModelManifest) -> str | None:
    """None when the model's routing target answers for it; else why not, in words.

    Asked through the same target interface the routing activities use, so a gateway
    and a flagd flag file are checked alike (a flag file knows a model once its flag
    has been written).
    """
    model = manifest.id
    try:
        resolved = resolver.resolve_route_target(manifest.router.target, manifest.router.url)
    except UnknownTarget as error:
        return str(error)
    try:
        async with open_target(resolved, TIMEOUT_S) as target:
            await target.read_route(model)
    except TargetError as error:
        if error.type in NOT_THERE:
            return (
                f"routing target {resolved.id!r} does not know model {model!r}: it is not "
                f"deployed there. Register it with allow_undeployed=true (CLI: "
                f"--allow-undeployed), then deploy it with `fairlane model deploy {model}`"
            )
        return (
            f"routing target {resolved.id!r} could not confirm it knows model {model!r} "
            f"({error}); register with allow_undeployed=true to skip this check"
        )
    return None
