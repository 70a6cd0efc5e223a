"""The `external` remediation strategy: a team's own training pipeline trains the candidate.

The activity posts the job to the pipeline's webhook and returns without a result
(asynchronous completion); the pipeline answers hours later at the callback URL, and
the API completes the activity with the candidate it reports. Nothing polls.

The callback URL carries a secret issued for this incident, step and attempt
(``incidents/training_callbacks.py``), never Temporal's task token itself.
"""

from __future__ import annotations

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from contracts.analysis import REMEDIATE_EXTERNAL, Candidate, RemediateInput, TrainingJob
from incidents.training_callbacks import TrainingCallbacks


def callback_path(incident_id: str, secret: str) -> str:
    return f"/v1/incidents/{incident_id}/training-callbacks/{secret}"


class ExternalTrainingActivities:
    def __init__(self, api_url: str, callbacks: TrainingCallbacks) -> None:
        self._api_url = api_url
        self._callbacks = callbacks

    @activity.defn(name=REMEDIATE_EXTERNAL)
    async def remediate_external(self, request: RemediateInput) -> Candidate:
        strategy = next(s for s in request.step.strategies if s.name == "external")
        assert strategy.webhook_url is not None  # the playbook schema requires it
        parent = request.model.version(request.model.primary_version)
        secret = self._callbacks.issue(
            request.incident_id, request.step.name, request.round, activity.info().task_token
        )
        job = TrainingJob(
            incident_id=request.incident_id,
            model=request.model.id,
            parent_version=parent.version,
            training_data=parent.training_data,
            validation_data=parent.validation_data,
            protected_attributes=request.model.protected_attributes,
            confirmed_proxies=request.confirmed_proxies,
            suspected_proxies=request.suspected_proxies,
            round=request.round,
            callback_url=self._api_url + callback_path(request.incident_id, secret),
        )
        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.post(strategy.webhook_url, json=job.model_dump(mode="json"))
        if 400 <= response.status_code < 500:
            raise ApplicationError(
                f"training pipeline refused the job: HTTP {response.status_code}",
                type="TrainingJobRejected",
                non_retryable=True,
            )
        response.raise_for_status()
        activity.raise_complete_async()
