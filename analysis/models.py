"""Model artifacts as the audits see them: any scikit-learn model, opened where SHAP can look in.

Two shapes of file load. An artifact dict (skops) holds a ``"decision"`` model (a binary
classifier), an ``"amount"`` model (a regressor), or both, with its ``"features"`` and
``"version"`` (see :func:`analysis.scoring.save_artifact`; ``"approval"``/``"limit"`` are
the older names of the two parts); a bare scikit-learn estimator or pipeline is the other,
a classifier being a decision model and a regressor an amount model. Either way
the audits get one :class:`OutcomeModel` per outcome, and :meth:`OutcomeModel.explainable`
splits it into the encoding (one-hot and the like) and the estimator SHAP explains, with
every encoded column traced back to the raw feature it came from, so attributions can be
summed back to the features a person recognises.

Files are opened only through :class:`store.artifacts.ArtifactStore`: by name inside the
artifacts directory, at the digest the registry recorded, as skops (pickles only by opt-in).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, ConfigDict
from scipy import sparse
from scipy.special import expit
from sklearn.base import is_classifier, is_regressor
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
from sklearn.utils.validation import check_is_fitted

from store.artifacts import ArtifactError, ArtifactStore, local_store

Outcome = Literal["decision", "amount"]

# An artifact dict's parts and the outcome each one produces: ``decision`` and ``amount``,
# and the names artifacts written before models were generic used for them.
ARTIFACT_PARTS: Mapping[str, Outcome] = {
    "decision": "decision",
    "amount": "amount",
    "approval": "decision",
    "limit": "amount",
}
_ARTIFACT_REQUIRED = ("features", "version")


class ModelFileError(ValueError):
    """A model file that cannot be audited: missing, unreadable, or not a usable model."""


class OutputScale(BaseModel):
    """What the explained number is, so a SHAP value can be read in the model's own terms."""

    model_config = ConfigDict(frozen=True)

    name: str  # e.g. "log-odds of approval", "log-limit"
    kind: Literal["log_odds", "margin", "probability", "label", "log", "transformed", "identity"]
    note: str


@dataclass(frozen=True)
class Explainable:
    """A model split into the encoding SHAP need not see and the estimator it explains.

    ``output`` maps rows of the raw ``features`` to the explained number: the classifier's decision
    function (log-odds for logistic models), or the regressor's prediction in its training
    target's space (a log-limit for a regressor trained on log limits). ``sources`` names the
    raw feature behind each column of ``encode``'s numeric matrix, and ``margin`` is the same
    output computed from that matrix; ``sources`` is ``None`` when the encoding cannot be
    traced or is not numeric, and then only a model-agnostic explainer on raw features applies.
    """

    features: tuple[str, ...]
    estimator: Any
    output: Callable[[pd.DataFrame], npt.NDArray[np.float64]]
    encode: Callable[[pd.DataFrame], npt.NDArray[np.float64]]
    margin: Callable[[Any], npt.NDArray[np.float64]]
    sources: tuple[str, ...] | None
    scale: OutputScale


@dataclass(frozen=True)
class OutcomeModel:
    """The model behind one outcome: what it predicts from which raw features."""

    outcome: Outcome
    name: str  # what reports call its output: the artifact part ("approval") or the outcome
    estimator: Any  # predicts from a frame of the raw features
    features: tuple[str, ...]

    def explainable(self, probe: pd.DataFrame) -> Explainable:
        """Split the model for SHAP; ``probe`` rows (raw features) identify the output's scale."""
        return _split(self, probe)


@dataclass(frozen=True)
class LoadedArtifact:
    """A model file, opened: its version, its raw features and one model per outcome."""

    source: str
    version: str | None
    features: tuple[str, ...]
    models: Mapping[Outcome, OutcomeModel]
    digest: str | None = None  # sha256 of the file it was read from
    trained_on: Mapping[str, Any] = field(default_factory=dict)

    def model(self, outcome: Outcome) -> OutcomeModel:
        """The model for ``outcome``, or a :class:`ModelFileError` naming what the file holds."""
        if outcome not in self.models:
            raise ModelFileError(
                f"{self.source} has no {outcome} model (it holds: {', '.join(self.models)})"
            )
        return self.models[outcome]


