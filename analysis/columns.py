"""What each column of a data set means to the model: read from its manifest, or given by hand.

Remediation and validation work on any tabular model because they never name a column
themselves: the protected attributes, strata (columns, or bins of a numeric feature),
outcomes and label all come from here, built from the model's manifest
(:meth:`ModelColumns.of`) or, for the ``fairlane audit`` commands, from flags.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd

from analysis.data import require_columns
from contracts.model import ModelManifest, StratumBins
from fairness.outcomes import combine_strata

BINNED_PREFIX = "stratum:"
"""Column name prefix of a stratum derived from bins, so it can never shadow a feature."""


@dataclass(frozen=True)
class ModelColumns:
    """The roles of a data set's columns for one model.

    ``strata`` are names: a column of the data, or a key of ``bins`` (a stratum derived
    from a numeric feature, e.g. income bands). ``label`` is the ground truth the decision
    is judged against; ``decision`` and ``amount`` name the outcomes (None: the model has
    no such outcome).
    """

    protected: tuple[str, ...]
    strata: tuple[str, ...] = ()
    bins: Mapping[str, StratumBins] = field(default_factory=dict)
    label: str | None = None
    decision: str | None = None
    amount: str | None = None

    def __post_init__(self) -> None:
        if not self.protected:
            raise ValueError("name at least one protected attribute")
        unknown = [name for name in self.bins if name not in self.strata]
        if unknown:
            raise ValueError(f"binned strata {unknown} are not among the strata {self.strata}")

    @classmethod
    def of(cls, manifest: ModelManifest) -> ModelColumns:
        """The roles the manifest declares."""
        return cls(
            protected=tuple(manifest.protected_attributes),
            strata=tuple(manifest.strata),
            bins=dict(manifest.bins),
            label=manifest.label,
            decision=manifest.outcomes.decision,
            amount=manifest.outcomes.amount,
        )

    @property
    def stratum_sources(self) -> list[str]:
        """The data columns the strata are read or derived from."""
        return list(
            dict.fromkeys(
                self.bins[name].feature if name in self.bins else name for name in self.strata
            )
        )

    @property
    def stratum_columns(self) -> list[str]:
        """The strata as columns of :meth:`with_strata`'s frame."""
        return [BINNED_PREFIX + name if name in self.bins else name for name in self.strata]

    def require(self, frame: pd.DataFrame, extra: Sequence[str], source: str) -> None:
        """``frame`` has the protected, strata source and ``extra`` columns, or DataFileError."""
        require_columns(
            list(frame.columns), [*self.protected, *self.stratum_sources, *extra], source
        )

    def with_strata(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` with each binned stratum computed into a column of its own."""
        if not self.bins:
            return frame
        derived = {
            BINNED_PREFIX + name: binned_labels(frame[binned.feature], binned)
            for name, binned in self.bins.items()
        }
        return frame.assign(**derived)

    def stratum_labels(self, frame: pd.DataFrame) -> npt.NDArray[np.str_]:
        """One stratum label per row (the strata crossed); one stratum for all without strata."""
        if not self.strata:
            return np.full(len(frame), "all")
        labels = [
            binned_labels(frame[self.bins[name].feature], self.bins[name])
            if name in self.bins
            else frame[name].to_numpy()
            for name in self.strata
        ]
        return np.asarray(combine_strata(*labels))


def binned_labels(values: pd.Series, binned: StratumBins) -> npt.NDArray[np.str_]:
    """The label of the bin each value falls in (vectorised :meth:`StratumBins.label`)."""
    numbers = pd.to_numeric(values, errors="raise").to_numpy(dtype=np.float64)
    if np.isnan(numbers).any():
        raise ValueError(f"{binned.feature!r} has missing values: no bin can hold them")
    edges = np.asarray([b.at_least for b in binned.bins[1:]], dtype=np.float64)
    names = np.asarray([b.label for b in binned.bins])
    labels: npt.NDArray[np.str_] = names[np.searchsorted(edges, numbers, side="right")]
    return labels
