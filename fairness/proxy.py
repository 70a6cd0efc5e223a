"""Proxy scan: how well each feature, alone and all together, predicts a protected attribute.

A model that never sees the protected attribute can still discriminate through a
feature that stands in for it (the reference case: zip code for group). For every
candidate feature and every protected attribute this module measures:

* the association, on every row: normalized mutual information (scikit-learn's, with
  its arithmetic-mean normalisation) and Cramér's V with Bergsma's (2013) bias
  correction. Both come from one contingency table per feature, built with
  ``np.bincount`` on integer codes, so a million rows cost milliseconds;
* the cross-validated ROC AUC of predicting the attribute from that feature alone
  (one-vs-rest, macro-averaged over classes, for attributes with more than two values);
* the cross-validated AUC from all features together: how recoverable the attribute
  is at all, even when no single feature gives it away.

Encoding. Categorical features keep one level per value. Numeric features are cut at
their quantiles (``bins`` equal-count bins by default ten; tied cut points merge),
because the association measures need discrete levels and equal-count bins keep every
level well populated whatever the feature's scale or skew, where equal-width bins
would leave a long tail almost empty. Missing values are a level of their own: who
is missing can itself give a group away. A categorical feature with nearly as many
levels as rows inflates the NMI (every level looks "pure"); the bias-corrected V and the
cross-validated AUC do not fall for it, and the provenance audit leaves identifier-like
columns out by default.

Single-feature AUC. Logistic regression on the one-hot levels of a single feature is
the saturated model: its fitted probabilities are the per-level class frequencies. So
the scan computes those frequencies out of fold in closed form, from per-fold
contingency tables, instead of fitting anything, and scores the held-out rows with
them (with one pseudo-observation at the training prior, so that a level unseen or
tiny in training scores near the base rate instead of at 0 or 1). That is exact on
every row and costs no more than the association measures. ``roc_auc_score`` takes
the per-(fold, level) counts as sample weights, which gives the same AUC as scoring
row by row.

All-features AUC. A logistic regression on the features' out-of-fold log-odds (a
target encoding, cross-fitted inside each training split exactly as scikit-learn's
``TargetEncoder`` does in a pipeline, but computed from the same count tables: that
encoder took ~5 s per fit on 200,000 x 40), fitted one class against the rest and
cross-validated on a stratified sample of at most ``sample_size`` rows (recorded in the
report). The default 50,000 is plenty for a model with one coefficient per feature,
and estimates its AUC to about +-0.005; more rows would buy the third decimal at the
price of the scan's whole budget (the fits dominate it). Being additive, the model
cannot use interactions between features, so its AUC is a lower bound on how
recoverable the attribute is.

Classes with fewer than ``min_class_size`` rows are left out of the AUC models (too
few to learn or to judge) but kept in the association measures.

Pure functions of their inputs: no I/O, no clocks; the seed fixes the folds and the sample.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal, NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from scipy.stats import chi2_contingency, entropy
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import mutual_info_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import label_binarize
from threadpoolctl import threadpool_limits

Codes = npt.NDArray[np.intp]
Counts = npt.NDArray[np.float64]
Progress = Callable[[str], None]


class ProxyThresholds(BaseModel):
    """When a feature becomes a suspected proxy: either measure reaching its threshold.

    NMI 0.10: the feature and the attribute share a tenth of their mean entropy, orders of
    magnitude above what an independent feature reaches by chance on audit-sized data
    (about 1e-4 on 20,000 rows). AUC 0.70: the customary floor of "acceptable
    discrimination" (Hosmer & Lemeshow), i.e. the feature alone sorts members of a group
    from non-members well enough for a model to act on it.
    """

    model_config = ConfigDict(frozen=True)

    nmi: float = Field(default=0.10, ge=0.0, le=1.0)
    auc: float = Field(default=0.70, ge=0.5, le=1.0)


class FeatureProxy(BaseModel):
    """How strongly one feature predicts one protected attribute."""

    model_config = ConfigDict(frozen=True)

    feature: str
    kind: Literal["numeric", "categorical"]
    levels: int  # distinct codes the measures saw: quantile bins or categories, and missing
    nmi: float
    cramers_v: float
    auc: float | None  # None when fewer than two classes are large enough to model
    suspected: bool


class AttributeProxies(BaseModel):
    """Every feature against one protected attribute, strongest first: by single-feature
    AUC, then NMI (the AUC is comparable across attributes and feature kinds)."""

    model_config = ConfigDict(frozen=True)

    attribute: str
    classes: list[str]
    rows: int  # rows where the attribute is known: the association measures use them all
    auc_classes: list[str]  # classes with at least min_class_size rows, the ones modelled
    auc_rows: int  # rows of those classes: the single-feature AUCs use them all
    all_features_sample_rows: int  # rows the all-features model was cross-validated on
    all_features_auc: float | None
    features: list[FeatureProxy]
    suspected: list[str]


class ProxyScan(BaseModel):
    """The proxy scan of every protected attribute, with the settings that produced it."""

    model_config = ConfigDict(frozen=True)

    thresholds: ProxyThresholds
    bins: int
    cv_folds: int
    sample_size: int
    min_class_size: int
    seed: int
    attributes: list[AttributeProxies]
    suspected_proxies: list[str]  # suspected for any attribute, strongest first


class EncodedFeature(NamedTuple):
    """A feature as integer codes ``0..levels-1``, missing values included as a level."""

    codes: Codes
    levels: int
    kind: Literal["numeric", "categorical"]


def encode_feature(values: pd.Series, bins: int) -> EncodedFeature:
    """Integer codes of one feature: quantile bins for numbers, one level per category."""
    if bins < 2:
        raise ValueError(f"bins must be at least 2, got {bins}")
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        numbers = values.to_numpy(dtype=np.float64, na_value=np.nan)
        missing = np.isnan(numbers)
        present = numbers[~missing]
        quantiles = np.linspace(0, 1, bins + 1)[1:-1]
        cuts = np.unique(np.quantile(present, quantiles)) if present.size else np.empty(0)
        codes = np.searchsorted(cuts, numbers, side="right").astype(np.intp)
        codes[missing] = cuts.size + 1
        return EncodedFeature(*_compact(codes, cuts.size + 2), "numeric")
    codes, uniques = pd.factorize(values, sort=True)
    codes = np.asarray(codes, dtype=np.intp)
    codes[codes < 0] = len(uniques)
    return EncodedFeature(*_compact(codes, len(uniques) + 1), "categorical")


def _compact(codes: Codes, size: int) -> tuple[Codes, int]:
    """Renumber codes so that only levels that occur are counted (empty bins, no missing)."""
    used = np.bincount(codes, minlength=size) > 0
    renumber = np.cumsum(used) - 1
    return renumber[codes].astype(np.intp), int(used.sum())


def _nonempty(table: npt.ArrayLike) -> Counts:
    counts = np.asarray(table, dtype=np.float64)
    if counts.ndim != 2:
        raise ValueError("a contingency table must be 2-D")
    nonempty: Counts = counts[counts.sum(axis=1) > 0][:, counts.sum(axis=0) > 0]
    return nonempty


def cramers_v(table: npt.ArrayLike) -> float:
    """Bias-corrected Cramér's V of a contingency table (Bergsma 2013).

    Written out because ``scipy.stats.contingency.association`` gives only the
    uncorrected V, whose positive bias grows with the table's size: a feature with many
    levels looks associated with anything. Empty rows and columns are dropped first;
    a table with a single row or column has no association (0.0).
    """
    counts = _nonempty(table)
    rows, cols = counts.shape
    n = counts.sum()
    if rows < 2 or cols < 2:
        return 0.0
    chi2 = float(chi2_contingency(counts, correction=False).statistic)
    phi2 = max(0.0, chi2 / n - (rows - 1) * (cols - 1) / (n - 1))
    rows_corrected = rows - (rows - 1) ** 2 / (n - 1)
    cols_corrected = cols - (cols - 1) ** 2 / (n - 1)
    denominator = min(rows_corrected - 1, cols_corrected - 1)
    return float(np.sqrt(phi2 / denominator)) if denominator > 0 else 0.0


def normalized_mutual_information(table: npt.ArrayLike) -> float:
    """``sklearn.metrics.normalized_mutual_info_score`` of the labelings behind a table.

    Computed from the contingency table (scikit-learn's ``mutual_info_score`` accepts
    one) so the rows never need to be sorted or hashed again; same arithmetic-mean
    normalisation and same conventions (two constant labelings score 1.0).
    """
    counts = _nonempty(table)
    rows, cols = counts.shape
    if rows == cols == 1 or counts.size == 0:
        return 1.0
    mutual_information = float(mutual_info_score(None, None, contingency=counts))
    if mutual_information == 0.0:
        return 0.0
    normalizer = (entropy(counts.sum(axis=1)) + entropy(counts.sum(axis=0))) / 2
    return mutual_information / max(float(normalizer), float(np.finfo(np.float64).eps))


def _posterior(counts: Counts) -> Counts:
    """Per-level class frequencies of ``(..., levels, classes)`` counts, shrunk by one
    pseudo-observation towards the table's class shares."""
    prior = counts.sum(axis=-2, keepdims=True) / counts.sum(axis=(-2, -1), keepdims=True)
    posterior: Counts = (counts + prior) / (counts.sum(axis=-1, keepdims=True) + 1.0)
    return posterior


