"""The model registry over HTTP: register a manifest, list and read models.

A manifest is refused at registration (422 naming the field) unless it can always be
read back and sent to Temporal (``registry/limits.py``); a stored row that still cannot
be read is left out of the list, named in the ``X-Fairlane-Unreadable-Models`` header
and the log, and answers 409 on its own.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Annotated

import anyio
import anyio.from_thread
import structlog
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response, status
from pydantic import BaseModel
from temporalio.service import RPCError

from api.deps import Reader, RegistryDep, SettingsDep, TemporalDep, TrailDep
from api.errors import ServiceUnavailable
from api.incidents import SLUG
from api.security import require
from api.temporal import TemporalConnection
from api.tokens import Principal, Role
from audit.trail import AuditTrail
from config import Settings
from contracts.audit import AuditEvent
from contracts.model import ModelManifest
from contracts.watch import watch_workflow_id
from incidents.watch import WatchQueues, watch_manifest
from registry.changes import MODEL_CHANGED, MODEL_REGISTERED, FieldChange, manifest_diff
from registry.deployment import Deployed, DeployRefused, DeployRequest, deploy_registered
from registry.known_to_target import unknown_to_target
from registry.limits import ManifestRejected
from registry.service import ModelRegistry, RevisionConflict, UnreadableManifest

router = APIRouter(prefix="/v1/models", tags=["models"])
log = structlog.get_logger(__name__)
UNREADABLE_HEADER = "X-Fairlane-Unreadable-Models"
MODEL_DEPLOYED = "model.deployed"


class Registered(BaseModel):
    id: str
    revision: int


@router.post("", status_code=status.HTTP_201_CREATED, response_model=Registered)
def register_model(
    manifest: ModelManifest,
    settings: SettingsDep,
    registry: RegistryDep,
    trail: TrailDep,
    temporal: TemporalDep,
    principal: Annotated[Principal, Depends(require(Role.ADMIN, Role.INCIDENT_COMMANDER))],
    reason: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=2000,
            description="why an existing model's manifest changes (required then)",
        ),
    ] = None,
    allow_undeployed: Annotated[
        bool,
        Query(
            description="register although the routing target does not know the model yet "
            "(deploy it next: `fairlane model deploy`); recorded on the trail"
        ),
    ] = False,
) -> Registered:
    """Register a model, or change a registered one's manifest.

    The manifest names its router by a target operators declared
    (``FAIRLANE_ROUTING_TARGETS``), never by URL, so registering cannot send the router
    credential anywhere new. First registration is open to incident commanders and
    admins; changing a registered model (its target or any other field) is an admin's
    act and needs a ``reason``. Either is recorded on the model's trail with the diff.

    Every version's artifact must load and fit the manifest (``registry/fit.py``), and
    the routing target must know the model unless ``allow_undeployed``
    (``registry/deployment.py``): 422s naming the field. See docs/manifest.md.

    Every registration, a repeated one too, starts the model's watch or gives the running
    watch the manifest (:func:`incidents.watch.watch_manifest`).
    """
    _check_router(manifest, settings)
    revision_seen = registry.revision(manifest.id)
    try:
        manifest = registry.pinned(manifest)  # judged, recorded and stored as it will be kept
    except ManifestRejected as error:
        raise _rejected(error) from error
    changes = _changes(registry, manifest)
    if changes == {}:  # a retry after the watch could not be told tells it now
        _tell_watch(temporal, settings, manifest)
        return Registered(id=manifest.id, revision=revision_seen)
    if changes is not None:
        if not principal.holds(Role.ADMIN):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"{manifest.id!r} is registered: changing its manifest "
                f"({', '.join(sorted(changes))}) needs the admin role",
            )
        if not reason or not reason.strip():
            missing = {
                "loc": ["query", "reason"],
                "msg": "changing a registered model's manifest needs a reason",
                "type": "missing",
            }
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, [missing])
    if not allow_undeployed:
        _check_deployed(manifest, settings)
    try:
        revision = registry.register(manifest, principal.name, expected_revision=revision_seen)
    except RevisionConflict as error:
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from error
    except ManifestRejected as error:
        raise _rejected(error) from error
    _record(trail, manifest, principal, revision, changes, reason, allow_undeployed)
    _tell_watch(temporal, settings, manifest)
    return Registered(id=manifest.id, revision=revision)


WATCH_TELL_TIMEOUT_S = 10.0


def _tell_watch(temporal: TemporalConnection, settings: Settings, manifest: ModelManifest) -> None:
    """Start the model's watch, or give the running one this manifest.

    Registering needs no Temporal: if it cannot be reached, this is logged, a new model's
    watch starts with its first alert (from the registry, so with this manifest), and a
    running watch keeps the manifest it had until the model is registered again (the
    same manifest is enough: a repeated registration tells the watch too).
    """

    async def tell() -> None:
        with anyio.fail_after(WATCH_TELL_TIMEOUT_S):
            client = await temporal.client()
            await watch_manifest(client, WatchQueues.of(settings), manifest)

    try:
        anyio.from_thread.run(tell)
    except (ServiceUnavailable, RPCError, TimeoutError) as error:
        log.warning(
            "the model's watch was not told of its manifest; register it again once "
            "Temporal is back",
            model=manifest.id,
            error=str(error)[:500],
        )


def _check_deployed(manifest: ModelManifest, settings: Settings) -> None:
    """422 naming ``router.target`` when the routing target does not know the model."""
    why = anyio.from_thread.run(unknown_to_target, settings.target_resolver(), manifest)
    if why is not None:
        problem = {"loc": ["body", "router", "target"], "msg": why, "type": "not_deployed"}
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, [problem])


def _rejected(error: ManifestRejected) -> HTTPException:
    problem = {"loc": ["body", *error.loc], "msg": error.msg, "type": error.type}
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, [problem])


def _changes(registry: ModelRegistry, manifest: ModelManifest) -> dict[str, FieldChange] | None:
    """None for a model not registered yet; else what this manifest changes ({}: nothing)."""
    try:
        previous = registry.get(manifest.id)
    except UnreadableManifest as error:
        return {"manifest": {"old": f"unreadable: {error}", "new": "replaced"}}
    return None if previous is None else manifest_diff(previous, manifest)


def _check_router(manifest: ModelManifest, settings: Settings) -> None:
    """A manifest names a declared target, never a URL: 422 naming ``router.url`` or
    ``router.target`` otherwise."""
    router_ref = manifest.router
    declared = sorted(settings.declared_routing_targets)
    if router_ref.url is not None:
        problem = {
            "loc": ["body", "router", "url"],
            "msg": "a manifest names its routing target (router.target, one of "
            f"{declared}), never a URL: operators declare targets and their credentials",
            "type": "value_error",
        }
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, [problem])
    if router_ref.target not in declared:
        problem = {
            "loc": ["body", "router", "target"],
            "msg": f"routing target {router_ref.target!r} is not declared (declared: {declared})",
            "type": "value_error",
        }
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, [problem])


def _record(
    trail: AuditTrail,
    manifest: ModelManifest,
    principal: Principal,
    revision: int,
    changes: dict[str, FieldChange] | None,
    reason: str | None,
    undeployed: bool,
) -> None:
    """The registration or the change, on the model's own trail (its watch's records)."""
    kind = MODEL_REGISTERED if changes is None else MODEL_CHANGED
    trail.append(
        AuditEvent(
            event_id=f"model:{manifest.id}:revision:{revision}",
            incident_id=watch_workflow_id(manifest.id),
            kind=kind,
            actor=principal.name,
            detail={
                "model": manifest.id,
                "revision": revision,
                "roles": sorted(r.value for r in principal.roles),
                "reason": reason,
                "router_target": manifest.router.target,
                "registered_undeployed": undeployed,
                "changes": changes,
                "manifest_digest": _digest(manifest),
            },
        )
    )
    log.info("model manifest recorded", model=manifest.id, kind=kind, revision=revision)


def _digest(manifest: ModelManifest) -> str:
    return "sha256:" + hashlib.sha256(manifest.model_dump_json().encode()).hexdigest()


@router.get("", response_model=list[ModelManifest])
def list_models(registry: RegistryDep, response: Response, _: Reader) -> list[ModelManifest]:
    readable, unreadable = registry.manifests()
    if unreadable:
        for error in unreadable:
            log.error("unreadable stored manifest", model=error.model_id, error=str(error))
        response.headers[UNREADABLE_HEADER] = ",".join(e.model_id for e in unreadable)
    return readable


@router.get("/{model_id}", response_model=ModelManifest)
def show_model(
    model_id: Annotated[str, Path(pattern=SLUG)], registry: RegistryDep, _: Reader
) -> ModelManifest:
    manifest = registry.get(model_id)
    if manifest is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"model {model_id!r} is not registered")
    return manifest


@router.post("/{model_id}/deployments", response_model=Deployed)
async def deploy_model(
    model_id: Annotated[str, Path(pattern=SLUG)],
    body: DeployRequest,
    settings: SettingsDep,
    registry: RegistryDep,
    trail: TrailDep,
    principal: Annotated[Principal, Depends(require(Role.ADMIN, Role.INCIDENT_COMMANDER))],
) -> Deployed:
    """Deploy a registered version at the model's routing target, with its manifest contract
    and fallback rules from the registry; recorded on the model's trail with who and why."""
    try:
        deployed = await deploy_registered(
            registry,
            settings.artifact_store(),
            settings.target_resolver(),
            model_id,
            body,
        )
    except DeployRefused as error:
        detail = [{"loc": list(error.loc), "msg": error.message, "type": "deploy_refused"}]
        raise HTTPException(error.status, detail) from error
    trail.append(
        AuditEvent(
            event_id=f"model:{model_id}:deploy:{uuid.uuid4().hex}",  # each deploy is an act
            incident_id=watch_workflow_id(model_id),
            kind=MODEL_DEPLOYED,
            actor=principal.name,
            detail={
                "model": model_id,
                "version": deployed.version,
                "target": deployed.target,
                "versions": sorted(deployed.versions),
                "primary_version": deployed.primary_version,
                "rules_version": deployed.rules_version,
                "roles": sorted(r.value for r in principal.roles),
                "reason": body.reason,
            },
        )
    )
    log.info("model deployed", model=model_id, version=deployed.version, target=deployed.target)
    return deployed
