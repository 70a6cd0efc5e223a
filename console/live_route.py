"""A model's route as its routing target reports it now, read with the API's own
declared targets (``Settings.target_resolver``): the credential only goes to the URL
operators declared with it, and a manifest names a target, never a URL."""

from __future__ import annotations

from pydantic import BaseModel

from config import Settings
from config.targets import UnknownTarget
from contracts.model import ModelManifest
from contracts.routing import Route
from router.client import RouterClient, RouterError

READ_TIMEOUT_S = 3.0


class LiveRoute(BaseModel):
    target: str
    route: Route | None = None
    problem: str | None = None


async def read_live_route(settings: Settings, manifest: ModelManifest) -> LiveRoute:
    ref = manifest.router
    name = ref.target or "(legacy url)"
    try:
        target = settings.target_resolver().resolve(ref.target, ref.url)
    except UnknownTarget as error:
        return LiveRoute(target=name, problem=str(error))
    try:
        async with RouterClient(target.url, target.token or "", timeout=READ_TIMEOUT_S) as client:
            return LiveRoute(target=target.id, route=await client.get_route(manifest.id))
    except (RouterError, OSError) as error:
        return LiveRoute(target=target.id, problem=f"the target did not answer: {error}")