def _modelled(classes: int) -> list[int]:
    """The classes to score one against the rest: one suffices for two."""
    return [1] if classes == 2 else list(range(classes))


def _logit(probabilities: Counts) -> Counts:
    log_odds: Counts = np.log(probabilities) - np.log1p(-probabilities)
    return log_odds


def _auc(y: Codes, scores: Counts, classes: int) -> float:
    """One-vs-rest ROC AUC, macro-averaged over classes (plain AUC for two)."""
    if classes == 2:
        return float(roc_auc_score(y, scores[:, 1]))
    return float(roc_auc_score(label_binarize(y, classes=range(classes)), scores, average="macro"))


def _fold_ids(y: Codes, folds: int, seed: int) -> Codes:
    """Each row's cross-validation fold, stratified by class."""
    ids = np.empty(y.size, dtype=np.intp)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for fold, (_, held_out) in enumerate(splitter.split(np.zeros(y.size), y)):
        ids[held_out] = fold
    return ids


def _fold_tables(
    codes: Codes, levels: int, y: Codes, classes: int, fold_ids: Codes, folds: int
) -> Counts:
    """Counts of ``(fold, level, class)``: one bincount over the rows."""
    flat = (fold_ids * levels + codes) * classes + y
    counts = np.bincount(flat, minlength=folds * levels * classes)
    return counts.reshape(folds, levels, classes).astype(np.float64)


