"""The bench's models: the demo model, a fair candidate, and a regression under its name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, SecretStr
from threadpoolctl import threadpool_limits

from analysis.remediation import DropProxies, remediate
from config import Settings
from demo.credit_model import (
    DemoModelFiles,
    prepare_demo_model,
    save_model,
)
from demo.dataset import read_dataset
from stack.loopback import settings_on_free_ports
from store.artifacts import ArtifactStore

CANDIDATE = "v2-fair"
TOKEN = "bench-canary-router-token-0123456789"  # noqa: S105 (a scratch router's)


class Models(BaseModel):
    """The demo model, a fair candidate, and the biased model relabelled as the candidate."""

    model_config = ConfigDict(frozen=True)

    files: DemoModelFiles
    fair: str  # CANDIDATE, trained without zip_code (its name in the artifacts directory)
    fair_sha256: str
    regressed: str  # v1's pipelines, labelled CANDIDATE: what a bad redeploy ships
    remediation: str


def prepare_models(folder: Path) -> Models:
    """v1 from the demo, a ``drop_proxies`` candidate, and v1 relabelled as that candidate.

    The router only loads an artifact as the version it says it holds, so the
    "regression" is v1's own pipelines saved under the candidate's version name.
    Training runs on one thread: on a busy machine OpenMP's spinning threads cost more
    than they bring on data this small.
    """
    with threadpool_limits(limits=1, user_api="openmp"):
        files = prepare_demo_model(folder)
    store = ArtifactStore(files.artifacts_dir)
    result = remediate(
        read_dataset(files.training_csv),
        read_dataset(files.validation_csv),
        files.artifact,
        protected=["group"],
        label="approved",
        decision="approved",
        amount="credit_limit",
        strata=["income_band", "credit_band"],
        confirmed_proxies=["zip_code"],
        suspected_proxies=[],
        strategies=[DropProxies()],
        version=CANDIDATE,
        store=store,
        output=(files.model_id, f"{CANDIDATE}.skops"),
    )
    assert result.artifact is not None and result.artifact_sha256, result.headline
    biased = dict(store.load(files.artifact_name, store.digest(files.artifact_name)))
    biased["version"] = CANDIDATE
    regressed, _ = save_model(store, biased, files.model_id, f"{CANDIDATE}-regressed.skops")
    return Models(
        files=files,
        fair=result.artifact,
        fair_sha256=result.artifact_sha256,
        regressed=regressed,
        remediation=result.headline,
    )


def stack_settings(data_dir: Path, models: Models, **update: Any) -> Settings:
    """A stack on free ports in ``data_dir``, serving the models' artifacts, with the
    bench's router token."""
    return settings_on_free_ports(data_dir).model_copy(
        update={
            "artifacts_dir": models.files.artifacts_dir,
            "router_token": SecretStr(TOKEN),
            **update,
        }
    )
