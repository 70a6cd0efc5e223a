"""Candidate models that close the gap, and what each one costs (step I of the runbook).

Split at its seams: :mod:`.strategies` (what can be tried, as data), :mod:`.recipes`
(the parent's recipe, rebuilt), :mod:`.regions` (group-balanced coarsening of a
categorical proxy), :mod:`.builders` (how each strategy trains), :mod:`.evaluation`
(trade-offs and the choice), :mod:`.lineage` (where a candidate came from) and
:mod:`.engine` (:func:`remediate`, which runs them in order).
"""

from analysis.remediation.engine import RemediationResult, remediate
from analysis.remediation.evaluation import TradeOffPoint
from analysis.remediation.lineage import code_version, data_digest
from analysis.remediation.regions import balanced_regions, region_encoder
from analysis.remediation.setting import RemediationInputError, StrategyNotApplicable
from analysis.remediation.strategies import (
    Constrained,
    DropProxies,
    Reweigh,
    StrategySpec,
    Threshold,
    TransformProxies,
    from_playbook,
)

__all__ = [
    "Constrained",
    "DropProxies",
    "RemediationInputError",
    "RemediationResult",
    "Reweigh",
    "StrategyNotApplicable",
    "StrategySpec",
    "Threshold",
    "TradeOffPoint",
    "TransformProxies",
    "balanced_regions",
    "code_version",
    "data_digest",
    "from_playbook",
    "region_encoder",
    "remediate",
]