def _single_feature_auc(fold_tables: Counts) -> float:
    """Out-of-fold AUC of the per-level class frequencies, from ``(fold, level, class)`` counts.

    Every row of a (fold, level) cell gets the same score, learnt on the other folds, so
    the cells with their counts as weights give exactly the row-by-row AUC.
    """
    scores = _posterior(fold_tables.sum(axis=0) - fold_tables)
    cell_rows = fold_tables.sum(axis=-1).ravel()
    aucs = []
    for c in _modelled(fold_tables.shape[-1]):
        positives = fold_tables[..., c].ravel()
        score = scores[..., c].ravel()
        aucs.append(
            roc_auc_score(
                np.r_[np.ones(score.size), np.zeros(score.size)],
                np.r_[score, score],
                sample_weight=np.r_[positives, cell_rows - positives],
            )
        )
    return float(np.mean(aucs))


def _all_features_auc(
    codes: Sequence[Codes], levels: Sequence[int], y: Codes, classes: int, folds: int, seed: int
) -> float:
    """Cross-validated AUC of a logistic regression on every feature's cross-fitted log-odds.

    For held-out fold f a level's log-odds come from the other folds; for a training row
    in fold g they come from the folds other than f and g, so the model never learns from
    an encoding that saw its own row's label (the leak ``TargetEncoder`` guards against).
    """
    offsets = np.cumsum([0, *levels[:-1]])
    all_codes = np.column_stack(codes) + offsets
    fold_ids = _fold_ids(y, folds, seed)
    tables = _fold_tables(
        all_codes.ravel(),
        int(sum(levels)),
        np.repeat(y, len(codes)),
        classes,
        np.repeat(fold_ids, len(codes)),
        folds,
    )
    scores = np.zeros((y.size, classes))
    for fold in range(folds):
        train = fold_ids != fold
        rest = tables.sum(axis=0) - tables[fold]
        without = rest - tables
        without[fold] = rest  # never looked up: no training row is in the held-out fold
        train_log_odds = _logit(_posterior(without))[fold_ids[train, None], all_codes[train]]
        held_out_log_odds = _logit(_posterior(rest))[all_codes[~train]]
        for c in _modelled(classes):
            model = LogisticRegression(max_iter=1_000)
            # One BLAS thread: on 40 columns OpenBLAS's threads cost more in hand-offs than
            # they save (fits measured 10x slower with two threads on a busy 2-core machine).
            with threadpool_limits(limits=1, user_api="blas"):
                model.fit(
                    np.ascontiguousarray(train_log_odds[..., c], dtype=np.float32), y[train] == c
                )
            scores[~train, c] = model.decision_function(
                np.ascontiguousarray(held_out_log_odds[..., c], dtype=np.float32)
            )
    return _auc(y, scores, classes)


