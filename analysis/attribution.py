"""Which features drive the gap in a model's outcomes between groups (step H of the runbook).

SHAP values share each prediction out among the features, and they add up: every row's
values plus the base value give the model's output. So the gap in mean output between a
group and the best-off group splits exactly into one contribution per feature, the
difference of that feature's mean SHAP value in the two groups. A feature that carries
most of that gap while the provenance audit already suspects it of standing in for the
protected attribute (a zip code for race) is a *confirmed* proxy.

Explainers, fastest exact one first: shap's TreeExplainer (exact, polynomial time) for tree
ensembles such as HistGradientBoosting, LinearExplainer (closed form) for linear models,
and otherwise a PermutationExplainer sampled on the raw features against a recorded
background. Every explanation is checked against the model itself: if the SHAP values do
not add up to its output, the next explainer is tried.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
import shap
from pydantic import BaseModel, ConfigDict
from shap.utils._exceptions import InvalidModelError
from threadpoolctl import threadpool_limits

from analysis.data import require_columns
from analysis.models import Explainable, LoadedArtifact, Outcome, OutputScale

Progress = Callable[[str], object]

# Rows explained per call, so a long explanation reports progress (an activity heartbeat).
_CHUNK_ROWS = 500
_MISSING = "<missing>"


class ExplainerInfo(BaseModel):
    """Which explainer produced the values, on how much data, and how well they add up."""

    model_config = ConfigDict(frozen=True)

    name: Literal["TreeExplainer", "LinearExplainer", "PermutationExplainer"]
    exact: bool
    space: str  # where it explained: encoded columns (summed back) or raw features
    encoded_columns: int | None
    rows: int
    background_rows: int | None
    max_evals_per_row: int | None
    seconds: float
    rows_per_second: float
    max_additivity_error: float  # max |sum of SHAP + base - model output| over the rows
    notes: list[str]


@dataclass(frozen=True)
class Explanation:
    """SHAP values per raw feature for some rows, with the output they add up to."""

    positions: npt.NDArray[np.int_]  # which of the rows given were explained, in order
    features: tuple[str, ...]
    values: npt.NDArray[np.float64]  # rows x features
    base_values: npt.NDArray[np.float64]  # one per row (the same for every row)
    output: npt.NDArray[np.float64]  # the model's output on the explained scale
    info: ExplainerInfo


class FeatureAttribution(BaseModel):
    """How much a feature moves the model's output, overall and inside each group."""

    model_config = ConfigDict(frozen=True)

    feature: str
    mean_abs_shap: float
    mean_abs_shap_by_group: dict[str, dict[str, float]]  # attribute -> group -> value


class GapDriver(BaseModel):
    """One feature's part in a group's gap: its mean SHAP in the group minus in the reference."""

    model_config = ConfigDict(frozen=True)

    feature: str
    rank: int
    contribution: float  # on the output scale; the contributions sum to the gap
    share: float | None  # contribution / gap; None when there is no gap to share


class GroupGap(BaseModel):
    """The gap in mean output between one group and the best-off group of an attribute."""

    model_config = ConfigDict(frozen=True)

    attribute: str
    group: str
    reference_group: str
    group_rows: int
    reference_rows: int
    group_mean_output: float
    reference_mean_output: float
    gap: float  # group mean output - reference mean output
    unexplained: float  # gap - sum of contributions: zero up to rounding, since SHAP adds up
    drivers: list[GapDriver]  # by share of the gap, largest first
    top_drivers: list[str]  # the first top_k drivers carrying at least min_share of the gap


class AttributionReport(BaseModel):
    """SHAP attribution of one outcome model over a stratified validation slice."""

    model_config = ConfigDict(frozen=True)

    model_source: str
    model_version: str | None
    outcome: Outcome
    scale: OutputScale
    rows_scope: str
    rows: int
    rows_by_group: dict[str, dict[str, int]]
    seed: int
    explainer: ExplainerInfo
    base_value: float
    mean_output: float
    features: list[FeatureAttribution]  # by mean |SHAP|, largest first
    gaps: list[GroupGap]  # largest gap first
    groups_too_small: dict[str, list[str]]
    min_group_rows: int
    top_k: int
    min_share: float
    suspected_proxies: list[str]
    suspected_not_in_model: list[str]
    confirmed_proxies: list[str]
    headline: str


