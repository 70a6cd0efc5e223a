"""Schemathesis over the whole OpenAPI document: no request, valid or not, gets a 5xx.

Run against the served API (real HTTP, the real dev server and worker), once with an
admin's token and once with an incident commander's, so the cases get past
authentication into the routes. Positive and negative cases, a bounded number per
operation; the only check is that no answer is a server error. Every 5xx found is
collected (method, path, status, body) before the test fails, so one run shows them all.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from tests.fixtures.api import Api, served_api
from tests.fixtures.services import RouterService

EXAMPLES_PER_OPERATION = 12
pytestmark = pytest.mark.integration


@pytest_asyncio.fixture(scope="module")
async def api(
    dev_env: WorkflowEnvironment, router_service: RouterService, tmp_path_factory: Any
) -> AsyncIterator[Api]:
    async with served_api(dev_env, router_service, tmp_path_factory.mktemp("fuzz")) as served:
        yield served


def _fuzz(api: Api, who: str) -> tuple[int, int, list[str]]:
    """(operations, requests, server errors) of one bounded run with ``who``'s token."""
    schema = schemathesis.openapi.from_dict(create_app(api.settings).openapi())
    headers = api.headers(who)
    errors: list[str] = []
    requests = operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        strategy = st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE),
            operation.as_strategy(GenerationMode.NEGATIVE),
        )

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def run(case: Any) -> None:
            nonlocal requests
            requests += 1
            response = case.call(base_url=api.url, headers=headers, timeout=30)
            if response.status_code >= 500:
                errors.append(
                    f"{case.method} {case.formatted_path} -> {response.status_code}: "
                    f"{response.text[:300]} (body {str(case.body)[:200]!r})"
                )

        run()
    return operations, requests, errors


@pytest.mark.parametrize("who", ["admin", "ic"])
async def test_no_request_gets_a_server_error(api: Api, who: str) -> None:
    started = time.perf_counter()
    # In a thread: the worker behind the API runs on this test's event loop.
    operations, requests, errors = await asyncio.to_thread(_fuzz, api, who)
    print(
        f"schemathesis as {who}: {operations} operations, {requests} requests, "
        f"{len(errors)} server errors, {time.perf_counter() - started:.1f}s"
    )
    assert operations >= 20
    assert not errors, "\n".join(errors)
