"""Routing targets: where Fairlane may flip a model's route, and with which credential.

Operators declare targets in :class:`config.Settings` (``FAIRLANE_ROUTING_TARGETS``);
a manifest only names one by id. The reason is the threat model: whoever registers a
manifest must not be able to make the worker send a router credential to a place they
chose. So a credential travels only with the URL it was declared with, and the URL a
request goes to is always the declared one, never one read from a manifest or an
activity input.

Histories recorded before targets existed carry a router *URL* (``router: {url: …}``,
``router_url`` in activity inputs). :meth:`TargetResolver.resolve` accepts such a URL
only when it is, exactly, the URL of a declared target, and then uses that target;
any other URL is refused before a connection is opened.

Two kinds of target exist. ``http`` (the default) is a routing layer that speaks the
HTTP route contract (docs/route-contract.md): the reference gateway or any other.
``flagd-file`` is an OpenFeature flag file in flagd's format that the team's flagd or
in-process providers read; Fairlane writes the model's route into it as one flag
(targets/flagd_flag.py). The file's path, like a URL, is the operator's alone: a
manifest or a request can only name the target's id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    SecretStr,
    Tag,
    field_validator,
    model_validator,
)

from contracts.targets import TARGET_ID

GATEWAY = "gateway"
"""The default target: Fairlane's own reference router (``router_url`` + ``router_token``)."""

_TARGET_ID = re.compile(TARGET_ID)


class RoutingTarget(BaseModel):
    """One operator-declared target: its base URL and the bearer credential for it.

    The credential is given inline (``token``, from a secret store through the
    environment) or as a file the worker reads (``token_file``), never both.
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["http"] = "http"
    url: str = Field(pattern=r"^https?://", description="base URL of the routing layer")
    token: SecretStr | None = None
    token_file: Path | None = None
    probes: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="model id -> a request body for POST /v1/models/{model}/decisions, sent "
        "once after each containment to see who really answers (it is a live decision, "
        "logged like any other)",
    )

    @model_validator(mode="after")
    def _one_credential(self) -> RoutingTarget:
        if self.token is not None and self.token_file is not None:
            raise ValueError("give `token` or `token_file`, not both")
        return self

    def credential(self) -> str | None:
        if self.token is not None:
            return self.token.get_secret_value()
        if self.token_file is not None:
            return self.token_file.read_text().strip()
        return None


class FlagdFileTarget(BaseModel):
    """An OpenFeature flag file in flagd's format, declared by an operator.

    Fairlane writes each model's route there as the flag ``fairlane.route.<model>``,
    keeping every other flag of the file as it is. The path is absolute so that what a
    worker writes never depends on its working directory.
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["flagd-file"]
    path: Path = Field(description="absolute path of the flagd JSON flag file")

    @field_validator("path")
    @classmethod
    def _absolute(cls, path: Path) -> Path:
        if not path.is_absolute():
            raise ValueError(f"the flag file path {str(path)!r} must be absolute")
        if path.suffix.lower() != ".json":
            raise ValueError(f"the flag file {str(path)!r} must be a .json file")
        return path


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("kind", "http"))
    return str(getattr(value, "kind", "http"))


DeclaredTarget = Annotated[
    Annotated[RoutingTarget, Tag("http")] | Annotated[FlagdFileTarget, Tag("flagd-file")],
    Discriminator(_kind),
]
"""A target as operators declare it; ``kind`` defaults to ``http``."""


def validate_target_ids(targets: dict[str, Any]) -> dict[str, Any]:
    for target_id in targets:
        if not _TARGET_ID.match(target_id):
            raise ValueError(f"routing target id {target_id!r} must be a lower-case slug")
    return targets


@dataclass(frozen=True)
class ResolvedTarget:
    """A declared target with its credential, as a worker uses it. Never logged whole."""

    id: str
    url: str
    token: str | None
    probes: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"ResolvedTarget(id={self.id!r}, url={self.url!r}, token=[redacted])"


@dataclass(frozen=True)
class ResolvedFlagFile:
    """A declared flagd flag file, as a worker writes it."""

    id: str
    path: Path


class UnknownTarget(LookupError):
    """A routing request that names no declared target (or a URL that is none's)."""


def _same_url(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


class TargetResolver:
    """The worker's declared targets: a target id (or a legacy URL) → url and credential."""

    def __init__(self, targets: dict[str, RoutingTarget | FlagdFileTarget]) -> None:
        self._targets = dict(targets)

    @classmethod
    def single(cls, url: str, token: str, target_id: str = GATEWAY) -> TargetResolver:
        """One declared target (benchmarks and tests that talk to one router)."""
        return cls({target_id: RoutingTarget(url=url, token=SecretStr(token))})

    @property
    def ids(self) -> list[str]:
        return sorted(self._targets)

    def resolve(self, target: str | None, legacy_url: str | None = None) -> ResolvedTarget:
        """The declared HTTP target named by ``target``, or the one declared at ``legacy_url``.

        For what only an HTTP routing layer offers (its decision log, deployments).
        Raises :class:`UnknownTarget` naming what was asked for (never a credential),
        also when ``target`` is declared but is a flag file."""
        resolved = self.resolve_route_target(target, legacy_url)
        if isinstance(resolved, ResolvedFlagFile):
            raise UnknownTarget(
                f"routing target {resolved.id!r} is a flagd flag file, not an HTTP routing "
                "layer: it holds routes only (no decision log, no deployments)"
            )
        return resolved

    def resolve_route_target(
        self, target: str | None, legacy_url: str | None = None
    ) -> ResolvedTarget | ResolvedFlagFile:
        """The declared target of any kind named by ``target`` (or, for an HTTP target,
        declared at ``legacy_url``): where a model's route is read and set.

        Raises :class:`UnknownTarget` naming what was asked for (never a credential)."""
        if target is not None:
            declared = self._targets.get(target)
            if declared is None:
                raise UnknownTarget(
                    f"routing target {target!r} is not declared on this worker "
                    f"(declared: {', '.join(self.ids) or 'none'})"
                )
            if isinstance(declared, FlagdFileTarget):
                if legacy_url is not None:
                    raise UnknownTarget(
                        f"router URL {legacy_url!r} is not the URL declared for target {target!r}"
                    )
                return ResolvedFlagFile(id=target, path=declared.path)
            if legacy_url is not None and not _same_url(legacy_url, declared.url):
                raise UnknownTarget(
                    f"router URL {legacy_url!r} is not the URL declared for target {target!r}"
                )
            return self._resolved(target, declared)
        if legacy_url is not None:
            for target_id, declared in sorted(self._targets.items()):
                if isinstance(declared, RoutingTarget) and _same_url(legacy_url, declared.url):
                    return self._resolved(target_id, declared)
            raise UnknownTarget(
                f"router URL {legacy_url!r} is not the URL of any declared routing target: "
                "nothing was sent to it (name a target declared in FAIRLANE_ROUTING_TARGETS)"
            )
        raise UnknownTarget("the request names neither a routing target nor a router URL")

    @staticmethod
    def _resolved(target_id: str, declared: RoutingTarget) -> ResolvedTarget:
        try:
            token = declared.credential()
        except OSError as error:
            raise UnknownTarget(
                f"the credential file of routing target {target_id!r} cannot be read: "
                f"{error.strerror}"
            ) from None
        return ResolvedTarget(id=target_id, url=declared.url, token=token, probes=declared.probes)