def attribution_audit(
    model: LoadedArtifact,
    frame: pd.DataFrame,
    *,
    protected: list[str],
    outcome: Outcome,
    sample_size: int = 2000,
    seed: int = 0,
    suspected_proxies: list[str] | None = None,
    top_k: int = 3,
    min_share: float = 0.10,
    min_group_rows: int = 30,
    background_size: int = 100,
    sampled_rows: int = 500,
    permutations: int = 10,
    threads: int | None = 1,
    progress: Progress | None = None,
) -> AttributionReport:
    """Explain an outcome model on a group-stratified slice of ``frame``; find the gap drivers.

    The amount model of an artifact that also decides is explained on the rows its decision
    model approves, the only rows an amount is served for. The best-off group of each
    protected attribute (highest mean output: higher approval odds, higher limits) is the
    reference; each feature's contribution to another group's gap is its mean SHAP value
    there minus in the reference group. A feature is a top driver of a gap when it is among
    the ``top_k`` largest contributions and carries at least ``min_share`` of it, and a
    confirmed proxy when it is also among ``suspected_proxies``.

    ``background_size``, ``sampled_rows`` and ``permutations`` bound the model-agnostic
    explainer (used only when no exact one applies). ``threads`` caps the OpenMP threads of
    the model's predictions: gradient boosting on a busy 2-core worker ran 40x slower with
    its default threads than with one.
    """
    suspected = list(dict.fromkeys(suspected_proxies or []))
    if not protected:
        raise ValueError("name at least one protected attribute")
    if min(sample_size, top_k, min_group_rows, background_size, sampled_rows, permutations) < 1:
        raise ValueError(
            "sample_size, top_k, min_group_rows, background_size, sampled_rows and "
            "permutations must be at least 1"
        )
    if not 0.0 <= min_share <= 1.0:
        raise ValueError(f"min_share must be between 0 and 1, got {min_share}")
    outcome_model = model.model(outcome)
    require_columns(list(frame.columns), [*model.features, *protected], "the validation data")
    notify = progress or (lambda _message: None)

    with threadpool_limits(limits=threads, user_api="openmp"):
        rows, scope = _rows_in_scope(model, frame, outcome)
        if rows.empty:
            raise ValueError(f"no rows to explain ({scope})")
        explained = stratified_slice(rows, protected, sample_size, seed)
        background = rows.sample(n=min(background_size, len(rows)), random_state=seed)
        notify(f"explaining {len(explained)} rows of the {outcome_model.name} model")
        explainable = outcome_model.explainable(explained)
        explanation = explain(
            explainable,
            explained,
            background=background,
            sampled_rows=sampled_rows,
            permutations=permutations,
            seed=seed,
            stratify_by=protected,
            progress=notify,
        )

    explained = explained.iloc[explanation.positions]
    labels = {attribute: _group_labels(explained[attribute]) for attribute in protected}
    gaps, too_small = _gaps(explanation, labels, min_group_rows, top_k, min_share)
    features_in_model = set(model.features)
    confirmed = [
        feature
        for feature in _by_best_rank(gaps)
        if feature in suspected and feature in features_in_model
    ]
    scale = explainable.scale
    return AttributionReport(
        model_source=model.source,
        model_version=model.version,
        outcome=outcome,
        scale=scale,
        rows_scope=scope,
        rows=len(explained),
        rows_by_group={
            attribute: {str(g): int(n) for g, n in groups.value_counts().sort_index().items()}
            for attribute, groups in labels.items()
        },
        seed=seed,
        explainer=explanation.info,
        base_value=float(explanation.base_values.mean()),
        mean_output=float(explanation.output.mean()),
        features=_feature_attributions(explanation, labels),
        gaps=gaps,
        groups_too_small=too_small,
        min_group_rows=min_group_rows,
        top_k=top_k,
        min_share=min_share,
        suspected_proxies=suspected,
        suspected_not_in_model=[f for f in suspected if f not in features_in_model],
        confirmed_proxies=confirmed,
        headline=_headline(gaps, confirmed, suspected, scale, too_small, min_group_rows),
    )


def stratified_slice(frame: pd.DataFrame, by: list[str], size: int, seed: int) -> pd.DataFrame:
    """About ``size`` rows with every group (intersection of ``by``) in its own proportion."""
    if len(frame) <= size:
        return frame
    keys = [_group_labels(frame[column]) for column in by]
    return frame.groupby(keys, group_keys=False).sample(frac=size / len(frame), random_state=seed)


