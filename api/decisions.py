"""Decisions and outcomes a team's service reports, for models whose source is ``ingest``.

``POST /v1/models/{id}/decisions`` takes a batch (at most ``decision_batch_max``),
checks every record against the model's manifest (its versions, the groups of each
protected attribute, the values its strata need, the outcomes it declares) and writes
the batch all or nothing through :func:`decisions.store.append`: a bad batch gets a
422 (or a 409 for a decision id already logged differently) naming the record's index
and field, and nothing is written. Resending a batch changes nothing.

The trail gets one event per batch (who reported how many, which were new, the batch
digest), not one per decision: at thousands of decisions a second, per-decision events
would outgrow the decisions themselves and serialise every report behind the trail's
hash chain, while the decisions are kept in full in the decision log. The event id is
the batch digest, so a batch resent after a lost answer is on the trail once.

Only ``decision_reporter`` principals may report: a machine role that can do nothing
else, so a service's token cannot open, steer or approve anything.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Annotated, Any, NoReturn, TypeVar

import structlog
from fastapi import APIRouter, Depends, HTTPException, Path, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy.engine import Engine
from sqlmodel import Session

from api.deps import EngineDep, RegistryDep, SettingsDep, TrailDep
from api.incidents import SLUG
from api.security import require
from api.tokens import Principal, Role
from audit.trail import AuditTrail
from config import Settings
from contracts.audit import AuditEvent
from contracts.model import ModelManifest
from contracts.watch import watch_workflow_id
from decisions.reports import BadRecord, DecisionBatch, OutcomeBatch, to_records
from decisions.store import (
    DecisionConflict,
    DecisionStoreError,
    OutcomeConflict,
    UnknownDecision,
    append,
    record_outcomes,
)
from registry.service import ModelRegistry

router = APIRouter(prefix="/v1/models", tags=["decisions"])
log = structlog.get_logger(__name__)

DECISIONS_REPORTED = "decisions.reported"
OUTCOMES_REPORTED = "outcomes.reported"

ModelId = Annotated[str, Path(pattern=SLUG)]
Reporter = Annotated[Principal, Depends(require(Role.DECISION_REPORTER))]
Batch = TypeVar("Batch", DecisionBatch, OutcomeBatch)


class DecisionsAccepted(BaseModel):
    decisions: int
    written: int
    already_logged: int


class Logged(DecisionsAccepted):
    """What the trail records of a batch besides the answer: the span of its decisions."""

    first_at: datetime = Field(exclude=True)
    last_at: datetime = Field(exclude=True)

    def trail_detail(self) -> dict[str, Any]:
        return {
            **self.model_dump(),
            "from": self.first_at.isoformat(),
            "to": self.last_at.isoformat(),
        }


class OutcomesAccepted(BaseModel):
    outcomes: int
    recorded: int
    already_recorded: int


def _ingesting(registry: ModelRegistry, model_id: str) -> ModelManifest:
    """The manifest of a registered model whose decisions are reported to Fairlane."""
    manifest = registry.get(model_id)
    if manifest is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"model {model_id!r} is not registered")
    if manifest.decisions.kind != "ingest":
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"model {model_id!r} reads its decisions from {manifest.decisions.kind!r} "
            "(manifest decisions.kind): reports are taken only for kind 'ingest', where "
            "the live analysis reads them",
        )
    return manifest


def _refuse(code: int, batch: str, error: BadRecord | DecisionStoreError) -> NoReturn:
    loc: list[Any] = ["body", batch, error.index, *error.field.split(".")]
    problem = {"loc": loc, "msg": f"{error.reason}; nothing was written", "type": "value_error"}
    raise HTTPException(code, [problem])


def _body(model: type[Batch], raw: bytes) -> Batch:
    """The batch, parsed straight from the raw JSON (pydantic's parser: about a third of
    the cost of decoding to Python objects first); 422 in FastAPI's shape otherwise."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as error:
        raise RequestValidationError(_in_body(error), body=None) from None


def _in_body(error: ValidationError) -> list[dict[str, Any]]:
    """Pydantic's errors located as FastAPI locates a body's (``["body", ...]``)."""
    located = []
    for found in error.errors(include_url=False):
        located.append({**found, "loc": ("body", *found["loc"])})
    return located


