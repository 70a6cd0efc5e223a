"""Synthetic credit applicants with the reference case's bias planted in them.

The bias is built the way it arises in practice, not as a rule on the protected
attribute: group B lives mostly in a handful of zip codes, and those zip codes were
historically redlined (lower approval, credit limits about a third lower at the same
income and credit history). A model that never sees ``group`` but does see
``zip_code`` learns the bias back, which is exactly what Fairlane's audit has to find.

Everything is drawn from one seeded generator, so a seed names a data set.
"""

from __future__ import annotations

import os
from bisect import bisect_right
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

ZIP_CODES: tuple[str, ...] = tuple(f"Z{i:02d}" for i in range(20))
REDLINED_ZIP_CODES: tuple[str, ...] = ZIP_CODES[14:]
GROUPS: tuple[str, str] = ("A", "B")

INCOME_BAND_EDGES: tuple[float, ...] = (
    20_000.0,
    30_000.0,
    40_000.0,
    50_000.0,
    60_000.0,
    75_000.0,
    100_000.0,
    150_000.0,
)
INCOME_BAND_LABELS: tuple[str, ...] = (
    "<20k",
    "20-30k",
    "30-40k",
    "40-50k",
    "50-60k",
    "60-75k",
    "75-100k",
    "100-150k",
    "150k+",
)
CREDIT_BAND_EDGES: tuple[float, ...] = (2.0, 5.0, 10.0)
CREDIT_BAND_LABELS: tuple[str, ...] = ("<2y", "2-5y", "5-10y", "10y+")

COLUMNS: tuple[str, ...] = (
    "applicant_id",
    "income",
    "credit_history_years",
    "debt_ratio",
    "zip_code",
    "group",
    "income_band",
    "credit_band",
    "approved",
    "credit_limit",
)

# The planted history. Group B: 35% of applicants, 90% of them in redlined zip codes;
# group A: 5% in redlined zip codes. Limits there were cut by 35% and approval odds
# lowered, at identical income, credit history and debt; since some of each group live
# on the other side, group B ends up about 30% below group A within each stratum.
_SHARE_B = 0.35
_B_IN_REDLINED = 0.90
_A_IN_REDLINED = 0.05
_REDLINED_LIMIT_FACTOR = 0.65
_REDLINED_APPROVAL_LOGIT = -0.6


def income_band(income: float) -> str:
    """The income stratum label of one yearly income (the strata fairness is judged in)."""
    return INCOME_BAND_LABELS[bisect_right(INCOME_BAND_EDGES, income)]


def credit_band(credit_history_years: float) -> str:
    """The credit-history stratum label of one applicant."""
    return CREDIT_BAND_LABELS[bisect_right(CREDIT_BAND_EDGES, credit_history_years)]


def income_bands(incomes: npt.ArrayLike) -> npt.NDArray[np.str_]:
    """:func:`income_band` over an array, with the same edges (searchsorted == bisect_right)."""
    index = np.searchsorted(INCOME_BAND_EDGES, np.asarray(incomes, dtype=float), side="right")
    return np.asarray(INCOME_BAND_LABELS)[index]


def credit_bands(credit_history_years: npt.ArrayLike) -> npt.NDArray[np.str_]:
    """:func:`credit_band` over an array, with the same edges."""
    years = np.asarray(credit_history_years, dtype=float)
    return np.asarray(CREDIT_BAND_LABELS)[np.searchsorted(CREDIT_BAND_EDGES, years, side="right")]


def generate_applicants(n: int, seed: int) -> pd.DataFrame:
    """Draw ``n`` applicants with their historical decisions; the same seed gives the same rows."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    rng = np.random.default_rng(seed)

    is_b = rng.random(n) < _SHARE_B
    in_redlined = rng.random(n) < np.where(is_b, _B_IN_REDLINED, _A_IN_REDLINED)
    fair_zips = np.asarray(ZIP_CODES[: len(ZIP_CODES) - len(REDLINED_ZIP_CODES)])
    redlined_zips = np.asarray(REDLINED_ZIP_CODES)
    zip_code = np.where(
        in_redlined,
        redlined_zips[rng.integers(0, len(redlined_zips), n)],
        fair_zips[rng.integers(0, len(fair_zips), n)],
    )

    # Group B earns somewhat less on average, so unconditional comparisons overstate the
    # bias; the conditional (within income and credit strata) measure is the honest one.
    log_income = rng.normal(np.log(58_000.0) - 0.12 * is_b, 0.55)
    income = np.round(np.clip(np.exp(log_income), 15_000.0, 250_000.0), 2)
    credit_history_years = np.round(np.clip(rng.gamma(2.0, 4.0, n), 0.0, 30.0), 1)
    debt_ratio = np.round(rng.beta(2.0, 5.0, n), 3)

    merit = (
        1.3 * np.log(income / 45_000.0)
        + 0.15 * np.minimum(credit_history_years, 12.0)
        - 5.0 * debt_ratio
        + 1.2
    )
    approval_logit = merit + _REDLINED_APPROVAL_LOGIT * in_redlined
    approved = rng.random(n) < 1.0 / (1.0 + np.exp(-approval_logit))

    deserved_limit = (
        0.22
        * income
        * (0.55 + 0.45 * np.minimum(credit_history_years, 15.0) / 15.0)
        * (1.0 - 0.6 * debt_ratio)
    )
    limit = deserved_limit * np.where(in_redlined, _REDLINED_LIMIT_FACTOR, 1.0)
    limit *= rng.lognormal(0.0, 0.08, n)
    credit_limit = np.where(approved, np.round(limit, -2), 0.0)

    return pd.DataFrame(
        {
            "applicant_id": [f"app-{seed}-{i:07d}" for i in range(n)],
            "income": income,
            "credit_history_years": credit_history_years,
            "debt_ratio": debt_ratio,
            "zip_code": zip_code,
            "group": np.where(is_b, "B", "A"),
            "income_band": income_bands(income),
            "credit_band": credit_bands(credit_history_years),
            "approved": approved,
            "credit_limit": credit_limit,
        },
        columns=list(COLUMNS),
    )


def write_dataset(path: Path, n: int, seed: int) -> Path:
    """Write ``generate_applicants(n, seed)`` as CSV, atomically, so a reader never sees half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    generate_applicants(n, seed).to_csv(partial, index=False)
    os.replace(partial, path)
    return path


def read_dataset(path: Path) -> pd.DataFrame:
    """Read a CSV written by :func:`write_dataset` with the column types it was written with."""
    return pd.read_csv(
        path,
        dtype={
            "applicant_id": str,
            "zip_code": str,
            "group": str,
            "income_band": str,
            "credit_band": str,
            "approved": bool,
        },
    )
