"""Deploying a registered version at its model's routing target, with the model's contract.

The registry is where a version was vouched for (its artifact's sha256 pinned, its
fallback rules' too), so a deployment sends exactly that: the version's artifact name
and digest, the manifest the gateway validates requests and keys its log by, and the
rules' text at the digest registered. The target and its credential come from the
operator's declarations, never from the caller.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, Field

from config.targets import ResolvedFlagFile, TargetResolver, UnknownTarget
from contracts.model import VersionName
from contracts.routing import RouteUpdate, Serving
from registry.service import ModelRegistry
from router.client import RouterClient, RouterError
from router.schemas import FallbackDocument
from store.artifacts import ArtifactError, ArtifactStore
from targets.flag_file import FlagFileTarget
from targets.protocol import TargetError


class DeployRequest(BaseModel):
    """``fairlane model deploy``: which registered version, and why."""

    version: VersionName
    reason: str = Field(min_length=1, max_length=2000)


class Deployed(BaseModel):
    model: str
    version: str
    target: str
    versions: dict[str, str]
    primary_version: str
    generation: int
    rules_version: str | None


@dataclass(frozen=True)
class DeployRefused(Exception):
    """A deployment that cannot happen: ``status`` (HTTP), ``loc`` of the field at fault."""

    status: int
    loc: tuple[str, ...]
    message: str

    def __str__(self) -> str:
        return self.message


def fallback_document(
    store: ArtifactStore, registry_rules: str, sha256: str | None
) -> FallbackDocument:
    """The registered rules' text, read at the digest the registry pinned."""
    if sha256 is None:
        raise DeployRefused(
            409,
            ("fallback", "sha256"),
            "the fallback rules have no recorded sha256; register "
            "the model again so the registry pins them",
        )
    try:
        content = store.read_pinned(registry_rules, sha256)
    except ArtifactError as error:
        raise DeployRefused(409, ("fallback", error.field), str(error)) from error
    return FallbackDocument(content=content.decode(), sha256=sha256)


async def deploy_registered(
    registry: ModelRegistry,
    store: ArtifactStore,
    targets: TargetResolver,
    model_id: str,
    request: DeployRequest,
) -> Deployed:
    """Add ``request.version`` to the model's deployment at its target (its first version
    becomes the primary), under the registered manifest and rules.

    Raises :class:`DeployRefused` naming what is wrong: an unregistered model or version
    (404), an undeclared target (422 on ``router.target``), a target that refuses (its
    status and reason), or one that cannot be reached (502).
    """
    manifest = registry.get(model_id)
    if manifest is None:
        raise DeployRefused(404, ("model",), f"model {model_id!r} is not registered")
    try:
        version = manifest.version(request.version)
    except KeyError:
        known = [v.version for v in manifest.versions]
        raise DeployRefused(
            404,
            ("body", "version"),
            f"model {model_id!r} has no registered version {request.version!r} (registered: "
            f"{known})",
        ) from None
    try:
        declared = targets.resolve_route_target(manifest.router.target, manifest.router.url)
    except UnknownTarget as error:
        raise DeployRefused(422, ("router", "target"), str(error)) from None
    if isinstance(declared, ResolvedFlagFile):
        return await _first_route(declared, model_id, version.version, version.artifact)
    target = declared
    fallback = (
        None
        if manifest.fallback is None
        else fallback_document(store, manifest.fallback.rules, manifest.fallback.sha256)
    )
    digests = {version.version: version.sha256} if version.sha256 else {}
    async with RouterClient(target.url, target.token or "") as client:
        try:
            try:
                current = await client.get_deployment(model_id)
                versions = {**current.versions, version.version: version.artifact}
                primary = current.primary_version
            except RouterError as error:
                if error.status_code != 404:
                    raise
                versions, primary = {version.version: version.artifact}, version.version
            deployment = await client.deploy(
                model_id, versions, primary, digests, manifest=manifest, fallback=fallback
            )
        except RouterError as error:
            status = error.status_code
            if status is None:
                raise DeployRefused(
                    502,
                    ("router", "target"),
                    f"routing target {target.id!r} could not be reached: {error.reason}",
                ) from error
            if status == 404:
                raise DeployRefused(
                    404,
                    ("router", "target"),
                    f"routing target {target.id!r} does not serve model {model_id!r} "
                    f"(it answered 404: {error.reason})",
                ) from error
            raise DeployRefused(
                status if 400 <= status < 500 else 502,
                ("router", "target"),
                f"routing target {target.id!r} refused the deployment ({status}): {error.reason}",
            ) from error
    return Deployed(
        model=model_id,
        version=version.version,
        target=target.id,
        versions=deployment.versions,
        primary_version=deployment.primary_version,
        generation=deployment.route.generation,
        rules_version=deployment.rules_version,
    )


async def _first_route(
    flag_file: ResolvedFlagFile, model_id: str, version: str, artifact: str
) -> Deployed:
    """At a flag file, deploying gives the model its route: a flag file holds routes, and
    the team's own service serves the versions the flag names. A model with no flag yet
    gets one, ``version`` serving as primary at generation 1; a flag already there is
    the route, and is left as it is (rollouts go through incidents and canaries)."""
    target = FlagFileTarget(flag_file)
    try:
        route = await target.read_route(model_id)
    except TargetError as error:
        if error.type != "RouteNotFound":
            raise DeployRefused(409, ("router", "target"), str(error)) from error
        first = RouteUpdate(
            serving=Serving.PRIMARY,
            primary_version=version,
            generation=1,
            updated_by="fairlane:deploy",
            reason=f"first route of {model_id}: {version} serving",
        )
        try:
            route = await target.set_route(model_id, first)
        except TargetError as refused:
            raise DeployRefused(409, ("router", "target"), str(refused)) from refused
    return Deployed(
        model=model_id,
        version=version,
        target=flag_file.id,
        versions={version: artifact},
        primary_version=route.primary_version,
        generation=route.generation,
        rules_version=None,
    )
