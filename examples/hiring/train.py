"""Train the hiring screen and lay out everything Fairlane needs to take it on.

``python -m examples.hiring.train DIR`` writes, under DIR: the training and validation
CSVs, ``artifacts/hiring-screen/v1.skops`` (a plain scikit-learn pipeline, written
through Fairlane's ``analysis.scoring`` so it loads wherever Fairlane scores), the
fallback rules next to it, and ``manifest.yaml`` with absolute data paths and the
artifact's sha256, ready for ``fairlane model register``; with ``--flag-file``, also the
model's first route in the team's flag file.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from analysis.scoring import artifact_dict, save_artifact
from config.targets import ResolvedFlagFile
from contracts.model import ModelManifest
from contracts.routing import RouteUpdate, Serving
from examples.hiring.data import FEATURES, generate_applicants
from store.artifacts import ArtifactStore, sha256_file
from targets.flag_file import FlagFileTarget

HERE = Path(__file__).resolve().parent
NUMERIC = ["years_experience", "test_score"]
CATEGORICAL = ["degree_level", "commute_zone"]


@dataclass(frozen=True)
class HiringFiles:
    """Where :func:`prepare` put things."""

    root: Path
    artifacts_dir: Path
    training_csv: Path
    validation_csv: Path
    rules: Path
    manifest: ModelManifest


def train_screen(history: pd.DataFrame, version: str) -> dict[str, Any]:
    """Fit the screen on past recruiter decisions (``hired``), as the team did."""
    pipeline = Pipeline(
        [
            (
                "encode",
                ColumnTransformer(
                    [
                        ("categories", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
                        ("numbers", StandardScaler(), NUMERIC),
                    ]
                ),
            ),
            ("screen", LogisticRegression(max_iter=500)),
        ]
    )
    pipeline.fit(history[list(FEATURES)], history["hired"])
    return artifact_dict(
        version=version,
        features=FEATURES,
        decision=pipeline,
        trained_on={"rows": len(history), "source": "examples.hiring.data"},
    )


def prepare(
    root: Path, training_rows: int = 6_000, validation_rows: int = 6_000, seed: int = 7
) -> HiringFiles:
    """Generate the data, train v1, and write the registered-ready manifest under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    training, validation = root / "training.csv", root / "validation.csv"
    history = generate_applicants(training_rows, seed)
    history.to_csv(training, index=False)
    generate_applicants(validation_rows, seed + 1).to_csv(validation, index=False)
    store = ArtifactStore(root / "artifacts")
    name, digest = save_artifact(store, train_screen(history, "v1"), "hiring-screen", "v1.skops")
    rules = store.path("hiring-screen/fallback.yaml")
    shutil.copyfile(HERE / "fallback.yaml", rules)
    raw = yaml.safe_load((HERE / "manifest.yaml").read_text())
    raw["fallback"]["sha256"] = sha256_file(rules)
    raw["versions"][0].update(
        artifact=name,
        sha256=digest,
        training_data=str(training),
        validation_data=str(validation),
    )
    manifest = ModelManifest.model_validate(raw)
    (root / "manifest.yaml").write_text(
        yaml.safe_dump(manifest.model_dump(mode="json", exclude_defaults=True))
    )
    return HiringFiles(root, store.root, training, validation, rules, manifest)


async def deploy_to_flag_file(flag_file: Path, manifest: ModelManifest, target: str) -> None:
    """Write the model's first route (its primary version serving) into the team's flag
    file, through Fairlane's own flag-file target: other flags in the file are kept.

    The same first route ``fairlane model deploy`` writes at a flag file once the model
    is registered (``registry/deployment.py``); done here before registration, so that
    registration finds the target knowing the model without ``--allow-undeployed``.
    """
    first = RouteUpdate(
        serving=Serving.PRIMARY,
        primary_version=manifest.primary_version,
        generation=1,
        updated_by="hiring-team-deploy",
    )
    await FlagFileTarget(ResolvedFlagFile(target, flag_file)).set_route(manifest.id, first)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="folder to write data, artifacts and manifest")
    parser.add_argument("--rows", type=int, default=6_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--flag-file", type=Path, help="also write the first route into this flag file"
    )
    args = parser.parse_args()
    files = prepare(args.root.resolve(), args.rows, args.rows, args.seed)
    if args.flag_file:
        target = files.manifest.router.target
        if target is None:
            parser.error("the manifest names no routing target to deploy at")
        asyncio.run(deploy_to_flag_file(args.flag_file.resolve(), files.manifest, target))
        print(f"route: {args.flag_file} (flag fairlane.route.{files.manifest.id}, v1 serving)")
    print(f"manifest: {files.root / 'manifest.yaml'}\nartifacts: {files.artifacts_dir}")


if __name__ == "__main__":
    main()
