"""What a `route` step asks the router for, computed from what the router has now."""

from __future__ import annotations

from contracts.routing import Route, RouteSpec, RouteUpdate, Serving
from playbooks.steps import RouteStep


def desired_route(step: RouteStep, current: Route) -> RouteSpec:
    """The route the step wants; the primary keeps scoring in shadow when it stops serving."""
    shadows = set(current.shadow_versions)
    if step.shadow_primary and step.serving is not Serving.PRIMARY:
        shadows.add(current.primary_version)
    else:
        shadows.discard(current.primary_version)
    return RouteSpec(
        serving=step.serving,
        primary_version=current.primary_version,
        candidate_version=current.candidate_version,
        shadow_versions=sorted(shadows),
        canary_percent=step.canary_percent,
    )


def next_update(current: Route, spec: RouteSpec, updated_by: str, reason: str) -> RouteUpdate:
    """The update that creates the router's next generation (a retry resends the same one)."""
    return RouteUpdate(
        **spec.model_dump(), generation=current.generation + 1, updated_by=updated_by, reason=reason
    )
