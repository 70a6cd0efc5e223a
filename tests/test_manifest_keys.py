"""Manifests name every key they use: unknown keys are refused at registration, by path,
while manifests decoded from recorded incidents (older keys included) still read."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError
from sqlmodel import SQLModel, create_engine

from contracts.model import ModelManifest
from registry.limits import ManifestRejected
from registry.service import ModelRegistry


def manifest(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "hiring",
        "versions": [{"version": "v1", "artifact": "hiring/v1.skops"}],
        "primary_version": "v1",
        "outcomes": {"decision": "hired"},
        "protected_attributes": ["race", "sex"],
        "groups": {"race": ["a", "b", "c", "d"]},
        "router": {"target": "flags"},
        "features": [
            {"name": "years", "type": "numeric"},
            {"name": "school", "type": "categorical"},
        ],
        "strata": ["experience"],
        "bins": {
            "experience": {
                "feature": "years",
                "bins": [
                    {"label": "junior", "below": 3},
                    {"label": "mid", "at_least": 3, "below": 8},
                    {"label": "senior", "at_least": 8},
                ],
            }
        },
    }
    return base | changes


@pytest.fixture
def registry() -> ModelRegistry:
    engine = create_engine("sqlite://")
    SQLModel.metadata.create_all(engine)
    return ModelRegistry(engine)


@pytest.mark.parametrize(
    ("changes", "path"),
    [
        ({"extra": 1}, ("extra",)),
        (
            {"versions": [{"version": "v1", "artifact": "x.skops", "tpyo": 1}]},
            ("versions", 0, "tpyo"),
        ),
        ({"outcomes": {"decision": "hired", "amonut": "pay"}}, ("outcomes", "amonut")),
        ({"router": {"target": "flags", "token": "s3cret"}}, ("router", "token")),
        (
            {"features": [{"name": "years", "type": "numeric", "unit": "y"}]},
            ("features", 0, "unit"),
        ),
    ],
)
def test_an_unknown_key_is_refused_at_registration_by_its_path(
    registry: ModelRegistry, changes: dict[str, Any], path: tuple[Any, ...]
) -> None:
    decoded = ModelManifest.model_validate(manifest(**changes))  # decoding stays lenient
    with pytest.raises(ManifestRejected) as refused:
        registry.register(decoded, "admin")
    assert refused.value.loc == path
    assert registry.get("hiring") is None


def test_a_manifest_of_known_keys_registers_and_derives_strata_and_groups(
    registry: ModelRegistry,
) -> None:
    decoded = ModelManifest.model_validate(manifest())
    assert registry.register(decoded, "admin") == 1
    stored = registry.get("hiring")
    assert stored is not None
    assert stored.feature_names == ["years", "school"]
    assert [stored.stratum_of({"years": y}) for y in (0, 2.99, 3, 7.5, 8, 40)] == [
        "junior",
        "junior",
        "mid",
        "mid",
        "senior",
        "senior",
    ]
    assert stored.group_of({"race": "c", "sex": "f"}) == "race=c|sex=f"


@pytest.mark.parametrize(
    ("bins", "says"),
    [
        ([{"label": "a", "below": 3}, {"label": "b", "at_least": 4}], "no gap"),
        ([{"label": "a", "below": 3}, {"label": "b", "at_least": 2}], "no gap, no overlap"),
        ([{"label": "a", "at_least": 0, "below": 3}, {"label": "b", "at_least": 3}], "open below"),
        ([{"label": "a", "below": 3}, {"label": "b", "at_least": 3, "below": 9}], "open above"),
    ],
)
def test_stratum_bins_must_cover_the_whole_range(bins: list[dict[str, Any]], says: str) -> None:
    with pytest.raises(ValidationError) as invalid:
        ModelManifest.model_validate(
            manifest(bins={"experience": {"feature": "years", "bins": bins}})
        )
    (error,) = invalid.value.errors()
    assert error["loc"][:3] == ("bins", "experience", "bins") or error["loc"][:2] == (
        "bins",
        "experience",
    )
    assert says in error["msg"]


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"groups": {"age": ["young"]}}, "groups.age: not one of protected_attributes"),
        ({"strata": []}, "bins.experience: not one of strata"),
        (
            {
                "bins": {
                    "experience": {
                        "feature": "school",
                        "bins": [{"label": "a", "below": 1}, {"label": "b", "at_least": 1}],
                    }
                }
            },
            "is not numeric",
        ),
        (
            {"features": [{"name": "hired", "type": "numeric"}], "strata": [], "bins": {}},
            "is an outcome or the label",
        ),
    ],
)
def test_names_must_refer_to_what_the_manifest_declares(changes: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        ModelManifest.model_validate(manifest(**changes))


def test_the_reference_s_example_is_a_manifest_of_known_keys() -> None:
    """docs/manifest.md's complete example stays true to the schema."""
    import re
    from pathlib import Path

    import yaml

    text = (Path(__file__).parents[1] / "docs" / "manifest.md").read_text()
    match = re.search(r"```yaml\n(.*?)```", text, re.S)
    assert match is not None
    example = ModelManifest.model_validate(yaml.safe_load(match.group(1)))
    assert example.unknown_keys() == []
    assert example.features and example.bins["experience"].feature == "years_experience"
    assert example.stratum_of({"years_experience": 9, "degree_level": "ms"}) == "senior|ms"
