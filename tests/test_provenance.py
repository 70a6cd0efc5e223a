"""The provenance audit end to end: the demo's planted zip-code proxy is found, Parquet and
CSV give the same report, and bad data sets fail with a clear DataFileError."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pytest

from analysis.data import DataFileError, read_table
from analysis.provenance import id_like_reason, provenance_audit
from demo.dataset import generate_applicants


@pytest.fixture(scope="module")
def applicants() -> pd.DataFrame:
    return generate_applicants(8_000, seed=3)


def test_zip_code_is_the_top_suspected_proxy_of_group_in_the_demo_data(
    applicants: pd.DataFrame,
) -> None:
    phases: list[str] = []
    report = provenance_audit(
        applicants, protected=["group"], label="approved", progress=phases.append
    )
    assert report.suspected_proxies[0] == "zip_code"
    (group,) = report.proxies.attributes
    top = group.features[0]
    assert (top.feature, top.suspected) == ("zip_code", True)
    assert top.auc is not None and top.auc > 0.85
    debt_ratio = next(f for f in group.features if f.feature == "debt_ratio")
    assert not debt_ratio.suspected
    assert report.headline.startswith(f"zip_code predicts group with AUC {top.auc:.2f}")
    assert f"{len(report.suspected_proxies)} of {len(report.features)} features suspected" in (
        report.headline
    )
    assert phases[0] == "representation"
    assert any(phase.startswith("proxy scan") for phase in phases)


def test_default_features_leave_out_protected_label_and_identifiers(
    applicants: pd.DataFrame,
) -> None:
    report = provenance_audit(applicants, protected=["group"], label="approved")
    assert "applicant_id" not in report.features
    assert [e.column for e in report.excluded_columns] == ["applicant_id"]
    assert not {"group", "approved"} & set(report.features)
    assert "debt_ratio" in report.features


def test_identifier_like_columns() -> None:
    assert id_like_reason(pd.Series(["k1", "k2", "k3"], name="key")) == (
        "a distinct value on every row"
    )
    assert id_like_reason(pd.Series([1, 1], name="ID")) is not None
    assert id_like_reason(pd.Series([1.5, 2.5, 3.5], name="income")) is None
    assert id_like_reason(pd.Series(["a", "a", "b"], name="zip")) is None


def test_representation_and_base_rates_from_the_demo_data(applicants: pd.DataFrame) -> None:
    report = provenance_audit(
        applicants,
        protected=["group", "income_band"],
        label="approved",
        features=["zip_code", "debt_ratio"],
        min_group_size=200,
        reference={"group": {"A": 0.5, "B": 0.5}},
    )
    by_group = report.representation.slices[0]
    for found in by_group.groups:
        members = applicants[applicants["group"] == found.group]
        assert found.count == len(members)
        assert found.label_rate == pytest.approx(members["approved"].mean())
        assert found.share_ratio == pytest.approx(len(members) / len(applicants) / 0.5)
    intersection = report.representation.slices[2]
    assert intersection.name == "group|income_band"
    thin = {
        f"{g}|{band}"
        for (g, band), rows in applicants.groupby(["group", "income_band"]).size().items()
        if rows < 200
    }
    assert set(intersection.too_small) >= thin
    assert report.features == ["zip_code", "debt_ratio"]


def test_parquet_and_csv_of_the_same_frame_give_the_same_report(
    applicants: pd.DataFrame, tmp_path: Path
) -> None:
    frame = applicants.head(3_000).copy()
    frame.loc[frame.index[::7], "debt_ratio"] = np.nan
    frame.loc[frame.index[::11], "zip_code"] = None
    table = pl.from_pandas(frame)
    table.write_parquet(tmp_path / "train.parquet")
    table.write_csv(tmp_path / "train.csv")
    reports = [
        provenance_audit(
            read_table(tmp_path / name), protected=["group"], label="approved"
        ).model_dump()
        for name in ("train.parquet", "train.csv")
    ]
    assert reports[0] == reports[1]
    assert reports[0]["representation"]["columns_with_missing"] == ["debt_ratio", "zip_code"]


@pytest.mark.parametrize(
    ("options", "missing"),
    [
        ({"protected": ["ethnicity"]}, "ethnicity"),
        ({"protected": ["group"], "label": "defaulted"}, "defaulted"),
        ({"protected": ["group"], "features": ["zip_code", "postcode"]}, "postcode"),
    ],
)
def test_a_missing_column_is_a_data_file_error_naming_it(
    applicants: pd.DataFrame, options: dict[str, Any], missing: str
) -> None:
    with pytest.raises(DataFileError, match=rf"lacks column\(s\) \['{missing}'\]"):
        provenance_audit(applicants, **options)


def test_a_tiny_minimum_group_size_still_leaves_every_fold_populated(
    applicants: pd.DataFrame,
) -> None:
    report = provenance_audit(applicants.head(500), protected=["group"], min_group_size=1)
    assert report.representation.min_group_size == 1
    assert report.proxies.min_class_size == report.proxies.cv_folds


def test_unusable_data_is_a_data_file_error(applicants: pd.DataFrame) -> None:
    with pytest.raises(DataFileError, match="no rows"):
        provenance_audit(applicants.head(0), protected=["group"])
    with pytest.raises(DataFileError, match="'zip_code' must be boolean or numeric"):
        provenance_audit(applicants, protected=["group"], label="zip_code")
