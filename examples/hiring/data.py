"""Synthetic job applicants with a bias planted through an innocuous-looking column.

``commute_zone`` reads like logistics, but where people live follows race: most black
applicants live in zones Z4-Z5, most others in Z0-Z3. Historical recruiters hired fewer
applicants from Z4-Z5 at equal qualification, so ``hired`` is biased against black
applicants through the zone alone; ``qualified`` (the label, say a structured
work-sample review done later) does not depend on race, sex or zone. A model trained on
``hired`` that never sees ``race`` learns the bias back through ``commute_zone``.

One seeded generator draws everything, so a seed names a data set.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

RACES: tuple[str, ...] = ("white", "black", "asian", "indigenous")
RACE_SHARES: tuple[float, ...] = (0.58, 0.26, 0.14, 0.02)
"""One group is about 2% of rows: too small for some slices, which the audit must say."""
SEXES: tuple[str, ...] = ("female", "male")
ZONES: tuple[str, ...] = ("Z0", "Z1", "Z2", "Z3", "Z4", "Z5")
SEGREGATED_ZONES: tuple[str, ...] = ("Z4", "Z5")
DEGREES: tuple[str, ...] = ("none", "bachelor", "master")

FEATURES: tuple[str, ...] = ("years_experience", "test_score", "degree_level", "commute_zone")
"""What the model takes; race and sex are never features."""

_BLACK_IN_SEGREGATED = 0.88
_OTHERS_IN_SEGREGATED = 0.05
_SEGREGATED_HIRE_LOGIT = -2.2
"""How much less likely recruiters hired from Z4-Z5 at equal qualification (log-odds)."""


def generate_applicants(n: int, seed: int) -> pd.DataFrame:
    """``n`` applicants: id, features, race, sex, label ``qualified``, decision ``hired``."""
    rng = np.random.default_rng(seed)
    race = rng.choice(RACES, size=n, p=RACE_SHARES)
    sex = rng.choice(SEXES, size=n)
    segregated = rng.random(n) < np.where(
        race == "black", _BLACK_IN_SEGREGATED, _OTHERS_IN_SEGREGATED
    )
    zone = np.where(
        segregated,
        rng.choice(SEGREGATED_ZONES, size=n),
        rng.choice(ZONES[:4], size=n),
    )
    years = np.round(rng.gamma(2.0, 3.0, size=n).clip(0, 35), 1)
    score = np.round(rng.normal(65, 12, size=n).clip(0, 100), 1)
    degree = rng.choice(DEGREES, size=n, p=(0.3, 0.5, 0.2))
    merit = (
        0.35 * years
        + 0.12 * (score - 65)
        + np.select([degree == "bachelor", degree == "master"], [0.6, 1.1], 0.0)
    )
    qualified = rng.random(n) < _sigmoid(merit - 2.2)
    hire_logit = 2.5 * (qualified.astype(float) - 0.5) + 0.15 * (merit - 2.2)
    hire_logit = hire_logit + np.where(segregated, _SEGREGATED_HIRE_LOGIT, 0.0)
    hired = rng.random(n) < _sigmoid(hire_logit)
    return pd.DataFrame(
        {
            "applicant_id": [f"app-{seed}-{i:06d}" for i in range(n)],
            "years_experience": years,
            "test_score": score,
            "degree_level": degree,
            "commute_zone": zone,
            "race": race,
            "sex": sex,
            "qualified": qualified,
            "hired": hired,
        }
    )


def _sigmoid(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return np.asarray(1.0 / (1.0 + np.exp(-x)), dtype=np.float64)