def explain(
    model: Explainable,
    rows: pd.DataFrame,
    *,
    background: pd.DataFrame,
    sampled_rows: int = 500,
    permutations: int = 10,
    seed: int = 0,
    stratify_by: list[str] | None = None,
    progress: Progress | None = None,
) -> Explanation:
    """SHAP values of ``rows`` per raw feature, from the fastest explainer that adds up.

    Exact explainers run on the encoded columns and sum each raw feature's columns back
    (a one-hot zip code's twenty columns become one zip-code value: additivity is kept).
    ``background`` is the reference distribution for the linear and sampled explainers;
    the sampled one explains at most ``sampled_rows`` rows (a slice stratified by the
    ``stratify_by`` columns) with ``permutations`` antithetic permutations each.
    """
    notify = progress or (lambda _message: None)
    notes: list[str] = []
    if model.sources is not None:
        for attempt in (_tree, _linear):
            explanation = attempt(model, rows, background, notify, notes)
            if explanation is not None:
                return explanation
    else:
        notes.append("the encoding cannot be traced to raw features: explained on raw features")
    if len(rows) > sampled_rows:
        rows = rows.reset_index(drop=True)
        rows = (
            stratified_slice(rows, stratify_by, sampled_rows, seed)
            if stratify_by
            else rows.sample(n=sampled_rows, random_state=seed)
        )
        notes.append(f"sampled explainer: {len(rows)} of the rows explained")
        positions = rows.index.to_numpy()
    else:
        positions = np.arange(len(rows))
    return _permutation(model, rows, positions, background, permutations, seed, notify, notes)


def _tree(
    model: Explainable,
    rows: pd.DataFrame,
    background: pd.DataFrame,
    notify: Progress,
    notes: list[str],
) -> Explanation | None:
    """Exact tree SHAP (path-dependent: the trees' own training cover is the background)."""
    try:
        explainer = shap.TreeExplainer(model.estimator, model_output="raw")
    except InvalidModelError:
        return None
    return _exact("TreeExplainer", explainer, model, rows, None, notify, notes)


def _linear(
    model: Explainable,
    rows: pd.DataFrame,
    background: pd.DataFrame,
    notify: Progress,
    notes: list[str],
) -> Explanation | None:
    """Closed-form linear SHAP: w_i (x_i - E[x_i]) with the background's means."""
    coef = getattr(model.estimator, "coef_", None)
    assert model.sources is not None
    if coef is None or np.asarray(coef).size != len(model.sources):
        return None
    encoded = model.encode(background)
    masker = shap.maskers.Independent(encoded, max_samples=len(encoded))
    explainer = shap.LinearExplainer(model.estimator, masker)
    return _exact("LinearExplainer", explainer, model, rows, len(encoded), notify, notes)


def _exact(
    name: Literal["TreeExplainer", "LinearExplainer"],
    explainer: Any,
    model: Explainable,
    rows: pd.DataFrame,
    background_rows: int | None,
    notify: Progress,
    notes: list[str],
) -> Explanation | None:
    assert model.sources is not None
    started = time.perf_counter()
    chunks, bases = [], []
    for start in range(0, len(rows), _CHUNK_ROWS):
        encoded = model.encode(rows.iloc[start : start + _CHUNK_ROWS])
        result = explainer(encoded, check_additivity=False)
        chunks.append(_positive_class(np.asarray(result.values, dtype=np.float64), 2))
        bases.append(_positive_class(np.asarray(result.base_values, dtype=np.float64), 1))
        notify(f"{name}: {min(start + _CHUNK_ROWS, len(rows))}/{len(rows)} rows")
    encoded_values = np.concatenate(chunks)
    base_values = np.concatenate(bases).reshape(-1)
    values = _sum_columns(encoded_values, model.sources, model.features)
    output = model.output(rows)
    seconds = time.perf_counter() - started
    error = _additivity_error(values, base_values, output)
    if not error <= _tolerance(output):
        notes.append(f"{name} did not add up to the model's output (off by {error:.3g}); skipped")
        return None
    return Explanation(
        positions=np.arange(len(rows)),
        features=model.features,
        values=values,
        base_values=base_values,
        output=output,
        info=ExplainerInfo(
            name=name,
            exact=True,
            space="encoded columns, summed back to raw features",
            encoded_columns=len(model.sources),
            rows=len(rows),
            background_rows=background_rows,
            max_evals_per_row=None,
            seconds=seconds,
            rows_per_second=len(rows) / seconds if seconds > 0 else math.inf,
            max_additivity_error=error,
            notes=notes,
        ),
    )