def _within_limit(settings: Settings, batch: str, size: int) -> None:
    if size > settings.decision_batch_max:
        problem = {
            "loc": ["body", batch],
            "msg": f"{size} {batch}: at most {settings.decision_batch_max} per batch "
            "(FAIRLANE_DECISION_BATCH_MAX)",
            "type": "too_long",
        }
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, [problem])


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    """The body's schema for the OpenAPI document (the route reads the raw body)."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }


@router.post(
    "/{model_id}/decisions",
    response_model=DecisionsAccepted,
    openapi_extra=_schema(DecisionBatch),
)
async def report_decisions(
    model_id: ModelId,
    request: Request,
    principal: Reporter,
    settings: SettingsDep,
    registry: RegistryDep,
    engine: EngineDep,
    trail: TrailDep,
) -> DecisionsAccepted:
    """Log a batch of the model's decisions, all or nothing, idempotent by decision id.

    The body is a ``DecisionBatch``: ``{"decisions": [...]}``, each decision with the
    values its manifest names (protected attributes, strata or their features)."""
    raw = await request.body()
    batch = _body(DecisionBatch, raw)
    _within_limit(settings, "decisions", len(batch.decisions))
    manifest = await run_in_threadpool(_ingesting, registry, model_id)
    max_ahead = timedelta(seconds=settings.reported_decision_max_ahead_s)
    accepted = await run_in_threadpool(_log_decisions, engine, manifest, batch, max_ahead)
    await run_in_threadpool(
        _record, trail, DECISIONS_REPORTED, model_id, principal, raw, accepted.trail_detail()
    )
    return accepted


def _log_decisions(
    engine: Engine, manifest: ModelManifest, batch: DecisionBatch, max_ahead: timedelta
) -> Logged:
    try:
        records = to_records(manifest, batch.decisions, max_ahead=max_ahead)
    except BadRecord as error:
        _refuse(status.HTTP_422_UNPROCESSABLE_CONTENT, "decisions", error)
    try:
        with Session(engine) as session:
            written = append(session, records)
    except DecisionConflict as error:
        _refuse(status.HTTP_409_CONFLICT, "decisions", error)
    return Logged(
        decisions=len(records),
        written=written,
        already_logged=len(records) - written,
        first_at=min(r.at for r in records),
        last_at=max(r.at for r in records),
    )


@router.post(
    "/{model_id}/outcomes", response_model=OutcomesAccepted, openapi_extra=_schema(OutcomeBatch)
)
async def report_outcomes(
    model_id: ModelId,
    request: Request,
    principal: Reporter,
    settings: SettingsDep,
    registry: RegistryDep,
    engine: EngineDep,
    trail: TrailDep,
) -> OutcomesAccepted:
    """Record the outcomes of logged decisions, all or nothing; an outcome is final.

    The body is an ``OutcomeBatch``: ``{"outcomes": [{"decision_id", "outcome"}, ...]}``."""
    raw = await request.body()
    batch = _body(OutcomeBatch, raw)
    _within_limit(settings, "outcomes", len(batch.outcomes))
    await run_in_threadpool(_ingesting, registry, model_id)
    accepted = await run_in_threadpool(_record_outcomes, engine, model_id, batch)
    await run_in_threadpool(
        _record, trail, OUTCOMES_REPORTED, model_id, principal, raw, accepted.model_dump()
    )
    return accepted


def _record_outcomes(engine: Engine, model_id: str, batch: OutcomeBatch) -> OutcomesAccepted:
    try:
        with Session(engine) as session:
            done = record_outcomes(session, model_id, batch.outcomes)
    except UnknownDecision as error:
        _refuse(status.HTTP_422_UNPROCESSABLE_CONTENT, "outcomes", error)
    except OutcomeConflict as error:
        _refuse(status.HTTP_409_CONFLICT, "outcomes", error)
    return OutcomesAccepted(
        outcomes=len(batch.outcomes), recorded=done.recorded, already_recorded=done.unchanged
    )


def _record(
    trail: AuditTrail,
    kind: str,
    model_id: str,
    principal: Principal,
    body: bytes,
    detail: dict[str, Any],
) -> None:
    """One event per accepted batch on the model's trail, keyed by the batch's digest."""
    digest = hashlib.sha256(principal.name.encode() + b"\n" + body).hexdigest()
    trail.append(
        AuditEvent(
            event_id=f"{kind}:{model_id}:{digest[:32]}",
            incident_id=watch_workflow_id(model_id),
            kind=kind,
            actor=principal.name,
            inputs_digest=f"sha256:{digest}",
            detail={
                "model": model_id,
                "roles": sorted(r.value for r in principal.roles),
                **detail,
            },
        )
    )
    log.info(kind, model=model_id, actor=principal.name, **detail)
