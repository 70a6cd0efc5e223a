"""What a route change asks the router for, computed from what the router has now."""

from __future__ import annotations

from contracts.routing import Route, RouteSpec, RouteUpdate, Serving
from playbooks.steps import RouteStep


def desired_route(step: RouteStep, current: Route) -> RouteSpec:
    """The route a `route` step wants; the primary keeps scoring in shadow when it stops serving."""
    return _serving(current, step.serving, step.shadow_primary, step.canary_percent)


def contained_route(current: Route) -> RouteSpec:
    """Containment: the fallback answers live requests, the primary scores in shadow."""
    return _serving(current, Serving.FALLBACK, shadow_primary=True, canary_percent=0.0)


def _serving(
    current: Route, serving: Serving, shadow_primary: bool, canary_percent: float
) -> RouteSpec:
    shadows = set(current.shadow_versions)
    if shadow_primary and serving is not Serving.PRIMARY:
        shadows.add(current.primary_version)
    else:
        shadows.discard(current.primary_version)
    return RouteSpec(
        serving=serving,
        primary_version=current.primary_version,
        candidate_version=current.candidate_version,
        shadow_versions=sorted(shadows),
        canary_percent=canary_percent,
    )


def next_update(current: Route, spec: RouteSpec, updated_by: str, reason: str) -> RouteUpdate:
    """The update that creates the router's next generation (a retry resends the same one)."""
    return RouteUpdate(
        **spec.model_dump(), generation=current.generation + 1, updated_by=updated_by, reason=reason
    )