def _permutation(
    model: Explainable,
    rows: pd.DataFrame,
    positions: npt.NDArray[np.int_],
    background: pd.DataFrame,
    permutations: int,
    seed: int,
    notify: Progress,
    notes: list[str],
) -> Explanation:
    """Sampled SHAP on raw features: categories become codes the masker can swap in and out."""
    features = model.features
    codes, decode = _codebook(pd.concat([rows[list(features)], background[list(features)]]))
    row_codes, background_codes = codes[: len(rows)], codes[len(rows) :]
    max_evals = permutations * (2 * len(features) + 1)
    explainer = shap.PermutationExplainer(
        lambda z: model.output(decode(z)),
        shap.maskers.Independent(background_codes, max_samples=len(background_codes)),
        seed=seed,
    )
    started = time.perf_counter()
    chunks, bases = [], []
    for start in range(0, len(rows), _CHUNK_ROWS):
        result = explainer(row_codes[start : start + _CHUNK_ROWS], max_evals=max_evals, silent=True)
        chunks.append(np.asarray(result.values, dtype=np.float64))
        bases.append(np.asarray(result.base_values, dtype=np.float64).reshape(-1))
        notify(f"PermutationExplainer: {min(start + _CHUNK_ROWS, len(rows))}/{len(rows)} rows")
    values, base_values = np.concatenate(chunks), np.concatenate(bases)
    output = model.output(rows)
    seconds = time.perf_counter() - started
    return Explanation(
        positions=positions,
        features=features,
        values=values,
        base_values=base_values,
        output=output,
        info=ExplainerInfo(
            name="PermutationExplainer",
            exact=False,
            space="raw features",
            encoded_columns=None,
            rows=len(rows),
            background_rows=len(background_codes),
            max_evals_per_row=max_evals,
            seconds=seconds,
            rows_per_second=len(rows) / seconds if seconds > 0 else math.inf,
            max_additivity_error=_additivity_error(values, base_values, output),
            notes=notes,
        ),
    )


def _positive_class(values: npt.NDArray[np.float64], ndim: int) -> npt.NDArray[np.float64]:
    """A classifier explained per class (rows x features x classes): keep the positive class."""
    return values[..., -1] if values.ndim > ndim else values


def _sum_columns(
    values: npt.NDArray[np.float64], sources: tuple[str, ...], features: tuple[str, ...]
) -> npt.NDArray[np.float64]:
    """Add up the encoded columns of each raw feature (SHAP values are additive).

    A feature the encoding drops has no columns and gets zeros: the model ignores it.
    """
    membership = np.zeros((len(sources), len(features)))
    position = {feature: j for j, feature in enumerate(features)}
    for i, source in enumerate(sources):
        membership[i, position[source]] = 1.0
    return values @ membership


def _additivity_error(
    values: npt.NDArray[np.float64],
    base_values: npt.NDArray[np.float64],
    output: npt.NDArray[np.float64],
) -> float:
    return float(np.max(np.abs(values.sum(axis=1) + base_values - output), initial=0.0))


def _tolerance(output: npt.NDArray[np.float64]) -> float:
    """Rounding, not disagreement: a millionth of the output's magnitude."""
    return 1e-6 * max(1.0, float(np.max(np.abs(output), initial=0.0)))


def _codebook(
    frame: pd.DataFrame,
) -> tuple[npt.NDArray[np.float64], Callable[[npt.NDArray[np.float64]], pd.DataFrame]]:
    """Numbers a masker can shuffle for every column, and the way back to the model's input."""
    columns: list[npt.NDArray[np.float64]] = []
    categories: dict[str, pd.Index] = {}
    for name in frame.columns:
        column = frame[name]
        if pd.api.types.is_numeric_dtype(column.dtype):
            columns.append(column.to_numpy(dtype=np.float64))
        else:
            codes, uniques = pd.factorize(column, use_na_sentinel=False)
            categories[name] = uniques
            columns.append(codes.astype(np.float64))
    names = list(frame.columns)

    def decode(codes: npt.NDArray[np.float64]) -> pd.DataFrame:
        return pd.DataFrame(
            {
                name: categories[name].take(codes[:, j].astype(int))
                if name in categories
                else codes[:, j]
                for j, name in enumerate(names)
            }
        )

    return np.column_stack(columns), decode


def _rows_in_scope(
    model: LoadedArtifact, frame: pd.DataFrame, outcome: Outcome
) -> tuple[pd.DataFrame, str]:
    """An amount is only served where the decision approves: explain it there."""
    if outcome != "amount" or "decision" not in model.models:
        return frame, "all rows"
    decider = model.models["decision"].estimator
    decided = np.asarray(decider.predict(frame[list(model.features)])) == decider.classes_[-1]
    return frame[decided], "rows the decision model approves"


def _group_labels(values: pd.Series) -> pd.Series:
    return values.astype("string").fillna(_MISSING).astype(str)