def load_artifact(store: ArtifactStore, name: str, sha256: str | None) -> LoadedArtifact:
    """Open a registered artifact by name and recorded digest (see ``store/artifacts.py``).

    :class:`ModelFileError` says clearly why it cannot be used: outside the artifacts
    directory, changed since registration, a refused format, or not a usable model.
    """
    try:
        content = store.load(name, sha256)
    except ArtifactError as error:
        raise ModelFileError(str(error)) from error
    except Exception as error:  # a corrupt file: every failure means the same to the caller
        raise ModelFileError(
            f"model file {name} cannot be loaded ({type(error).__name__}: {error})"
        ) from error
    return read_artifact(content, source=name, digest=sha256)


def open_model_file(path: str | Path, *, allow_pickle: bool = False) -> LoadedArtifact:
    """Open a file the user names themselves (the ``fairlane audit`` commands, notebooks).

    Still the one loader: the file's folder is the store, its digest is taken now, and a
    pickle is refused unless ``allow_pickle``. Never for names that come from a caller.
    """
    store, name = local_store(Path(path), allow_pickle=allow_pickle)
    try:
        digest = store.digest(name)
    except ArtifactError as error:
        raise ModelFileError(str(error)) from error
    return load_artifact(store, name, digest)


def read_artifact(content: Any, *, source: str, digest: str | None = None) -> LoadedArtifact:
    """Interpret an unpickled object: an artifact dict or a bare fitted estimator."""
    if isinstance(content, Mapping):
        return _read_artifact_dict(content, source, digest)
    outcome = _outcome_of(content, source)
    features = _feature_names(content, source)
    model = OutcomeModel(outcome=outcome, name=outcome, estimator=content, features=features)
    return LoadedArtifact(
        source=source, version=None, features=features, models={outcome: model}, digest=digest
    )


def _read_artifact_dict(
    content: Mapping[str, Any], source: str, digest: str | None
) -> LoadedArtifact:
    missing = [key for key in _ARTIFACT_REQUIRED if key not in content]
    parts = [part for part in ARTIFACT_PARTS if part in content]
    if missing or not parts:
        raise ModelFileError(
            f"{source} is a dict but not a model artifact: it needs {list(_ARTIFACT_REQUIRED)} "
            f"and at least one of {list(ARTIFACT_PARTS)}; it has {sorted(map(str, content))}"
        )
    features = content["features"]
    if not isinstance(features, Sequence) or not all(isinstance(f, str) for f in features):
        raise ModelFileError(f"{source}: 'features' must be a list of column names")
    models: dict[Outcome, OutcomeModel] = {}
    for part in parts:
        expected = ARTIFACT_PARTS[part]
        outcome = _outcome_of(content[part], f"{source} part {part!r}")
        if outcome != expected:
            raise ModelFileError(f"{source} part {part!r} should be a {expected} model")
        if outcome in models:
            raise ModelFileError(f"{source} holds two {outcome} models ({parts})")
        models[outcome] = OutcomeModel(
            outcome=outcome, name=part, estimator=content[part], features=tuple(features)
        )
    trained_on = content.get("trained_on")
    return LoadedArtifact(
        source=source,
        version=str(content["version"]),
        features=tuple(features),
        models=models,
        digest=digest,
        trained_on=dict(trained_on) if isinstance(trained_on, Mapping) else {},
    )


def _outcome_of(estimator: Any, source: str) -> Outcome:
    """Decision for a binary classifier, amount for a regressor; anything else is refused."""
    if not callable(getattr(estimator, "predict", None)):
        raise ModelFileError(f"{source} is not a model ({type(estimator).__name__} has no predict)")
    if not (is_classifier(estimator) or is_regressor(estimator)):
        raise ModelFileError(
            f"{source} is neither a classifier nor a regressor ({type(estimator).__name__})"
        )
    try:
        check_is_fitted(estimator)
    except NotFittedError as error:
        raise ModelFileError(f"{source} is not fitted") from error
    if is_regressor(estimator):
        return "amount"
    classes = getattr(estimator, "classes_", None)
    if classes is None or len(classes) != 2:
        raise ModelFileError(f"{source} must be a binary classifier to make a decision")
    return "decision"


def _feature_names(estimator: Any, source: str) -> tuple[str, ...]:
    names = getattr(estimator, "feature_names_in_", None)
    if names is None:
        raise ModelFileError(
            f"{source} does not record which columns it was fitted on; "
            "fit it on a pandas DataFrame so the audit knows its features"
        )
    return tuple(str(name) for name in names)


