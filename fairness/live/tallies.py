"""A window's decisions reduced to what the live metrics need, per side and group.

One plain pass over the cells (the hot loop of a simulated study: no pandas), then
:meth:`Tally.settle` adds the strata up and pools the spread of approved amounts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from contracts.metrics import DecisionCell, Side


@dataclass(slots=True)
class Moments:
    """Count, sum and sum of squares of approved amounts; mean and cv^2 once settled."""

    n: int = 0
    total: float = 0.0
    squares: float = 0.0
    mean: float = 0.0
    cv2: float | None = None  # squared coefficient of variation of one amount

    def settle(self) -> None:
        if self.n:
            self.mean = self.total / self.n
        if self.n >= 2 and self.mean > 0:
            variance = max(self.squares - self.total**2 / self.n, 0.0) / (self.n - 1)
            self.cv2 = variance / self.mean**2


@dataclass(slots=True)
class Tally:
    """One side's decisions for one group, reduced to what the metrics need."""

    decisions: int = 0
    approved: int = 0
    positives: int = 0  # decisions whose outcome turned out good
    approved_positives: int = 0
    negatives: int = 0
    approved_negatives: int = 0
    strata: dict[str, Moments] = field(default_factory=dict)  # approved amounts per stratum
    amounts: Moments = field(default_factory=Moments)  # all strata, once settled
    spread: float | None = None  # cv^2 of an approved amount inside a stratum, pooled

    def settle(self) -> None:
        """Add the strata up, and pool the within-stratum cv^2, weighted by degrees of freedom.

        A stratum cell with a single amount, or whose amounts are all equal, borrows
        it: a stratum that happens to hold identical limits must not make an
        interval collapse.
        """
        weighted = freedom = 0.0
        amounts = self.amounts
        for cell in self.strata.values():
            cell.settle()
            if cell.cv2 is not None:
                weighted += (cell.n - 1) * cell.cv2
                freedom += cell.n - 1
            amounts.n += cell.n
            amounts.total += cell.total
            amounts.squares += cell.squares
        self.spread = weighted / freedom if freedom else None
        amounts.settle()

    @property
    def labelled(self) -> int:
        return self.positives + self.negatives

    @property
    def errors(self) -> int:
        """Good outcomes declined plus bad outcomes approved."""
        return self.positives - self.approved_positives + self.approved_negatives


def tally_sides(cells: Sequence[DecisionCell]) -> dict[Side, dict[str, Tally]]:
    """One pass over the cells (the hot loop of a simulated study: keep it plain)."""
    stable: dict[str, Tally] = {}
    sides: dict[Side, dict[str, Tally]] = {Side.CANDIDATE: {}, Side.STABLE: stable}
    for cell in cells:
        tallies = sides[cell.side]
        tally = tallies.get(cell.group)
        if tally is None:
            tally = tallies[cell.group] = Tally()
        count, outcome = cell.count, cell.outcome
        tally.decisions += count
        if cell.approved:
            tally.approved += count
            if outcome is True:
                tally.positives += count
                tally.approved_positives += count
            elif outcome is False:
                tally.negatives += count
                tally.approved_negatives += count
            if tallies is stable:
                continue  # amounts are compared between groups of the candidate only
            moments = tally.strata.get(cell.stratum)
            if moments is None:
                moments = tally.strata[cell.stratum] = Moments()
            moments.n += count
            moments.total += cell.amount_sum
            moments.squares += cell.amount_sumsq
        elif outcome is True:
            tally.positives += count
        elif outcome is False:
            tally.negatives += count
    return sides


def pooled(tallies: Iterable[Tally]) -> Tally:
    pooled = Tally()
    for tally in tallies:
        pooled.decisions += tally.decisions
        pooled.approved += tally.approved
        pooled.positives += tally.positives
        pooled.approved_positives += tally.approved_positives
        pooled.negatives += tally.negatives
        pooled.approved_negatives += tally.approved_negatives
    return pooled
