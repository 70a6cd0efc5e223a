"""The rules-based fallback: what answers live requests while a model is contained.

Deliberately simple and auditable: a handful of thresholds and a limit table by
income band and credit-history band. Its inputs are income, credit history and
debt ratio only, so it cannot look at the group or at a proxy of it like zip code.
"""

from __future__ import annotations

from demo.dataset import CREDIT_BAND_LABELS, INCOME_BAND_LABELS, credit_band, income_band

RULES_VERSION = "rules-v1"

MAX_DEBT_RATIO = 0.45
MIN_CREDIT_HISTORY_YEARS = 1.0
MIN_INCOME = 18_000.0

# Limits per stratum, in the order of the strata labels the fairness maths uses.
BASE_LIMIT_BY_INCOME_BAND: dict[str, float] = dict(
    zip(INCOME_BAND_LABELS, (2_000.0, 5_000.0, 9_000.0, 14_000.0, 20_000.0), strict=True)
)
LIMIT_FACTOR_BY_CREDIT_BAND: dict[str, float] = dict(
    zip(CREDIT_BAND_LABELS, (0.6, 0.8, 1.0, 1.2), strict=True)
)


def rules_decision(
    income: float, credit_history_years: float, debt_ratio: float
) -> tuple[bool, float]:
    """(approved, credit_limit) by the published rules; a decline has a limit of 0."""
    approved = (
        debt_ratio <= MAX_DEBT_RATIO
        and credit_history_years >= MIN_CREDIT_HISTORY_YEARS
        and income >= MIN_INCOME
    )
    if not approved:
        return False, 0.0
    limit = (
        BASE_LIMIT_BY_INCOME_BAND[income_band(income)]
        * LIMIT_FACTOR_BY_CREDIT_BAND[credit_band(credit_history_years)]
    )
    return True, limit
