"""The rules-based fallback: what answers live requests while a model is contained.

Deliberately simple and auditable: a handful of thresholds and a limit table by
income band and credit-history band. Its inputs are income, credit history and
debt ratio only, so it cannot look at the group or at a proxy of it like zip code.
"""

from __future__ import annotations

from bisect import bisect_right

from demo.dataset import CREDIT_BAND_LABELS, credit_band

RULES_VERSION = "rules-v1"

MAX_DEBT_RATIO = 0.45
MIN_CREDIT_HISTORY_YEARS = 1.0
MIN_INCOME = 18_000.0

# The published limit schedule: a base limit per income tier (its own tiers, a business
# policy, independent of the strata fairness is measured in), scaled by credit history.
INCOME_TIER_FLOORS: tuple[float, ...] = (30_000.0, 60_000.0, 100_000.0, 150_000.0)
BASE_LIMIT_BY_TIER: tuple[float, ...] = (2_000.0, 5_000.0, 9_000.0, 14_000.0, 20_000.0)
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
        BASE_LIMIT_BY_TIER[bisect_right(INCOME_TIER_FLOORS, income)]
        * LIMIT_FACTOR_BY_CREDIT_BAND[credit_band(credit_history_years)]
    )
    return True, limit