# --- splitting a model where SHAP can see it -------------------------------------------------


def _split(model: OutcomeModel, probe: pd.DataFrame) -> Explainable:
    features = list(model.features)
    transform: Callable[[pd.DataFrame], Any]
    if isinstance(model.estimator, Pipeline) and len(model.estimator) > 1:
        preprocess = model.estimator[:-1]
        final = model.estimator[-1]

        def transform(frame: pd.DataFrame) -> Any:
            return preprocess.transform(frame[features])

        sources = _trace_pipeline(preprocess, features)
    else:
        final = model.estimator

        def transform(frame: pd.DataFrame) -> Any:
            return frame[features]

        sources = tuple(features)
    if sources is not None and not _is_numeric(transform(probe)):
        sources = None

    explained, scale = _unwrap_target(final, model.name)
    if model.outcome == "decision":
        scale = _classifier_scale(model.estimator, probe[features], model.name)
    margin = _margin_function(model.outcome, explained)
    return Explainable(
        features=model.features,
        estimator=explained,
        output=lambda frame: margin(transform(frame)),
        encode=lambda frame: _dense(transform(frame)),
        margin=margin,
        sources=sources,
        scale=scale,
    )


def _is_numeric(values: Any) -> bool:
    if isinstance(values, pd.DataFrame):
        return all(pd.api.types.is_numeric_dtype(dtype) for dtype in values.dtypes)
    return sparse.issparse(values) or np.issubdtype(np.asarray(values).dtype, np.number)


def _dense(values: Any) -> npt.NDArray[np.float64]:
    if sparse.issparse(values):
        values = values.toarray()
    return np.asarray(values, dtype=np.float64)


def _as_fitted_input(estimator: Any, values: Any) -> Any:
    """An estimator fitted on named columns wants a frame back (else scikit-learn warns)."""
    names = getattr(estimator, "feature_names_in_", None)
    if names is None or isinstance(values, pd.DataFrame):
        return values
    return pd.DataFrame(values, columns=names)


def _margin_function(outcome: Outcome, estimator: Any) -> Callable[[Any], npt.NDArray[np.float64]]:
    """The output SHAP explains: the decision function, else P(positive), else the 0/1 label."""
    if outcome == "amount":
        method, column = estimator.predict, None
    elif callable(getattr(estimator, "decision_function", None)):
        method, column = estimator.decision_function, None
    elif callable(getattr(estimator, "predict_proba", None)):
        method, column = estimator.predict_proba, 1
    else:
        method, column = estimator.predict, None

    def margin(values: Any) -> npt.NDArray[np.float64]:
        output = np.asarray(method(_as_fitted_input(estimator, values)), dtype=np.float64)
        return output[:, column] if column is not None else output

    return margin


def _unwrap_target(final: Any, name: str) -> tuple[Any, OutputScale]:
    """A regressor trained on a transformed target is explained in that target's space.

    Explaining the inner regressor keeps SHAP exact and additive; the scale says how to
    read it back (on a log scale a SHAP value of -0.35 multiplies the amount by 0.70).
    """
    if not isinstance(final, TransformedTargetRegressor):
        return final, OutputScale(
            name=name, kind="identity", note=f"SHAP values are in the units of the {name}"
        )
    func = final.func
    if func in (np.log, np.log1p):
        approximate = " (log1p: for amounts well above 1)" if func is np.log1p else ""
        return final.regressor_, OutputScale(
            name=f"log-{name}",
            kind="log",
            note=(
                f"SHAP values are in log-{name}: a value of -0.35 multiplies the {name} by "
                f"exp(-0.35) = 0.70{approximate}"
            ),
        )
    what = getattr(func, "__name__", None) or type(final.transformer_).__name__
    return final.regressor_, OutputScale(
        name=f"{what}({name})",
        kind="transformed",
        note=f"SHAP values are in the regressor's transformed target space, {what}({name})",
    )


