"""The provenance audit (step T): who the training data represents, and what gives groups away.

Two questions an incident needs answered before anyone retrains: is every protected
group (and intersection) present in numbers, with comparable labels and complete
features; and which features stand in for a protected attribute, so that dropping the
attribute was never enough. The answers come from :mod:`fairness.representation` and
:mod:`fairness.proxy`; this module picks the columns, checks the data set has what
they need (a missing column is a :class:`~analysis.data.DataFileError` naming it, which
the activity reports as a non-retryable failure), and writes the one-line headline an
incident commander reads first.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
from pydantic import BaseModel, ConfigDict

from analysis.data import DataFileError, require_columns
from fairness.proxy import FeatureProxy, ProxyScan, ProxyThresholds, scan_proxies
from fairness.representation import LabelError, Reference, Representation, represent

_ID_SUFFIX = "_id"
# Folds of the proxy scan's cross-validation; an attribute value needs at least this many
# rows to be modelled whatever the playbook's minimum group size.
CV_FOLDS = 5


class ExcludedColumn(BaseModel):
    """A column left out of the proxy scan by default, and why."""

    model_config = ConfigDict(frozen=True)

    column: str
    reason: str


class ProvenanceReport(BaseModel):
    """Representation and proxy scan of one data set, with the headline to read first."""

    model_config = ConfigDict(frozen=True)

    headline: str
    rows: int
    protected: list[str]
    label: str | None
    features: list[str]
    excluded_columns: list[ExcludedColumn]
    suspected_proxies: list[str]
    representation: Representation
    proxies: ProxyScan


def id_like_reason(values: pd.Series) -> str | None:
    """Why a column looks like a row identifier rather than a feature, or ``None``.

    An identifier predicts nothing about a new applicant, and a column with a distinct
    value per row makes every association measure look perfect on the data it came from.
    """
    name = str(values.name).lower()
    if name == "id" or name.endswith(_ID_SUFFIX):
        return f"named like an identifier ({values.name!r})"
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    present = values.dropna()
    if not numeric and len(present) > 1 and present.nunique() == len(present):
        return "a distinct value on every row"
    return None


def provenance_audit(
    frame: pd.DataFrame,
    *,
    protected: list[str],
    label: str | None = None,
    features: list[str] | None = None,
    min_group_size: int = 30,
    reference: Reference | None = None,
    thresholds: ProxyThresholds = ProxyThresholds(),
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> ProvenanceReport:
    """Audit ``frame``: representation of every protected slice, then the proxy scan.

    ``features`` defaults to every column that is neither protected, the label, nor
    identifier-like (those are listed in the report with the reason). Groups below
    ``min_group_size`` are reported as too small to judge, and attribute values that
    small are left out of the AUC models. ``progress`` is called between phases.
    """
    if not protected:
        raise ValueError("at least one protected attribute is needed")
    needed = [*protected, *([label] if label is not None else []), *(features or [])]
    require_columns(list(frame.columns), needed, "the data set")
    if len(frame) == 0:
        raise DataFileError("the data set has no rows")

    excluded: list[ExcludedColumn] = []
    if features is None:
        features = []
        for column in frame.columns:
            if column in protected or column == label:
                continue
            reason = id_like_reason(frame[column])
            if reason is None:
                features.append(str(column))
            else:
                excluded.append(ExcludedColumn(column=str(column), reason=reason))

    if progress is not None:
        progress("representation")
    try:
        representation = represent(
            frame,
            protected,
            label=label,
            columns=[*features, *([label] if label is not None else [])],
            min_group_size=min_group_size,
            reference=reference,
        )
    except LabelError as error:
        raise DataFileError(str(error)) from error
    proxies = scan_proxies(
        frame,
        protected,
        features,
        thresholds=thresholds,
        cv_folds=CV_FOLDS,
        min_class_size=max(min_group_size, CV_FOLDS),
        seed=seed,
        progress=progress,
    )
    return ProvenanceReport(
        headline=headline(proxies, len(features)),
        rows=len(frame),
        protected=list(protected),
        label=label,
        features=features,
        excluded_columns=excluded,
        suspected_proxies=proxies.suspected_proxies,
        representation=representation,
        proxies=proxies,
    )


def headline(proxies: ProxyScan, feature_count: int) -> str:
    """One line: the strongest feature-attribute pair, its verdict, and how many are suspect."""
    pairs = [(scan, feature) for scan in proxies.attributes for feature in scan.features]
    suspected = f"{len(proxies.suspected_proxies)} of {feature_count} features suspected"
    if not pairs:
        attributes = ", ".join(scan.attribute for scan in proxies.attributes)
        return f"no feature could be scored against {attributes}; {suspected}"
    scan, strongest = max(pairs, key=lambda pair: _strength(pair[1]))
    verdict = "suspected proxy" if strongest.suspected else "below the proxy thresholds"
    together = (
        f"; all features together predict {scan.attribute} with AUC {scan.all_features_auc:.2f}"
        if scan.all_features_auc is not None
        else ""
    )
    return (
        f"{strongest.feature} predicts {scan.attribute} with {_figures(strongest)}: {verdict}; "
        f"{suspected}{together}"
    )


def _strength(feature: FeatureProxy) -> tuple[float, float]:
    return (feature.auc if feature.auc is not None else 0.5, feature.nmi)


def _figures(feature: FeatureProxy) -> str:
    if feature.auc is None:
        return f"NMI {feature.nmi:.2f}"
    return f"AUC {feature.auc:.2f} (NMI {feature.nmi:.2f})"
