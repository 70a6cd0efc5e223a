"""A model's route as its routing target reports it now, read with the API's own
declared targets (``Settings.target_resolver``) through the same target clients the
routing activities use (``targets.open``): a credential only goes to the place
operators declared it for, and a manifest names a target, never a URL."""

from __future__ import annotations

from pydantic import BaseModel

from config import Settings
from config.targets import UnknownTarget
from contracts.model import ModelManifest
from contracts.routing import Route
from targets.open import open_target
from targets.protocol import TargetError

READ_TIMEOUT_S = 3.0


class LiveRoute(BaseModel):
    target: str
    route: Route | None = None
    problem: str | None = None


async def read_live_route(settings: Settings, manifest: ModelManifest) -> LiveRoute:
    ref = manifest.router
    name = ref.target or "(legacy url)"
    try:
        resolved = settings.target_resolver().resolve_route_target(ref.target, ref.url)
    except UnknownTarget as error:
        return LiveRoute(target=name, problem=str(error))
    try:
        async with open_target(resolved, timeout_s=READ_TIMEOUT_S) as target:
            return LiveRoute(target=resolved.id, route=await target.read_route(manifest.id))
    except (TargetError, OSError) as error:
        return LiveRoute(target=resolved.id, problem=f"the target did not answer: {error}")
