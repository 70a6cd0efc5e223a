"""How a canary spends its false-rollback budget over repeated looks at accumulating data.

A ramp step is analysed every interval (hourly by default) on the *cumulative*
decisions of the step so far. Testing each look at the full alpha would roll back a
fair candidate far more often than alpha: with a look an hour for a week, one of the
168 looks crosses a 95% interval by chance almost surely. So every look gets its own
slice of alpha, and the slices of the whole ramp add up to at most alpha.

Why a union bound over fixed slices rather than a group-sequential boundary
(O'Brien-Fleming, a Lan-DeMets spending function): those rely on the test statistics
of successive looks following a known joint normal law, which the analysis does not
have here (Wilson and MOVER intervals on small groups, delta-method ratios, many
metrics, traffic whose mix shifts over a week), and on knowing the information
fraction of each look, which a bake that can be paused or extended does not. The
union (Bonferroni) bound holds under any correlation between looks, so the
guarantee survives all of that; the price is some power, which the ramp buys back
with traffic (later steps see 25-100% of it).

The method, in answer to "sequential method or fixed evaluation points": a
Bonferroni alpha-spending over every look, with

* alpha split equally across ramp steps (each step's rollback is a separate claim);
* within a step, 90% spent flat over the planned looks, the same slice at every
  look (Pocock-like): harm in the first hours of a step is caught as readily as at
  the end, where an O'Brien-Fleming shape would spend almost nothing early;
* the remaining 10% over looks beyond the plan (a paused or extended bake keeps
  analysing), the j-th extra look getting 0.1 * (6 / pi^2) / j^2, a series that
  sums to exactly the 10% however many extra looks there are.
"""

from __future__ import annotations

import math

PLANNED_SHARE = 0.9
"""Share of a step's alpha spent on its planned looks; the rest covers looks beyond them."""

_TAIL_NORMALISER = 6.0 / math.pi**2  # 1 / sum(1 / j^2) over j >= 1


def look_alpha(alpha: float, ramp_steps: int, planned_looks: int, look: int) -> float:
    """Family-wise alpha for the breach tests of look ``look`` (1-based) of one ramp step.

    Summed over every look of every step, planned or not, the result never exceeds
    ``alpha``: ``alpha / ramp_steps`` per step, of which ``PLANNED_SHARE`` is spread
    evenly over the ``planned_looks`` and the rest over a convergent tail.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    if ramp_steps < 1:
        raise ValueError(f"ramp_steps must be at least 1, got {ramp_steps}")
    if planned_looks < 1:
        raise ValueError(f"planned_looks must be at least 1, got {planned_looks}")
    if look < 1:
        raise ValueError(f"look is 1-based, got {look}")
    per_step = alpha / ramp_steps
    if look <= planned_looks:
        return per_step * PLANNED_SHARE / planned_looks
    beyond = look - planned_looks
    return per_step * (1.0 - PLANNED_SHARE) * _TAIL_NORMALISER / beyond**2