def _classifier_scale(classifier: Any, probe: pd.DataFrame, name: str) -> OutputScale:
    """Log-odds if the decision function is verified to be the logit of P(positive) on ``probe``."""
    has_decision = callable(getattr(classifier, "decision_function", None))
    has_proba = callable(getattr(classifier, "predict_proba", None))
    if has_decision and has_proba:
        logit = np.asarray(classifier.decision_function(probe), dtype=np.float64)
        if np.allclose(expit(logit), classifier.predict_proba(probe)[:, 1], atol=1e-6):
            return OutputScale(
                name=f"log-odds of {name}",
                kind="log_odds",
                note=(
                    f"SHAP values are in log-odds of {name}: a value of -0.35 multiplies the "
                    f"odds of {name} by exp(-0.35) = 0.70"
                ),
            )
    if has_decision:
        return OutputScale(
            name=f"decision function of {name}",
            kind="margin",
            note="SHAP values are in the classifier's decision-function units (not log-odds)",
        )
    if has_proba:
        return OutputScale(
            name=f"probability of {name}",
            kind="probability",
            note=f"SHAP values are in probability of {name}: -0.05 is five points lower",
        )
    return OutputScale(
        name=f"predicted {name} (0/1)",
        kind="label",
        note="the classifier gives only labels: SHAP values share out a 0/1 output",
    )


# --- tracing encoded columns back to raw features ----------------------------------------------


def _trace_pipeline(preprocess: Pipeline, features: list[str]) -> tuple[str, ...] | None:
    """Raw feature behind each encoded column: a column transformer, then one-to-one steps."""
    steps = [step for _, step in preprocess.steps if step not in (None, "passthrough")]
    if not steps:
        return tuple(features)
    first, rest = steps[0], steps[1:]
    if isinstance(first, ColumnTransformer):
        sources = _trace_column_transformer(first)
    else:
        sources = _trace_one_to_one(first, features)
    names = _names_out(first, features)
    for step in rest:
        if sources is None or names is None or _trace_one_to_one(step, names) is None:
            return None
    return tuple(sources) if sources is not None else None


def _names_out(step: Any, names: list[str]) -> list[str] | None:
    try:
        return [str(c) for c in step.get_feature_names_out(names)]
    except (AttributeError, ValueError):  # no names out, or fitted on other names
        return None


def _trace_one_to_one(step: Any, names: list[str]) -> list[str] | None:
    """The inputs again if the step maps each column to one column of the same name."""
    return list(names) if _names_out(step, names) == list(names) else None


def _trace_column_transformer(transformer: ColumnTransformer) -> list[str] | None:
    inputs = [str(c) for c in transformer.feature_names_in_]
    width = sum(s.stop - s.start for s in transformer.output_indices_.values())
    sources: list[str | None] = [None] * width
    for name, fitted, columns in transformer.transformers_:
        block = transformer.output_indices_[name]
        if block.stop == block.start:
            continue
        traced = _trace_block(fitted, _column_names(columns, inputs), block.stop - block.start)
        if traced is None:
            return None
        sources[block] = traced
    if any(source is None for source in sources):
        return None
    return [str(source) for source in sources]


def _column_names(columns: Any, inputs: list[str]) -> list[str]:
    """A column transformer's column selection (names, positions, slice or mask) as names."""
    if isinstance(columns, str):
        return [columns]
    if isinstance(columns, slice):
        return inputs[columns]
    selection = np.asarray(columns)
    if selection.dtype == bool:
        return [name for name, keep in zip(inputs, selection, strict=True) if keep]
    if np.issubdtype(selection.dtype, np.integer):
        return [inputs[i] for i in selection]
    return [str(c) for c in selection]


def _trace_block(fitted: Any, columns: list[str], width: int) -> list[str] | None:
    if isinstance(fitted, str):  # "passthrough" (the fitted "drop" has no output block)
        return columns if len(columns) == width else None
    if len(columns) == 1:
        return columns * width
    if isinstance(fitted, OneHotEncoder):
        counts = _one_hot_widths(fitted)
        if sum(counts) != width:
            return None
        return [column for column, count in zip(columns, counts, strict=True) for _ in range(count)]
    traced = _trace_one_to_one(fitted, columns)
    return traced if traced is not None and len(traced) == width else None


def _one_hot_widths(encoder: OneHotEncoder) -> list[int]:
    """Output columns per input of a fitted one-hot encoder, from its public fitted attributes."""
    widths = [len(categories) for categories in encoder.categories_]
    infrequent = getattr(encoder, "infrequent_categories_", None)
    for i in range(len(widths)):
        if infrequent is not None and infrequent[i] is not None:
            widths[i] -= len(infrequent[i]) - 1
        if encoder.drop_idx_ is not None and encoder.drop_idx_[i] is not None:
            widths[i] -= 1
    return widths
