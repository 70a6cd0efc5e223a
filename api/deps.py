"""What the API's routes are given: typed ``Annotated`` dependencies, in one place.

``api/app.py`` puts the app's services on ``app.state`` once; this module reads them
back, so a route declares ``registry: RegistryDep`` instead of reading an untyped
attribute and annotating it by hand. Two readers stay where the thing is made:
``api/metrics.py`` (its own ``app.state.metrics``) and ``api/security.py`` (the token
store, behind authentication). The principal aliases here only name ``require`` calls
that several routes share; every route still declares its role check.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
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


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _registry(request: Request) -> ModelRegistry:
    registry: ModelRegistry = request.app.state.registry
    return registry


def _trail(request: Request) -> AuditTrail:
    trail: AuditTrail = request.app.state.trail
    return trail


def _temporal(request: Request) -> TemporalConnection:
    connection: TemporalConnection = request.app.state.temporal
    return connection


def _signer(request: Request) -> DecisionSigner:
    signer: DecisionSigner = request.app.state.decision_signer
    return signer


def _training_callbacks(request: Request) -> TrainingCallbacks:
    callbacks: TrainingCallbacks = request.app.state.training_callbacks
    return callbacks


def _alert_replays(request: Request) -> ReplayCache:
    replays: ReplayCache = request.app.state.alert_replays
    return replays


def _payload_codec(request: Request) -> PayloadCodec | None:
    codec: PayloadCodec | None = request.app.state.payload_codec
    return codec


SettingsDep = Annotated[Settings, Depends(_settings)]
RegistryDep = Annotated[ModelRegistry, Depends(_registry)]
TrailDep = Annotated[AuditTrail, Depends(_trail)]
TemporalDep = Annotated[TemporalConnection, Depends(_temporal)]
"""The connection, not the client: a route connects (``await temporal.client()``) only
once it has checked its input, so bad input is a 4xx even while Temporal is down."""
SignerDep = Annotated[DecisionSigner, Depends(_signer)]
TrainingCallbacksDep = Annotated[TrainingCallbacks, Depends(_training_callbacks)]
AlertReplaysDep = Annotated[ReplayCache, Depends(_alert_replays)]
PayloadCodecDep = Annotated[PayloadCodec | None, Depends(_payload_codec)]


def _incidents(
    settings: SettingsDep, temporal: TemporalDep, registry: RegistryDep, signer: SignerDep
) -> IncidentService:
    return IncidentService(
        temporal.client, settings.task_queue, registry, settings.playbooks_dir, lambda: signer.key
    )


IncidentsDep = Annotated[IncidentService, Depends(_incidents)]
"""Opens incidents (``incidents/service.py``), signed for with the API's decision key."""

Reader = Annotated[Principal, Depends(require(*READERS))]
"""Any role that may read incidents (auditors included: read-only routes only)."""
Commander = Annotated[Principal, Depends(require(Role.INCIDENT_COMMANDER, Role.ADMIN))]
AuditorOrAdmin = Annotated[Principal, Depends(require(Role.AUDITOR, Role.ADMIN))]
