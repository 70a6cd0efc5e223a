"""The gateway serves a model that is not the demo's: an insurer's claims model.

Three features (one categorical), a decision only, an age-band attribute with three
groups, a column stratum, its own fallback rules: deployed from its manifest, served,
contained with the model in shadow, and ramped on a sticky canary. Also: fallback rules
whose errors name their YAML path, and an artifact swapped under a version name.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from analysis.scoring import artifact_dict, load_scorer, save_artifact
from config.settings import Settings
from contracts.fallback_rules import RulesError, parse_rules, rules_digest
from contracts.model import Feature, ModelManifest, ModelVersion, Outcomes, RouterRef
from contracts.routing import RouteUpdate, Serving
from router.app import create_app
from router.client import RouterClient, RouterError
from router.schemas import DecisionRequest, FallbackDocument
from store.artifacts import ArtifactStore

TOKEN = "gateway-test-token-claims"
MODEL = "claims"
FEATURES = {"claim_amount": "numeric", "tenure_years": "numeric", "region": "categorical"}
RULES = """\
version: claims-rules-v3
rules:
  - when: {claim_amount: {gt: 20000}}
    decision: false
  - when: {tenure_years: {ge: 2}, region: {in: [north, south]}}
    decision: true
otherwise: {decision: false}
"""


def claims(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = pd.DataFrame(
        {
            "claim_amount": rng.uniform(100, 40_000, n),
            "tenure_years": rng.uniform(0, 20, n),
            "region": rng.choice(["north", "south", "east"], n),
        }
    )
    data["paid"] = (data["claim_amount"] < 15_000 + 800 * data["tenure_years"]).astype(bool)
    return data


def fit(data: pd.DataFrame, version: str, c: float) -> dict[str, Any]:
    encode = ColumnTransformer(
        [
            ("region", OneHotEncoder(handle_unknown="ignore"), ["region"]),
            ("numeric", "passthrough", ["claim_amount", "tenure_years"]),
        ]
    )
    pipeline = Pipeline([("encode", encode), ("classify", LogisticRegression(C=c, max_iter=500))])
    pipeline.fit(data[list(FEATURES)], data["paid"])
    return artifact_dict(version=version, features=list(FEATURES), decision=pipeline)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> ArtifactStore:
    return ArtifactStore(tmp_path_factory.mktemp("claims") / "artifacts")


@pytest.fixture(scope="module")
def artifacts(store: ArtifactStore) -> dict[str, str]:
    data = claims(2_000, 3)
    return {
        version: save_artifact(store, fit(data, version, c), MODEL, f"{version}.skops")[0]
        for version, c in (("v1", 1.0), ("v2", 0.01))
    }


def manifest(artifacts: dict[str, str]) -> ModelManifest:
    return ModelManifest(
        id=MODEL,
        versions=[ModelVersion(version=v, artifact=a) for v, a in artifacts.items()],
        primary_version="v1",
        label="paid",
        outcomes=Outcomes(decision="paid"),
        features=[Feature(name=name, type=kind) for name, kind in FEATURES.items()],  # type: ignore[arg-type]
        protected_attributes=["age_band"],
        groups={"age_band": ["<30", "30-60", "60+"]},
        strata=["region"],
        router=RouterRef(target="gateway"),
    )


def fallback(text: str = RULES) -> FallbackDocument:
    return FallbackDocument(content=text, sha256=rules_digest(text))


def settings_for(tmp_path: Path, store: ArtifactStore) -> Settings:
    return Settings(data_dir=tmp_path, router_token=SecretStr(TOKEN), artifacts_dir=store.root)


@pytest.fixture
def app(tmp_path: Path, store: ArtifactStore) -> FastAPI:
    return create_app(settings_for(tmp_path, store))


@pytest.fixture
async def gateway(app: FastAPI, artifacts: dict[str, str]) -> AsyncIterator[RouterClient]:
    async with RouterClient(
        "http://gateway", TOKEN, transport=httpx.ASGITransport(app=app)
    ) as client:
        await client.deploy(
            MODEL, artifacts, "v1", manifest=manifest(artifacts), fallback=fallback()
        )
        yield client


def claim(
    i: int, amount: float = 5_000.0, tenure: float = 4.0, region: str = "north"
) -> DecisionRequest:
    return DecisionRequest(
        id=f"claim-{i}",
        features={"claim_amount": amount, "tenure_years": tenure, "region": region},
        attributes={"age_band": ("<30", "30-60", "60+")[i % 3]},
    )


def update(generation: int, **spec: Any) -> RouteUpdate:
    return RouteUpdate(
        generation=generation,
        updated_by="test",
        reason="test",
        **({"primary_version": "v1"} | spec),
    )


async def test_a_claims_model_is_served_contained_and_ramped(
    gateway: RouterClient, store: ArtifactStore, artifacts: dict[str, str]
) -> None:
    v1 = load_scorer(store, artifacts["v1"], store.digest(artifacts["v1"]))
    start = datetime.now(UTC)
    first = await gateway.decide(MODEL, claim(0, amount=30_000.0))
    assert (first.served_by, first.version, first.amount) == (Serving.PRIMARY, "v1", None)
    assert first.decision == v1.score(pd.DataFrame([claim(0, amount=30_000.0).features])).row(0)[0]

    # Contained: the rules answer, the model keeps scoring in shadow.
    await gateway.set_route(MODEL, update(1, serving=Serving.FALLBACK, shadow_versions=["v1"]))
    contained = await gateway.decide_batch(
        MODEL, [claim(1, amount=30_000.0), claim(2, tenure=5.0), claim(3, region="east")]
    )
    assert [(d.served_by, d.version, d.decision) for d in contained] == [
        (Serving.FALLBACK, "claims-rules-v3", False),
        (Serving.FALLBACK, "claims-rules-v3", True),
        (Serving.FALLBACK, "claims-rules-v3", False),
    ]

    # Ramped: a sticky half of the requests reach the candidate, against the rules.
    await gateway.set_route(
        MODEL,
        update(
            2,
            serving=Serving.FALLBACK,
            shadow_versions=["v1"],
            candidate_version="v2",
            canary_percent=50,
        ),
    )
    requests = [claim(i, region=("north", "south", "east")[i % 3]) for i in range(10, 70)]
    once = await gateway.decide_batch(MODEL, requests)
    twice = await gateway.decide_batch(MODEL, requests)
    assert [(d.served_by, d.version) for d in once] == [(d.served_by, d.version) for d in twice]
    assert {d.served_by for d in once} == {Serving.FALLBACK, Serving.CANDIDATE}

    logged = await gateway.decisions(MODEL, include_shadow=True, limit=1_000)
    live = [r for r in logged if not r.shadow]
    assert {r.group for r in live} == {"<30", "30-60", "60+"}
    assert {r.stratum for r in live} == {"north", "south", "east"}
    assert all(r.amount is None for r in logged)
    assert all(
        (r.rules_version == "claims-rules-v3") == (r.served_by is Serving.FALLBACK) for r in live
    )
    shadows = [r for r in logged if r.shadow]
    assert len(shadows) == len(live) - 1  # every answer but the first, scored by v1 in shadow
    assert {r.version for r in shadows} == {"v1"}

    window = await gateway.window(MODEL, "v2", start, datetime.now(UTC) + timedelta(minutes=1))
    candidate = sum(c.count for c in window.cells if c.side.value == "candidate")
    assert candidate == 2 * sum(d.served_by is Serving.CANDIDATE for d in once)
    assert {c.group for c in window.cells} == {"<30", "30-60", "60+"}


@pytest.mark.parametrize(
    ("features", "attributes", "named"),
    [
        ({"region": 3.0}, {}, "body.features.region: must be a category"),
        ({"tenure_years": "long"}, {}, "body.features.tenure_years: must be a finite number"),
        ({"income": 1.0}, {}, "body.features.income: not a feature of the model"),
        ({}, {"age_band": "90+"}, "body.attributes.age_band: unknown group '90+'"),
    ],
)
async def test_requests_are_checked_against_the_claims_contract(
    gateway: RouterClient, features: dict[str, Any], attributes: dict[str, Any], named: str
) -> None:
    good = claim(1)
    bad = good.model_copy(
        update={"features": good.features | features, "attributes": good.attributes | attributes}
    )
    with pytest.raises(RouterError) as refused:
        await gateway.decide(MODEL, bad)
    assert refused.value.status_code == 422
    assert named in refused.value.reason


# --- fallback rules: errors with YAML paths -------------------------------------------------


@pytest.mark.parametrize(
    ("text", "path"),
    [
        (RULES.replace("tenure_years: {ge: 2}", "tenure: {ge: 2}"), "rules[1].when.tenure:"),
        (RULES.replace("{gt: 20000}", "{gt: many}"), "rules[0].when.claim_amount.gt:"),
        (
            RULES.replace("region: {in: [north, south]}", "region: {lt: 3}"),
            "rules[1].when.region.lt:",
        ),
        (RULES.replace("{gt: 20000}", "{above: 20000}"), "rules[0].when.claim_amount.above:"),
        (RULES.replace("otherwise: {decision: false}\n", ""), "otherwise:"),
        (
            RULES.replace("    decision: true\n", "    decision: true\n    amount: 5\n"),
            "rules[1].amount:",
        ),
        (
            RULES.replace(
                "  - when: {claim_amount: {gt: 20000}}\n    decision: false\n",
                "  - when: {claim_amount: {gt: 20000}}\n",
            ),
            "rules[0].decision:",
        ),
        ("version: v1\nrules: [\n", "(top level): not valid YAML"),
    ],
)
def test_rules_errors_name_their_yaml_path(text: str, path: str) -> None:
    with pytest.raises(RulesError) as refused:
        parse_rules(text, FEATURES, decision=True, amount=False)  # type: ignore[arg-type]
    assert any(problem.startswith(path) for problem in refused.value.problems), refused.value


async def test_a_deployment_with_bad_rules_is_refused_naming_them(
    app: FastAPI, artifacts: dict[str, str]
) -> None:
    async with RouterClient("http://g", TOKEN, transport=httpx.ASGITransport(app=app)) as client:
        bad = RULES.replace("tenure_years: {ge: 2}", "tenure: {ge: 2}")
        with pytest.raises(RouterError) as refused:
            await client.deploy(
                MODEL, artifacts, "v1", manifest=manifest(artifacts), fallback=fallback(bad)
            )
        assert refused.value.status_code == 422
        assert "body.fallback.content" in refused.value.reason
        assert "rules[1].when.tenure" in refused.value.reason
        tampered = FallbackDocument(content=RULES, sha256=rules_digest(bad))
        with pytest.raises(RouterError, match=r"body\.fallback\.sha256") as pinned:
            await client.deploy(
                MODEL, artifacts, "v1", manifest=manifest(artifacts), fallback=tampered
            )
        assert pinned.value.status_code == 422
        with pytest.raises(RouterError) as unknown:
            await client.get_route(MODEL)
        assert unknown.value.status_code == 404  # nothing was half-applied


# --- an artifact swapped under a version name ------------------------------------------------


async def test_a_swapped_artifact_is_refused_not_served(
    tmp_path: Path, store: ArtifactStore, artifacts: dict[str, str]
) -> None:
    """Deployed at one sha256, the file is swapped for another model: a new gateway
    process (a restart) refuses it over HTTP, and a redeploy does not re-pin it."""
    swapped = {"v1": f"{MODEL}/swappable.skops", "v2": artifacts["v2"]}
    (store.root / swapped["v1"]).write_bytes((store.root / artifacts["v1"]).read_bytes())
    settings = settings_for(tmp_path, store)
    async with RouterClient(
        "http://g", TOKEN, transport=httpx.ASGITransport(app=create_app(settings))
    ) as client:
        await client.deploy(MODEL, swapped, "v1", manifest=manifest(swapped), fallback=fallback())
        assert (await client.decide(MODEL, claim(1))).version == "v1"

    other = fit(claims(500, 9), "v1", 5.0)  # a different model under the same version name
    name, _ = save_artifact(ArtifactStore(tmp_path / "elsewhere"), other, "x.skops")
    (store.root / swapped["v1"]).write_bytes((tmp_path / "elsewhere" / name).read_bytes())

    async with RouterClient(
        "http://g", TOKEN, transport=httpx.ASGITransport(app=create_app(settings))
    ) as restarted:
        with pytest.raises(RouterError, match="changed after registration") as refused:
            await restarted.decide(MODEL, claim(2))
        assert refused.value.status_code == 503
        with pytest.raises(RouterError, match="changed after registration") as redeploy:
            await restarted.deploy(
                MODEL, swapped, "v1", manifest=manifest(swapped), fallback=fallback()
            )
        assert redeploy.value.status_code == 422
        assert [r.version for r in await restarted.decisions(MODEL)] == ["v1"]  # nothing new
