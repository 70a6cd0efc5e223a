"""Audit throughput on generated data, each beside a baseline computed in the same run.

Proxy scan section: the provenance audit (representation of every protected slice, the
association measures of every feature against every protected attribute on every row,
single-feature and all-features AUCs) over 1,000,000 rows x 40 features, with a few
planted proxies. The baseline is what one would write by hand: a pandas group-by
contingency table and scikit-learn's ``normalized_mutual_info_score`` per feature and
attribute, and fairlearn's ``MetricFrame`` for the per-group counts and base rates (plus
a pandas group-by for missingness). The baseline computes no AUC at all, so the ratio
(audit time / baseline time) flatters the baseline. Ratios hold on a noisy machine,
absolute times do not.

    .venv/bin/python -m bench.audits [--rows 1000000] [--features 40]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
from fairlearn.metrics import MetricFrame, count, selection_rate
from pydantic import BaseModel, ConfigDict

from analysis.data import read_table
from analysis.provenance import provenance_audit
from fairness.proxy import cramers_v, normalized_mutual_information
from fairness.representation import slices_of

PROTECTED = ["group", "age_band"]
LABEL = "approved"
AGE_BANDS = np.asarray(["18-29", "30-44", "45-64", "65+"])
BINS = 10


class GeneratedData(BaseModel):
    """What was planted in a generated data set, to check the audit found it."""

    model_config = ConfigDict(frozen=True)

    features: list[str]
    planted: dict[str, str]  # feature -> the protected attribute it stands in for


class ProxyScanBench(BaseModel):
    """The proxy scan section's figures."""

    model_config = ConfigDict(frozen=True)

    rows: int
    features: int
    proxy_scan_s: float
    baseline_s: float
    ratio: float  # proxy_scan_s / baseline_s
    phases_s: dict[str, float]
    planted_found: int
    planted: int
    neutral_flagged: int
    max_measure_difference: float  # between the audit's NMI / V and the baseline's


def generate(rows: int, features: int, seed: int) -> tuple[pd.DataFrame, GeneratedData]:
    """Rows of applicants with two protected attributes, a label, and ``features`` features.

    Four features are planted proxies: ``zip_code`` (group B lives mostly in a few of 200
    zip codes), ``commute_km`` (longer for group B), ``years_at_address`` (grows with age)
    and ``device`` (differs by age band). A quarter of the rest are categorical; two have
    gaps, one of them missing more often for group B.
    """
    if features < 8:
        raise ValueError(
            f"features must be at least 8 (four planted, four neutral), got {features}"
        )
    rng = np.random.default_rng(seed)
    is_b = rng.random(rows) < 0.35
    age = rng.integers(0, len(AGE_BANDS), rows)
    zip_pool = np.where(is_b, rng.integers(0, 30, rows), rng.integers(0, 200, rows))
    commute_km = rng.gamma(3.0, 4.0, rows) * np.where(is_b, 2.0, 1.0)
    columns: dict[str, npt.NDArray[np.generic]] = {
        "group": np.where(is_b, "B", "A"),
        "age_band": AGE_BANDS[age],
        "zip_code": np.char.add("Z", zip_pool.astype(str)),
        "commute_km": commute_km,
        "years_at_address": rng.gamma(1.5 + 2.0 * age, 2.0, rows),
        "device": np.where(
            rng.random(rows) < 0.1 + 0.25 * age,
            "desktop",
            np.where(rng.random(rows) < 0.7 - 0.2 * age, "ios", "android"),
        ),
    }
    planted = {
        "zip_code": "group",
        "commute_km": "group",
        "years_at_address": "age_band",
        "device": "age_band",
    }
    neutral = features - len(planted)
    categorical = neutral // 4
    numeric = {
        f"num_{i:02d}": rng.lognormal(0.0, 1.0, rows) if i % 2 else rng.normal(50.0, 10.0, rows)
        for i in range(neutral - categorical)
    }
    numeric["num_00"][rng.random(rows) < np.where(is_b, 0.08, 0.02)] = np.nan  # B: 4x the gaps
    numeric["num_01"][rng.random(rows) < 0.05] = np.nan
    columns.update(numeric)
    for i in range(categorical):
        levels = 3 + 7 * i
        columns[f"cat_{i:02d}"] = np.char.add("L", rng.integers(0, levels, rows).astype(str))
    merit = numeric["num_02"] / 10.0 - 5.0 - 0.02 * commute_km
    columns[LABEL] = rng.random(rows) < 1.0 / (1.0 + np.exp(-merit))
    frame = pd.DataFrame(columns)
    names = [c for c in frame.columns if c not in (*PROTECTED, LABEL)]
    return frame, GeneratedData(features=names, planted=planted)


def baseline(frame: pd.DataFrame, features: Sequence[str]) -> dict[tuple[str, str], float]:
    """The hand-written way: a pandas group-by table per feature and attribute.

    Returns every (feature, attribute) NMI and Cramér's V, keyed ``(feature, attribute)``
    with the V under the key ``(feature, attribute + " V")``, for comparing with the audit.
    """
    measures: dict[tuple[str, str], float] = {}
    for attribute in PROTECTED:
        for feature in features:
            column = frame[feature]
            if pd.api.types.is_numeric_dtype(column):
                column = pd.qcut(column, BINS, labels=False, duplicates="drop")
            table = (
                frame.groupby([column, frame[attribute]], dropna=False)
                .size()
                .unstack(fill_value=0)
                .to_numpy()
            )
            measures[feature, attribute] = normalized_mutual_information(table)
            measures[feature, f"{attribute} V"] = cramers_v(table)
    for attributes in slices_of(PROTECTED):
        MetricFrame(
            metrics={"count": count, "base_rate": selection_rate},
            y_true=frame[LABEL],
            y_pred=frame[LABEL],
            sensitive_features=frame[list(attributes)],
        )
        frame[list(features)].isna().groupby([frame[a] for a in attributes]).mean()
    return measures


