"""The demo credit model as a gateway user: its contract, its requests and its fallback rules.

The demo, its benchmarks and tests deploy the credit model with the same manifest and
rules the demo registers, and send requests in the gateway's generic shape built from
an applicant's fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from config.targets import GATEWAY
from contracts.fallback_rules import rules_digest
from contracts.model import (
    Bin,
    FallbackRules,
    Feature,
    ModelManifest,
    ModelVersion,
    Outcomes,
    RouterRef,
    StratumBins,
)
from demo.credit_model import CATEGORICAL_FEATURES, NUMERIC_FEATURES
from demo.dataset import (
    CREDIT_BAND_EDGES,
    CREDIT_BAND_LABELS,
    GROUPS,
    INCOME_BAND_EDGES,
    INCOME_BAND_LABELS,
)
from router.client import RouterClient
from router.schemas import DecisionRequest, Deployment, FallbackDocument

FALLBACK_RULES = Path(__file__).with_name("credit-fallback.yaml")
RULES_VERSION = "credit-rules-v1"


def bands(feature: str, edges: tuple[float, ...], labels: tuple[str, ...]) -> StratumBins:
    """The dataset's bands of ``feature`` as manifest bins (``at_least <= value < below``)."""
    bounds = [None, *edges, None]
    return StratumBins(
        feature=feature,
        bins=[
            Bin(label=label, at_least=low, below=high)
            for label, low, high in zip(labels, bounds[:-1], bounds[1:], strict=True)
        ],
    )


def credit_manifest(
    model: str,
    versions: Mapping[str, str],
    primary_version: str | None = None,
    *,
    fallback: FallbackRules | None = None,
    target: str = GATEWAY,
) -> ModelManifest:
    """The credit model's manifest: features, group, strata bins from the dataset's bands."""
    return ModelManifest(
        id=model,
        description="Credit-limit model: the reference case, ~30% lower limits for one group",
        versions=[ModelVersion(version=v, artifact=a) for v, a in versions.items()],
        primary_version=primary_version or next(iter(versions)),
        label="approved",
        outcomes=Outcomes(decision="approved", amount="credit_limit"),
        features=[
            *(Feature(name=name, type="numeric") for name in NUMERIC_FEATURES),
            *(Feature(name=name, type="categorical") for name in CATEGORICAL_FEATURES),
        ],
        protected_attributes=["group"],
        groups={"group": list(GROUPS)},
        strata=["income_band", "credit_band"],
        bins={
            "income_band": bands("income", INCOME_BAND_EDGES, INCOME_BAND_LABELS),
            "credit_band": bands("credit_history_years", CREDIT_BAND_EDGES, CREDIT_BAND_LABELS),
        },
        fallback=fallback,
        router=RouterRef(target=target),
    )


def credit_fallback() -> FallbackDocument:
    """The demo's rules as a deployment carries them: the text and its sha256."""
    content = FALLBACK_RULES.read_bytes().decode()
    return FallbackDocument(content=content, sha256=rules_digest(content))


async def deploy_credit(
    client: RouterClient,
    model: str,
    versions: Mapping[str, str],
    primary_version: str,
    digests: Mapping[str, str] | None = None,
) -> Deployment:
    """Deploy the credit model's ``versions`` at a gateway under its contract and rules."""
    return await client.deploy(
        model,
        versions,
        primary_version,
        digests,
        manifest=credit_manifest(
            model, versions, primary_version if primary_version in versions else None
        ),
        fallback=credit_fallback(),
    )


def credit_request(
    applicant_id: str,
    income: float,
    credit_history_years: float,
    debt_ratio: float,
    zip_code: str,
    group: str,
) -> DecisionRequest:
    """One applicant as a gateway request: features, and the group as its attribute."""
    return DecisionRequest(
        id=applicant_id,
        features={
            "income": float(income),
            "credit_history_years": float(credit_history_years),
            "debt_ratio": float(debt_ratio),
            "zip_code": str(zip_code),
        },
        attributes={"group": str(group)},
    )