def _gaps(
    explanation: Explanation,
    labels: dict[str, pd.Series],
    min_group_rows: int,
    top_k: int,
    min_share: float,
) -> tuple[list[GroupGap], dict[str, list[str]]]:
    gaps: list[GroupGap] = []
    too_small: dict[str, list[str]] = {}
    values = pd.DataFrame(explanation.values, columns=list(explanation.features))
    for attribute, groups in labels.items():
        keys = groups.to_numpy()
        counts = pd.Series(keys).value_counts()
        too_small[attribute] = sorted(str(g) for g in counts.index[counts < min_group_rows])
        eligible = sorted(str(g) for g in counts.index[counts >= min_group_rows])
        if len(eligible) < 2:
            continue
        mean_output = pd.Series(explanation.output).groupby(keys).mean()
        mean_values = values.groupby(keys).mean()
        reference = max(eligible, key=lambda g: float(mean_output[g]))
        for group in eligible:
            if group == reference:
                continue
            gap = float(mean_output[group] - mean_output[reference])
            contributions = mean_values.loc[group] - mean_values.loc[reference]
            direction = -1.0 if gap < 0 else 1.0
            ordered = (contributions * direction).sort_values(ascending=False).index
            drivers = [
                GapDriver(
                    feature=str(feature),
                    rank=rank,
                    contribution=float(contributions[feature]),
                    share=float(contributions[feature] / gap) if gap != 0 else None,
                )
                for rank, feature in enumerate(ordered, start=1)
            ]
            gaps.append(
                GroupGap(
                    attribute=attribute,
                    group=group,
                    reference_group=reference,
                    group_rows=int(counts[group]),
                    reference_rows=int(counts[reference]),
                    group_mean_output=float(mean_output[group]),
                    reference_mean_output=float(mean_output[reference]),
                    gap=gap,
                    unexplained=gap - float(contributions.sum()),
                    drivers=drivers,
                    top_drivers=[
                        d.feature
                        for d in drivers[:top_k]
                        if d.share is not None and d.share >= min_share
                    ],
                )
            )
    gaps.sort(key=lambda g: -abs(g.gap))
    return gaps, {attribute: groups for attribute, groups in too_small.items() if groups}


def _by_best_rank(gaps: list[GroupGap]) -> list[str]:
    """Top drivers of any gap, the most decisive first."""
    best: dict[str, int] = {}
    for gap in gaps:
        for driver in gap.drivers:
            if driver.feature in gap.top_drivers:
                best[driver.feature] = min(best.get(driver.feature, driver.rank), driver.rank)
    return sorted(best, key=lambda feature: best[feature])


def _feature_attributions(
    explanation: Explanation, labels: dict[str, pd.Series]
) -> list[FeatureAttribution]:
    magnitude = pd.DataFrame(np.abs(explanation.values), columns=list(explanation.features))
    by_group = {
        attribute: magnitude.groupby(groups.to_numpy()).mean()
        for attribute, groups in labels.items()
    }
    overall = magnitude.mean().sort_values(ascending=False)
    return [
        FeatureAttribution(
            feature=str(feature),
            mean_abs_shap=float(value),
            mean_abs_shap_by_group={
                attribute: {str(g): float(v) for g, v in means[feature].items()}
                for attribute, means in by_group.items()
            },
        )
        for feature, value in overall.items()
    ]


def _headline(
    gaps: list[GroupGap],
    confirmed: list[str],
    suspected: list[str],
    scale: OutputScale,
    too_small: dict[str, list[str]],
    min_group_rows: int,
) -> str:
    if not gaps:
        return f"no two groups have the {min_group_rows} rows needed to compare them" + (
            f" (too small: {too_small})" if too_small else ""
        )
    gap = gaps[0]
    between = f"between {gap.reference_group} and {gap.group}"
    if gap.gap == 0:
        return f"no gap in {scale.name} {between}"
    top = gap.drivers[0]
    size = f"{gap.gap:+.2f}"
    if scale.kind == "log":
        size += f", x{math.exp(gap.gap):.2f}"
    elif scale.kind == "log_odds":
        size += f", odds x{math.exp(gap.gap):.2f}"
    text = f"{top.feature} drives {top.share:.0%} of the gap in {scale.name} {between} ({size})"
    if top.feature in confirmed:
        text += "; confirmed proxy"
    elif top.feature in suspected:
        text += "; a suspected proxy"
    elif suspected:
        text += "; not a suspected proxy"
    others = [feature for feature in confirmed if feature != top.feature]
    if others:
        text += f"; other confirmed proxies: {', '.join(others)}"
    return text