def _stratified_sample(y: Codes, size: int, floor: int, seed: int) -> Codes:
    """Row indices of a sample of about ``size`` rows keeping each class's share, except that
    a class keeps at least ``floor`` rows; AUC does not depend on class shares, so lifting a
    small class only makes its estimate steadier."""
    if y.size <= size:
        return np.arange(y.size, dtype=np.intp)
    rng = np.random.default_rng(seed)
    picked = []
    for c, rows in enumerate(np.bincount(y)):
        take = min(int(rows), max(round(size * int(rows) / y.size), floor))
        picked.append(rng.choice(np.flatnonzero(y == c), size=take, replace=False))
    return np.sort(np.concatenate(picked)).astype(np.intp)


class _Settings(NamedTuple):
    thresholds: ProxyThresholds
    folds: int
    sample_size: int
    min_class_size: int
    seed: int


def _scan_attribute(
    values: pd.Series,
    encoded: dict[str, EncodedFeature],
    settings: _Settings,
    progress: Progress | None,
) -> AttributeProxies:
    attribute = str(values.name)
    if progress is not None:
        progress(f"proxy scan: {attribute}: association and single-feature AUC")
    raw_codes, uniques = pd.factorize(values, sort=True)
    classes = [str(value) for value in uniques]
    known = np.asarray(raw_codes) >= 0
    y = np.asarray(raw_codes, dtype=np.intp)[known]
    eligible = np.bincount(y, minlength=len(classes)) >= settings.min_class_size
    modelled = int(eligible.sum()) >= 2
    in_model = eligible[y]
    # Rows of classes too small to model sit in an extra fold that only the association sees.
    fold_ids = np.full(y.size, settings.folds, dtype=np.intp)
    if modelled:
        fold_ids[in_model] = _fold_ids(y[in_model], settings.folds, settings.seed)

    all_known = bool(known.all())
    known_codes = {
        name: feature.codes if all_known else feature.codes[known]
        for name, feature in encoded.items()
    }
    scorable = encoded if len(classes) >= 2 else {}
    scored: list[FeatureProxy] = []
    for name, feature in scorable.items():
        tables = _fold_tables(
            known_codes[name], feature.levels, y, len(classes), fold_ids, settings.folds + 1
        )
        contingency = tables.sum(axis=0)
        nmi = normalized_mutual_information(contingency)
        auc = _single_feature_auc(tables[: settings.folds][..., eligible]) if modelled else None
        scored.append(
            FeatureProxy(
                feature=name,
                kind=feature.kind,
                levels=feature.levels,
                nmi=nmi,
                cramers_v=cramers_v(contingency),
                auc=auc,
                suspected=nmi >= settings.thresholds.nmi
                or (auc is not None and auc >= settings.thresholds.auc),
            )
        )
    scored.sort(key=lambda f: (-(f.auc if f.auc is not None else 0.5), -f.nmi, f.feature))

    sample_rows = 0
    all_features_auc = None
    if modelled and scored:
        rows = np.flatnonzero(in_model)
        y_model = (np.cumsum(eligible) - 1)[y[rows]]
        sample = _stratified_sample(
            y_model, settings.sample_size, settings.min_class_size, settings.seed
        )
        sample_rows = sample.size
        if progress is not None:
            progress(f"proxy scan: {attribute}: all-features model on {sample_rows} rows")
        all_features_auc = _all_features_auc(
            [known_codes[name][rows[sample]] for name in encoded],
            [feature.levels for feature in encoded.values()],
            y_model[sample],
            int(eligible.sum()),
            settings.folds,
            settings.seed,
        )
    return AttributeProxies(
        attribute=attribute,
        classes=classes,
        rows=int(y.size),
        auc_classes=[c for c, keep in zip(classes, eligible, strict=True) if keep],
        auc_rows=int(in_model.sum()) if modelled else 0,
        all_features_sample_rows=sample_rows,
        all_features_auc=all_features_auc,
        features=scored,
        suspected=[f.feature for f in scored if f.suspected],
    )


