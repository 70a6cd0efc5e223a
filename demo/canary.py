"""The demo's canary: the shipped ethical-audit playbook with its ramp compressed to seconds,
real traffic through the router while it ramps, and a bias regression injected mid-ramp.

Only durations, the ramp and evidence sizes change (7-day bakes become seconds, 200
decisions per group become 60, the unconditional parity difference is left to the
conditional metrics): the step kinds, the statistics and the rollback are the production ones.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from demo.credit_model import save_model
from playbooks.loader import builtin_playbook_text
from router.client import RouterClient, RouterError
from router.schemas import DecisionRequest
from store.artifacts import ArtifactStore

DEMO_PLAYBOOK = "ethical-audit-demo"
COMPRESSED_CANARY = {
    "ramp": [25, 50, 100],
    "bake": "15s",
    "analysis_interval": "3s",
    "extend_by": "5s",
    "inconclusive_limit": 12,
    "shadow_period": "2m",
}
# A few dozen requests a second cannot settle an unconditional approval-rate difference
# between groups that differ in income; the demo judges the conditional metrics.
DEMO_EVIDENCE = {
    "min_samples_per_group": 60,
    "min_stratum_count": 3,
    "max_demographic_parity_difference": None,
}
INJECT_AT_PERCENT = 25  # the bad push lands on the first ramp step


def write_demo_playbook(folder: Path) -> Path:
    """ethical-audit.yaml with the canary's clock compressed, as a team playbook file."""
    playbook = yaml.safe_load(builtin_playbook_text("ethical-audit"))
    playbook["name"] = DEMO_PLAYBOOK
    playbook["description"] = "ethical-audit with the canary ramp compressed to seconds (demo)"
    for step in playbook["steps"]:
        if step["kind"] == "canary":
            step.update(COMPRESSED_CANARY)
            step["metrics"] = {**step.get("metrics", {}), **DEMO_EVIDENCE}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{DEMO_PLAYBOOK}.yaml"
    path.write_text(yaml.safe_dump(playbook, sort_keys=False))
    return path


@contextlib.asynccontextmanager
async def live_traffic(
    router: RouterClient,
    model: str,
    applicants: pd.DataFrame,
    to_applicant: Any,
    concurrency: int = 8,
) -> AsyncIterator[list[int]]:
    """Applicants keep arriving (fresh ids, so each is a new person) until the block ends."""
    sent = [0]
    rows = list(applicants.itertuples(index=False))

    async def client(lane: int) -> None:
        n = lane
        while True:
            row = rows[n % len(rows)]
            applicant: DecisionRequest = to_applicant(row, f"live-{lane}-{n}")
            with contextlib.suppress(RouterError):
                await router.decide(model, applicant)
                sent[0] += 1
            n += concurrency

    lanes = [asyncio.create_task(client(lane)) for lane in range(concurrency)]
    try:
        yield sent
    finally:
        for lane in lanes:
            lane.cancel()
        await asyncio.gather(*lanes, return_exceptions=True)


async def inject_regression(
    router: RouterClient, store: ArtifactStore, model: str, candidate: str
) -> str:
    """A bad push: the candidate's version name now serves the biased primary's model.

    It is written into the artifacts directory and deployed under the candidate's name by
    someone holding the router's token, as a careless (not malicious) push would be.
    """
    deployment = await router.get_deployment(model)
    biased = deployment.versions[deployment.primary_version]
    # the demo's own file, written by prepare_demo_model
    artifact = dict(store.load(biased, store.digest(biased)))
    artifact["version"] = candidate
    regressed, _ = save_model(store, artifact, model, f"{candidate}-regressed.skops")
    await router.deploy(
        model,
        {**deployment.versions, candidate: regressed},
        deployment.primary_version,
        manifest=deployment.manifest,
        fallback=deployment.fallback,
    )
    return regressed
