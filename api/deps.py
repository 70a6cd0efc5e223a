"""What the API's routes are given: typed ``Annotated`` dependencies, in one place.

``api/app.py`` puts the app's services on ``app.state`` once; this module reads them
back, so a route declares ``registry: RegistryDep`` instead of reading an untyped
attribute and annotating it by hand. Two readers stay where the thing is made:
``api/metrics.py`` (its own ``app.state.metrics``) and ``api/security.py`` (the token
store, behind authentication). The principal aliases here only name ``require`` calls
that several routes share; every route still declares its role check.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from sqlalchemy.engine import Engine
from temporalio.converter import PayloadCodec

from alerts.replay import ReplayCache
from api.security import READERS, require
from api.temporal import TemporalConnection
from api.tokens import Principal, Role
from audit import AuditTrail
from config import Settings
from incidents.decisions import DecisionSigner
from incidents.service import IncidentService
from incidents.training_callbacks import TrainingCallbacks
from registry.service import ModelRegistry

T = TypeVar("T")


def _on_app(name: str, kind: type[T]) -> Callable[[Request], Awaitable[T]]:
    """A dependency answering ``app.state.<name>``, which ``api/app.py`` set to a ``kind``.

    Async because it only reads an attribute: FastAPI runs a plain ``def`` dependency in
    its thread pool, and the alert webhook's four such hops took half its capacity
    (bench/alert_storm.py's rejected-webhook baseline: 448 requests/s with them, 810-990/s
    without; ``tests/test_api_thread_hops.py``). A dependency that blocks on I/O stays a
    ``def``.
    """

    async def read(request: Request) -> T:
        value: T = getattr(request.app.state, name)
        return value

    read.__name__ = f"app_{name}"
    return read


async def _payload_codec(request: Request) -> PayloadCodec | None:
    codec: PayloadCodec | None = request.app.state.payload_codec  # None: encryption off
    return codec


SettingsDep = Annotated[Settings, Depends(_on_app("settings", Settings))]
RegistryDep = Annotated[ModelRegistry, Depends(_on_app("registry", ModelRegistry))]
TrailDep = Annotated[AuditTrail, Depends(_on_app("trail", AuditTrail))]
TemporalDep = Annotated[TemporalConnection, Depends(_on_app("temporal", TemporalConnection))]
"""The connection, not the client: a route connects (``await temporal.client()``) only
once it has checked its input, so bad input is a 4xx even while Temporal is down."""
SignerDep = Annotated[DecisionSigner, Depends(_on_app("decision_signer", DecisionSigner))]
TrainingCallbacksDep = Annotated[
    TrainingCallbacks, Depends(_on_app("training_callbacks", TrainingCallbacks))
]
AlertReplaysDep = Annotated[ReplayCache, Depends(_on_app("alert_replays", ReplayCache))]
PayloadCodecDep = Annotated[PayloadCodec | None, Depends(_payload_codec)]
EngineDep = Annotated[Engine, Depends(_on_app("engine", Engine))]
"""Fairlane's own database, for routes that write tables of their own (reported decisions)."""


async def _incidents(
    settings: SettingsDep, temporal: TemporalDep, registry: RegistryDep, signer: SignerDep
) -> IncidentService:
    return IncidentService(
        temporal.client,
        settings.task_queue,
        registry,
        settings.playbooks_dir,
        lambda: signer.key,
        settings.channel_resolver(read_secrets=False),  # checks references; sends nothing
    )


IncidentsDep = Annotated[IncidentService, Depends(_incidents)]
"""Opens incidents (``incidents/service.py``), signed for with the API's decision key."""

Reader = Annotated[Principal, Depends(require(*READERS))]
"""Any role that may read incidents (auditors included: read-only routes only)."""
Commander = Annotated[Principal, Depends(require(Role.INCIDENT_COMMANDER, Role.ADMIN))]
AuditorOrAdmin = Annotated[Principal, Depends(require(Role.AUDITOR, Role.ADMIN))]
