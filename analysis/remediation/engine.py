"""Remediation (step I): try each strategy, record its trade-off, keep and save the best candidate.

Each strategy trains a candidate from the parent model's own recipe
(:mod:`~analysis.remediation.recipes`), it is measured on the validation data beside the
parent (:mod:`~analysis.remediation.evaluation`), and the best candidate that keeps
accuracy within the bound is kept (playbooks list strategies simplest first, and among
statistically equal candidates the first wins). It is saved as a generic artifact
(:func:`analysis.scoring.save_artifact`) with its lineage
(:mod:`~analysis.remediation.lineage`). Nothing here names a column: the roles come
from the model's manifest (:class:`analysis.columns.ModelColumns`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, Field
from threadpoolctl import threadpool_limits

from analysis.columns import ModelColumns
from analysis.models import LoadedArtifact, open_model_file
from analysis.remediation.builders import build
from analysis.remediation.evaluation import TradeOffPoint, choose, evaluate, headline
from analysis.remediation.lineage import lineage_of, version_name
from analysis.remediation.setting import (
    Setting,
    StrategyNotApplicable,
    Targets,
    parent_candidate,
)
from analysis.remediation.strategies import StrategySpec, from_playbook, named
from analysis.scoring import save_artifact
from contracts.model import Lineage
from playbooks.steps import RemediationStrategy
from store.artifacts import ArtifactStore

Progress = Callable[[str], object]


class RemediationResult(BaseModel):
    """What was tried, what each cost, and the candidate chosen (if any could be)."""

    parent_version: str | None
    points: list[TradeOffPoint]  # the parent first, then the strategies in playbook order
    not_applicable: dict[str, str]  # strategy -> why it could not apply to this model
    chosen: TradeOffPoint | None
    candidate_version: str | None
    lineage: Lineage | None
    artifact: str | None  # its name in the artifacts directory
    artifact_sha256: str | None
    max_accuracy_loss: float
    min_disparate_impact: float
    max_amount_disparity: float
    selection: str
    headline: str
    # The candidate artifact itself (scikit-learn objects): for the caller, never serialized.
    candidate_artifact: dict[str, Any] | None = Field(default=None, exclude=True, repr=False)


def remediate(
    train: pd.DataFrame,
    validation: pd.DataFrame,
    parent: LoadedArtifact | str | Path,
    *,
    columns: ModelColumns,
    confirmed_proxies: list[str],
    suspected_proxies: list[str],
    strategies: Sequence[StrategySpec | RemediationStrategy],
    seed: int = 0,
    max_accuracy_loss: float = 0.02,
    min_disparate_impact: float = 0.8,
    max_amount_disparity: float = 0.015,
    min_stratum_rows: int = 30,
    version: str | None = None,
    store: ArtifactStore | None = None,
    output: tuple[str, ...] | None = None,
    incident_id: str | None = None,
    parent_version: str | None = None,
    threads: int | None = 1,
    progress: Progress | None = None,
) -> RemediationResult:
    """Try every strategy, record the trade-offs, keep the best candidate and save it to ``output``.

    ``strategies`` are the engine's specs or a playbook's strategies as they are
    (:func:`~analysis.remediation.strategies.from_playbook` reads those). ``output`` is
    the candidate's name in ``store`` as slugs (model id, file name): it is written there
    as skops, so nothing outside the artifacts directory is ever written. The lineage
    names the parent by ``parent_version`` (its name in the registry; default: the
    version the artifact records) and the ``incident_id`` it was made for.

    The parent may make a decision, set an amount, or both; the candidate does the same.
    Among deployable candidates within ``max_accuracy_loss`` (absolute: 0.02 is two
    points) of the parent, one meeting the fairness targets (``min_disparate_impact`` for
    decisions, ``max_amount_disparity`` for amounts) is chosen: the first in
    ``strategies`` order whose accuracy is statistically as good as the best such one (so
    list strategies simplest first). Failing that, the fairest within the bound; failing
    that, the fairest at all; ``selection`` says which rule applied. ``threads`` caps
    OpenMP threads while training (see :func:`analysis.attribution.attribution_audit`).
    """
    if not 0.0 < min_disparate_impact < 1.0 or max_amount_disparity <= 0 or max_accuracy_loss < 0:
        raise ValueError(
            "min_disparate_impact must be in (0, 1), max_amount_disparity positive and "
            "max_accuracy_loss non-negative"
        )
    parent_artifact = parent if isinstance(parent, LoadedArtifact) else open_model_file(parent)
    setting = Setting(
        train=train,
        validation=validation,
        parent=parent_artifact,
        columns=columns,
        proxies={
            "none": [],
            "confirmed": list(dict.fromkeys(confirmed_proxies)),
            "suspected": list(dict.fromkeys([*confirmed_proxies, *suspected_proxies])),
        },
        seed=seed,
    )
    targets = Targets(max_accuracy_loss, min_disparate_impact, max_amount_disparity)
    notify = progress or (lambda _message: None)
    specs = [s if not isinstance(s, RemediationStrategy) else from_playbook(s) for s in strategies]

    with threadpool_limits(limits=threads, user_api="openmp"):
        baseline = evaluate(
            parent_candidate(setting), "parent", 0.0, setting, targets, None, min_stratum_rows
        )
        points, candidates, not_applicable = [baseline], {}, {}
        for name, spec in named(specs):
            notify(f"training candidate {name}")
            started = time.perf_counter()
            try:
                candidate = build(spec, setting)
            except StrategyNotApplicable as reason:
                not_applicable[name] = str(reason)
                continue
            seconds = time.perf_counter() - started
            points.append(
                evaluate(candidate, name, seconds, setting, targets, baseline, min_stratum_rows)
            )
            candidates[name] = candidate

    chosen, selection = choose(points[1:], targets, len(validation))
    result = RemediationResult(
        parent_version=parent_artifact.version,
        points=points,
        not_applicable=not_applicable,
        chosen=chosen,
        candidate_version=None,
        lineage=None,
        artifact=None,
        artifact_sha256=None,
        max_accuracy_loss=max_accuracy_loss,
        min_disparate_impact=min_disparate_impact,
        max_amount_disparity=max_amount_disparity,
        selection=selection,
        headline=headline(baseline, chosen, selection, columns.amount, targets),
    )
    if chosen is None:
        return result
    lineage = lineage_of(setting, chosen, parent_version, incident_id)
    candidate_version = version or version_name(setting, chosen, lineage)
    artifact = candidates[chosen.name].artifact(candidate_version, setting, lineage)
    saved: tuple[str, str] | tuple[None, None] = (None, None)
    if output is not None:
        if store is None:
            raise ValueError("an output name needs the artifact store to write it to")
        saved = save_artifact(store, artifact, *output)  # read back through the one loader
    return result.model_copy(
        update={
            "candidate_version": candidate_version,
            "lineage": lineage,
            "artifact": saved[0],
            "artifact_sha256": saved[1],
            "candidate_artifact": artifact,
        }
    )
