"""`fairlane audit validate` on plain scikit-learn files: any outcome, a before/after table,
the group behind each problem, and an exit code that tells fail (1) from inconclusive (3).

The demo makes the data; the models are whatever a data scientist would fit in a notebook.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import skops.io as sio
import yaml
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from analysis.scoring import artifact_dict
from demo.dataset import generate_applicants

FAIRLANE = str(Path(sys.executable).parent / "fairlane")
NUMERIC = ["income", "credit_history_years", "debt_ratio"]


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FAIRLANE_")}
    environment.update({"FAIRLANE_DATA_DIR": str(tmp_path), "PYTHONPATH": os.getcwd()})
    return subprocess.run(
        [FAIRLANE, "audit", "validate", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
        check=False,
    )


def _pipeline(estimator: Any, with_zip: bool) -> Pipeline:
    parts: list[tuple[str, Any, list[str]]] = [("numeric", "passthrough", NUMERIC)]
    if with_zip:
        parts.append(("zip", OneHotEncoder(handle_unknown="ignore"), ["zip_code"]))
    return Pipeline([("encode", ColumnTransformer(parts)), ("model", estimator)])


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("validate")
    data = generate_applicants(12_000, seed=11)
    train, held = data.iloc[:4_000], data.iloc[4_000:]
    held.to_csv(folder / "held.csv", index=False)
    features = [*NUMERIC, "zip_code"]
    granted = train[train["approved"] == 1]
    made: dict[str, Path] = {"data": folder / "held.csv"}
    for name, with_zip in (("biased", True), ("blind", False)):
        regressor = TransformedTargetRegressor(LinearRegression(), func=np.log, inverse_func=np.exp)
        amount = _pipeline(regressor, with_zip).fit(granted[features], granted["credit_limit"])
        # a bare pipeline: an amount model
        sio.dump(amount, folder / f"{name}-amount.skops")
        decision = _pipeline(LogisticRegression(max_iter=500), with_zip).fit(
            train[features], train["approved"]
        )
        both = artifact_dict(version=name, features=features, decision=decision, amount=amount)
        sio.dump(both, folder / f"{name}-both.skops")
        made[f"{name}-amount"] = folder / f"{name}-amount.skops"
        made[f"{name}-both"] = folder / f"{name}-both.skops"
    return made


def test_a_biased_amount_model_fails_and_the_table_names_the_group(
    files: dict[str, Path], tmp_path: Path
) -> None:
    result = _run(
        tmp_path,
        str(files["data"]),
        "--baseline",
        str(files["blind-amount"]),
        "--candidate",
        str(files["biased-amount"]),
        "--protected",
        "group",
        "--stratum",
        "income_band",
        "--stratum",
        "credit_band",
    )

    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Candidate fails")
    assert any(line.startswith("gate") and "baseline" in line for line in lines)
    (row,) = [line for line in lines if line.startswith("conditional_amount_disparity")]
    assert row.rstrip().endswith("fail") and row.count("[") == 2  # before and after intervals
    assert "driven by group=B" in result.stdout
    # no decision: the decision gates do not apply to an amount-only model (they would
    # otherwise hold it inconclusive for ever), so none is judged
    assert not any(line.startswith(("disparate_impact", "equalized_odds")) for line in lines)


def test_a_fair_amount_model_without_a_decision_is_inconclusive_not_passed(
    files: dict[str, Path], tmp_path: Path
) -> None:
    result = _run(
        tmp_path,
        str(files["data"]),
        "--baseline",
        str(files["biased-amount"]),
        "--candidate",
        str(files["blind-amount"]),
        "--protected",
        "group",
        "--stratum",
        "income_band",
        "--stratum",
        "credit_band",
    )

    assert result.returncode == 3, result.stdout + result.stderr
    (row,) = [line for line in result.stdout.splitlines() if "conditional_amount" in line]
    assert row.rstrip().endswith("pass")


def test_the_roles_come_from_a_manifest_with_bins(files: dict[str, Path], tmp_path: Path) -> None:
    manifest = {
        "id": "limits",
        "versions": [{"version": "v1", "artifact": "limits/v1.skops"}],
        "primary_version": "v1",
        "label": "approved",
        "outcomes": {"decision": "approved", "amount": "credit_limit"},
        "features": [
            *({"name": n, "type": "numeric"} for n in NUMERIC),
            {"name": "zip_code", "type": "categorical"},
        ],
        "protected_attributes": ["group"],
        "strata": ["income_level"],
        "bins": {
            "income_level": {
                "feature": "income",
                "bins": [
                    {"label": "low", "below": 40_000},
                    {"label": "mid", "at_least": 40_000, "below": 80_000},
                    {"label": "high", "at_least": 80_000},
                ],
            }
        },
        "router": {"target": "gateway"},
    }
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump(manifest))

    result = _run(
        tmp_path,
        str(files["data"]),
        "--baseline",
        str(files["blind-both"]),
        "--candidate",
        str(files["biased-both"]),
        "--manifest",
        str(path),
        "--json",
    )

    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["strata"] == ["income_level"] and report["decision"] == "approved"
    verdicts = {(r["gate"], r["slicing"]): r["verdict"] for r in report["gate_report"]["results"]}
    assert verdicts[("conditional_amount_disparity", "group")] == "fail"
    assert report["baseline_gate_report"] is not None


def test_bad_input_is_exit_2_with_a_message(files: dict[str, Path], tmp_path: Path) -> None:
    no_roles = _run(
        tmp_path,
        str(files["data"]),
        "--baseline",
        str(files["blind-amount"]),
        "--candidate",
        str(files["biased-amount"]),
    )
    assert no_roles.returncode == 2 and "--protected" in no_roles.stderr
    lacks = _run(
        tmp_path,
        str(files["data"]),
        "--baseline",
        str(files["blind-amount"]),
        "--candidate",
        str(files["biased-both"]),
        "--protected",
        "group",
        "--decision",
        "approved",
    )
    assert lacks.returncode == 2 and "no decision model" in lacks.stderr
    assert "Traceback" not in no_roles.stderr + lacks.stderr


def test_the_exit_codes_are_documented() -> None:
    environment = {**os.environ, "PYTHONPATH": os.getcwd()}
    result = subprocess.run(
        [FAIRLANE, "audit", "validate", "--help"],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
        check=True,
    )
    text = " ".join(result.stdout.split())
    assert "1 a gate fails" in text and "3 no gate fails but one is inconclusive" in text
