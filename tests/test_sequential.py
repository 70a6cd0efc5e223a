"""Alpha spending across the looks of a canary ramp: the budget holds however long it runs."""

from __future__ import annotations

import math

import pytest

from fairness.sequential import PLANNED_SHARE, look_alpha


@pytest.mark.parametrize(("steps", "planned"), [(5, 12), (5, 168), (1, 1), (3, 240)])
def test_every_look_of_every_step_stays_within_alpha(steps: int, planned: int) -> None:
    alpha = 0.05
    per_step = [look_alpha(alpha, steps, planned, look) for look in range(1, planned + 1001)]
    total = steps * math.fsum(per_step)
    assert total <= alpha
    # The tail converges to the whole budget: nothing is left unspent for nothing.
    assert total == pytest.approx(alpha, rel=1e-3)


def test_a_step_never_spends_more_than_its_share_however_many_looks() -> None:
    extra = math.fsum(look_alpha(0.05, 5, 12, 12 + j) for j in range(1, 1_000_001))
    assert extra <= 0.05 / 5 * (1 - PLANNED_SHARE)
    assert extra == pytest.approx(0.05 / 5 * (1 - PLANNED_SHARE), rel=1e-5)


def test_planned_looks_share_ninety_percent_evenly() -> None:
    planned = [look_alpha(0.05, 5, 12, look) for look in range(1, 13)]
    assert planned == [pytest.approx(0.05 / 5 * 0.9 / 12)] * 12
    assert len(set(planned)) == 1


def test_looks_beyond_the_plan_get_a_shrinking_tail() -> None:
    first, second = look_alpha(0.05, 5, 12, 13), look_alpha(0.05, 5, 12, 14)
    assert first == pytest.approx(0.05 / 5 * 0.1 * 6 / math.pi**2)
    assert second == pytest.approx(first / 4)
    assert first < look_alpha(0.05, 5, 12, 12)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ((0.0, 5, 12, 1), "alpha must lie in"),
        ((1.0, 5, 12, 1), "alpha must lie in"),
        ((0.05, 0, 12, 1), "ramp_steps must be at least 1"),
        ((0.05, 5, 0, 1), "planned_looks must be at least 1"),
        ((0.05, 5, 12, 0), "look is 1-based"),
    ],
)
def test_bad_arguments_are_refused(arguments: tuple[float, int, int, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        look_alpha(*arguments)