class PhaseClock:
    """Seconds spent in each phase the audit announces through its progress callback."""

    def __init__(self) -> None:
        self.phases: dict[str, float] = {}
        self._phase: str | None = None
        self._since = time.perf_counter()

    def __call__(self, phase: str) -> None:
        self.stop()
        self._phase = phase

    def stop(self) -> None:
        now = time.perf_counter()
        if self._phase is not None:
            self.phases[self._phase] = now - self._since
        self._phase, self._since = None, now


def proxy_scan_section(rows: int, features: int, seed: int) -> ProxyScanBench:
    """Time the provenance audit and the baseline on the same generated data."""
    frame, generated = generate(rows, features, seed)
    clock = PhaseClock()
    start = time.perf_counter()
    report = provenance_audit(
        frame, protected=PROTECTED, label=LABEL, features=generated.features, progress=clock
    )
    proxy_scan_s = time.perf_counter() - start
    clock.stop()

    start = time.perf_counter()
    measures = baseline(frame, generated.features)
    baseline_s = time.perf_counter() - start

    difference = 0.0
    for scan in report.proxies.attributes:
        for feature in scan.features:
            difference = max(
                difference,
                abs(feature.nmi - measures[feature.feature, scan.attribute]),
                abs(feature.cramers_v - measures[feature.feature, f"{scan.attribute} V"]),
            )
    suspected = {
        (feature.feature, scan.attribute)
        for scan in report.proxies.attributes
        for feature in scan.features
        if feature.suspected
    }
    print(report.headline)
    for scan in report.proxies.attributes:
        top = ", ".join(
            f"{f.feature} {f.auc:.3f}/{f.nmi:.3f}" for f in scan.features[:5] if f.auc is not None
        )
        print(
            f"{scan.attribute}: all-features AUC {scan.all_features_auc} on "
            f"{scan.all_features_sample_rows} rows; top (AUC/NMI): {top}"
        )
    return ProxyScanBench(
        rows=rows,
        features=len(generated.features),
        proxy_scan_s=proxy_scan_s,
        baseline_s=baseline_s,
        ratio=proxy_scan_s / baseline_s,
        phases_s=clock.phases,
        planted_found=sum(pair in suspected for pair in generated.planted.items()),
        planted=len(generated.planted),
        neutral_flagged=len({f for f, _ in suspected} - set(generated.planted)),
        max_measure_difference=difference,
    )


def print_proxy_scan(bench: ProxyScanBench) -> None:
    for phase, seconds in bench.phases_s.items():
        print(f"  {phase}: {seconds:.2f}s")
    print(
        f"planted proxies found {bench.planted_found}/{bench.planted}, "
        f"neutral features flagged {bench.neutral_flagged}, "
        f"largest NMI/V difference from the baseline {bench.max_measure_difference:.1e}"
    )
    print(
        f"proxy_scan rows={bench.rows} features={bench.features} "
        f"proxy_scan_s={bench.proxy_scan_s:.2f} baseline_s={bench.baseline_s:.2f} "
        f"ratio={bench.ratio:.2f}"
    )


class ShapBench(BaseModel):
    """The attribution section's figures: the audit beside shap's own explainer."""

    model_config = ConfigDict(frozen=True)

    rows: int
    audit_s: float
    shap_only_s: float
    rows_per_s: float
    explainer: str


def shap_section(rows: int, seed: int) -> ShapBench:
    """SHAP attribution of the demo approval model over ``rows`` applicants.

    The baseline is shap's TreeExplainer alone on the same encoded rows, in the same
    run: what the audit adds on top (slicing, summing one-hot columns back, gap drivers,
    the additivity check) is the difference.
    """
    import shap

    from analysis.attribution import attribution_audit
    from analysis.models import open_model_file
    from demo.credit_model import prepare_demo_model

    with tempfile.TemporaryDirectory(prefix="fairlane-bench-") as scratch:
        files = prepare_demo_model(Path(scratch), validation_rows=rows)
        frame = read_table(files.validation_csv)
        artifact = open_model_file(files.artifact)
        start = time.perf_counter()
        report = attribution_audit(
            artifact, frame, protected=["group"], outcome="decision", sample_size=rows, seed=seed
        )
        audit_s = time.perf_counter() - start
        explainable = artifact.model("decision").explainable(frame.head(100))
        encoded = explainable.encode(frame[list(explainable.features)])
        start = time.perf_counter()
        shap.TreeExplainer(explainable.estimator)(encoded, check_additivity=False)
        shap_only_s = time.perf_counter() - start
    return ShapBench(
        rows=report.rows,
        audit_s=audit_s,
        shap_only_s=shap_only_s,
        rows_per_s=report.rows / audit_s,
        explainer=report.explainer.name,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=40)
    parser.add_argument("--shap-rows", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    proxies = proxy_scan_section(args.rows, args.features, args.seed)
    print_proxy_scan(proxies)
    attribution = shap_section(args.shap_rows, args.seed)
    print(
        f"shap rows={attribution.rows} explainer={attribution.explainer} "
        f"audit_s={attribution.audit_s:.2f} shap_only_s={attribution.shap_only_s:.2f} "
        f"overhead_ratio={attribution.audit_s / attribution.shap_only_s:.2f}"
    )
    print(
        f"audits rows={proxies.rows} proxy_scan_s={proxies.proxy_scan_s:.2f} "
        f"baseline_s={proxies.baseline_s:.2f} ratio={proxies.ratio:.2f} "
        f"shap_rows_per_s={attribution.rows_per_s:.0f}"
    )


if __name__ == "__main__":
    main()