def scan_proxies(
    frame: pd.DataFrame,
    protected: Sequence[str],
    features: Sequence[str],
    *,
    thresholds: ProxyThresholds = ProxyThresholds(),
    bins: int = 10,
    cv_folds: int = 5,
    sample_size: int = 50_000,
    min_class_size: int = 30,
    seed: int = 0,
    progress: Progress | None = None,
) -> ProxyScan:
    """Score every feature as a proxy of every protected attribute, strongest first.

    An attribute with a single observed value has nothing to predict: no feature is scored
    against it. ``progress`` is called before each attribute's phases (for heartbeats).
    """
    _validate(frame, protected, features, bins, cv_folds, sample_size, min_class_size)
    settings = _Settings(thresholds, cv_folds, sample_size, min_class_size, seed)
    if progress is not None:
        progress(f"proxy scan: encoding {len(features)} features")
    encoded = {name: encode_feature(frame[name], bins) for name in features}
    attributes = [
        _scan_attribute(frame[attribute], encoded, settings, progress) for attribute in protected
    ]

    strongest: dict[str, tuple[float, float]] = {}
    for scan in attributes:
        for feature in scan.features:
            if feature.suspected:
                strength = (feature.auc if feature.auc is not None else 0.5, feature.nmi)
                strongest[feature.feature] = max(strength, strongest.get(feature.feature, strength))
    return ProxyScan(
        thresholds=thresholds,
        bins=bins,
        cv_folds=cv_folds,
        sample_size=sample_size,
        min_class_size=min_class_size,
        seed=seed,
        attributes=attributes,
        suspected_proxies=sorted(
            strongest, key=lambda name: (-strongest[name][0], -strongest[name][1], name)
        ),
    )


def _validate(
    frame: pd.DataFrame,
    protected: Sequence[str],
    features: Sequence[str],
    bins: int,
    cv_folds: int,
    sample_size: int,
    min_class_size: int,
) -> None:
    if not protected:
        raise ValueError("at least one protected attribute is needed")
    missing = [c for c in [*protected, *features] if c not in frame.columns]
    if missing:
        raise ValueError(f"the frame lacks column(s) {missing}")
    for names in (protected, features):
        if len(set(names)) != len(names):
            raise ValueError(f"columns repeat in {list(names)}")
    overlap = sorted(set(protected) & set(features))
    if overlap:
        raise ValueError(f"{overlap} cannot be both protected and a candidate feature")
    if len(frame) == 0:
        raise ValueError("the frame has no rows")
    if bins < 2 or cv_folds < 2:
        raise ValueError(f"bins and cv_folds must be at least 2, got {bins} and {cv_folds}")
    if min_class_size < cv_folds:
        raise ValueError(
            f"min_class_size ({min_class_size}) must be at least cv_folds ({cv_folds}): "
            "every fold needs members of every modelled class"
        )
    if sample_size < 2 * min_class_size:
        raise ValueError(f"sample_size must be at least {2 * min_class_size}, got {sample_size}")
