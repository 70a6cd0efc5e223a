"""Known answers for representation: counts, shares, base rates and missingness by hand,
intersections, too-small groups, reference populations, and agreement with fairlearn."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import MetricFrame, count, selection_rate

from fairness.representation import (
    GroupRepresentation,
    LabelError,
    Representation,
    represent,
    slices_of,
)

# Row:        0    1    2    3    4    5    6       7
TINY = pd.DataFrame(
    {
        "group": ["A", "A", "A", "A", "B", "B", "B", None],
        "sex": ["F", "F", "M", "M", "F", "M", "M", "F"],
        "label": [1, 0, 1, 1, 0, 0, np.nan, 1],
        "x": [1.0, np.nan, 3.0, 4.0, np.nan, np.nan, 7.0, 8.0],
        "y": [1, 2, 3, 4, 5, 6, 7, 8],
    }
)


def group(report: Representation, slice_name: str, name: str) -> GroupRepresentation:
    (found,) = [
        g for s in report.slices if s.name == slice_name for g in s.groups if g.group == name
    ]
    return found


def test_counts_shares_base_rates_and_missingness_by_hand() -> None:
    report = represent(TINY, ["group", "sex"], label="label", min_group_size=2)
    assert [s.name for s in report.slices] == ["group", "sex", "group|sex"]
    assert report.columns_with_missing == ["label", "x"]
    assert report.complete_columns == ["y"]
    assert report.label_rate == pytest.approx(4 / 7)  # 1,0,1,1,0,0,1 known

    by_group = report.slices[0]
    assert (by_group.known_rows, by_group.unknown_rows) == (7, 1)
    a, b = by_group.groups
    assert (a.count, a.share, a.label_rows, a.label_rate) == (4, pytest.approx(4 / 7), 4, 0.75)
    assert a.missingness == {"label": 0.0, "x": 0.25}
    assert (b.count, b.share, b.label_rows, b.label_rate) == (3, pytest.approx(3 / 7), 2, 0.0)
    assert b.missingness == pytest.approx({"label": 1 / 3, "x": 2 / 3})

    female, male = report.slices[1].groups
    assert (female.count, female.share, female.label_rate) == (4, 0.5, 0.5)  # 1,0,0,1
    assert male.label_rate == pytest.approx(2 / 3)  # 1,1,0 and one unknown


def test_intersections_and_too_small_groups() -> None:
    report = represent(TINY, ["group", "sex"], label="label", min_group_size=2)
    both = report.slices[2]
    assert both.attributes == ["group", "sex"]
    assert [(g.group, g.count) for g in both.groups] == [
        ("A|F", 2),
        ("A|M", 2),
        ("B|F", 1),
        ("B|M", 2),
    ]
    assert both.known_rows == 7
    assert both.too_small == ["B|F"]
    assert group(report, "group|sex", "B|M").label_rate == 0.0
    assert group(report, "group|sex", "A|F").missingness["x"] == 0.5


def test_an_empty_combination_is_reported_not_dropped() -> None:
    frame = pd.DataFrame({"group": ["A", "A", "B", "B"], "sex": ["F", "M", "F", "F"]})
    report = represent(frame, ["group", "sex"], min_group_size=1)
    empty = group(report, "group|sex", "B|M")
    assert (empty.count, empty.share, empty.too_small) == (0, 0.0, True)
    assert empty.missingness == {}
    assert empty.label_rate is None


def test_every_combination_of_attributes_is_a_slice() -> None:
    assert slices_of(["a", "b", "c"]) == [
        ("a",),
        ("b",),
        ("c",),
        ("a", "b"),
        ("a", "c"),
        ("b", "c"),
        ("a", "b", "c"),
    ]


def test_reference_population_shares() -> None:
    reference = {"group": {"A": 0.5, "B": 0.4, "C": 0.1}, "group|sex": {"B|F": 0.2}}
    report = represent(TINY, ["group", "sex"], reference=reference, min_group_size=2)
    a = group(report, "group", "A")
    assert a.reference_share == 0.5
    assert a.share_ratio == pytest.approx((4 / 7) / 0.5)
    assert a.share_difference == pytest.approx(4 / 7 - 0.5)
    absent = group(report, "group", "C")  # in the reference, never in the data
    assert (absent.count, absent.share, absent.share_ratio, absent.too_small) == (0, 0.0, 0.0, True)
    assert group(report, "group|sex", "B|F").share_ratio == pytest.approx((1 / 7) / 0.2)
    assert group(report, "sex", "F").reference_share is None


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ({"age": {"x": 0.5}}, "not a protected slice"),
        ({"group": {"A": 1.5}}, "between 0 and 1"),
        ({"group": {"A": 0.7, "B": 0.6}}, "more than 1"),
    ],
)
def test_bad_reference(reference: dict[str, dict[str, float]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        represent(TINY, ["group"], reference=reference)


def test_labels_must_be_boolean_or_numeric() -> None:
    frame = TINY.assign(label=["yes"] * 8)
    with pytest.raises(LabelError, match="'label' must be boolean or numeric"):
        represent(frame, ["group"], label="label")
    flags = TINY.assign(label=pd.Series([True, None, False, True, True, False, True, None]))
    assert group(represent(flags, ["group"], label="label"), "group", "A").label_rate == (
        pytest.approx(2 / 3)
    )


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="at least one protected"):
        represent(TINY, [])
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['nope'\]"):
        represent(TINY, ["group"], label="nope")
    with pytest.raises(ValueError, match="min_group_size"):
        represent(TINY, ["group"], min_group_size=0)


def test_counts_and_base_rates_agree_with_fairlearn() -> None:
    rng = np.random.default_rng(11)
    n = 3_000
    frame = pd.DataFrame(
        {
            "race": rng.choice(["r1", "r2", "r3"], n),
            "sex": rng.choice(["F", "M"], n),
            "label": rng.random(n) < 0.4,
        }
    )
    report = represent(frame, ["race", "sex"], label="label")
    expected = MetricFrame(
        metrics={"count": count, "rate": selection_rate},
        y_true=frame["label"],
        y_pred=frame["label"],
        sensitive_features=frame[["race", "sex"]],
    ).by_group
    for (race, sex), row in expected.iterrows():
        found = group(report, "race|sex", f"{race}|{sex}")
        assert found.count == row["count"]
        assert found.label_rate == pytest.approx(row["rate"])
