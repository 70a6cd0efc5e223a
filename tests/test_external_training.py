"""An external training pipeline answers its callback: the candidate is registered, pinned
by sha256, and completes exactly the step its secret was issued for; the secret works once.

Real dev server, the production worker and API over HTTP, a pipeline that is a webhook.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI
from temporalio.testing import WorkflowEnvironment

from contracts.incident import Phase
from demo.credit_model import save_model, train_credit_model
from demo.dataset import generate_applicants
from playbooks.loader import load_playbook_text
from store.artifacts import ArtifactStore
from tests.fixtures.api import served_api
from tests.fixtures.incidents import incident_input, start_incident, wait_for_phase
from tests.fixtures.services import RouterService, free_port, serve


def _pipeline() -> tuple[FastAPI, list[dict[str, Any]]]:
    jobs: list[dict[str, Any]] = []
    app = FastAPI()

    @app.post("/train")
    async def train(job: dict[str, Any]) -> dict[str, str]:
        jobs.append(job)
        return {"status": "queued"}

    return app, jobs


async def test_a_pipeline_answers_its_own_step_once(
    dev_env: WorkflowEnvironment, router_service: RouterService, tmp_path: Path
) -> None:
    app, jobs = _pipeline()
    with serve(app, free_port()) as pipeline_url:
        playbook = load_playbook_text(
            f"""
name: external-test
version: "1"
steps:
  - name: retrain
    kind: remediate
    strategies: [{{name: external, webhook_url: "{pipeline_url}/train"}}]
    external_timeout: 10m
"""
        )
        async with served_api(dev_env, router_service, tmp_path) as api:
            incident = incident_input(router_service, playbook)
            handle = await start_incident(dev_env.client, incident, api.settings.task_queue)
            for _ in range(300):
                if jobs:
                    break
                await asyncio.sleep(0.1)
            assert jobs, "the training job never reached the pipeline"
            callback = urlsplit(jobs[0]["callback_url"]).path
            assert callback.startswith(f"/v1/incidents/{incident.incident_id}/training-callbacks/")

            store = ArtifactStore(router_service.files.artifacts_dir)
            version = f"v1-ext-{uuid.uuid4().hex[:6]}"
            name, digest = save_model(
                store,
                train_credit_model(generate_applicants(1_000, 8), version),
                "credit-limit",
                f"{version}.skops",
            )
            async with api.client() as client:
                pipeline = await _pipeline_token(api)
                answered = await client.post(
                    callback,
                    headers={"Authorization": f"Bearer {pipeline}"},
                    json={"version": version, "artifact": name, "summary": "retrained"},
                )
                assert answered.status_code == 202, answered.text
                assert answered.json()["step"] == "retrain"
                again = await client.post(
                    callback,
                    headers={"Authorization": f"Bearer {pipeline}"},
                    json={"version": version, "artifact": name},
                )
                assert again.status_code == 410, again.text

            state = await wait_for_phase(handle, Phase.RESOLVED, timeout_s=60)
            candidate = state.findings.candidate
            assert candidate is not None and candidate.version == version
            assert candidate.sha256 == digest
            async with api.client() as client:
                model = await client.get(
                    f"/v1/models/{incident.model.id}", headers=api.headers("admin")
                )
            registered = {v["version"]: v for v in model.json()["versions"]}
            assert registered[version]["sha256"] == digest
            assert registered[version]["artifact"] == name


async def _pipeline_token(api: Any) -> str:
    from api.tokens import Role, issue_token

    return issue_token(api.settings.resolved_tokens_file, "pipeline", [Role.TRAINING_PIPELINE])
