"""The model registry on SQLite and on a real Postgres, and manifest validation."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from contracts.model import ModelManifest
from registry.service import ManifestError, ModelRegistry, load_manifest_file
from store.db import create_tables, make_engine

MANIFEST = {
    "id": "credit-limit",
    "versions": [{"version": "v1", "artifact": "models/v1.skops"}],
    "primary_version": "v1",
    "outcomes": {"decision": "approved", "amount": "credit_limit"},
    "features": [
        {"name": "income", "type": "numeric"},
        {"name": "zip_code", "type": "categorical"},
    ],
    "protected_attributes": ["group"],
    "strata": ["income_band", "credit_band"],
    "router": {"url": "http://127.0.0.1:8300"},
}


@pytest.fixture(params=["sqlite", "postgres"])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> ModelRegistry:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'fairlane.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    engine = make_engine(url)
    create_tables(engine)
    registry = ModelRegistry(engine)
    with engine.begin() as connection:
        connection.exec_driver_sql("DELETE FROM registered_model")
    return registry


def test_register_read_and_revise(registry: ModelRegistry) -> None:
    manifest = ModelManifest.model_validate(MANIFEST)
    assert registry.register(manifest, "admin") == 1
    assert registry.get("credit-limit") == manifest
    revised = manifest.model_copy(update={"description": "v2 of the manifest"})
    assert registry.register(revised, "admin") == 2
    assert registry.get("credit-limit") == revised
    assert [row.id for row in registry.list()] == ["credit-limit"]
    assert registry.get("unknown") is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"primary_version": "v9"}, "primary_version 'v9' is not one of ['v1']"),
        ({"id": "Credit Limit"}, "must be a lower-case slug"),
        ({"outcomes": {}}, "name a binary `decision` column"),
        ({"router": {"url": "ftp://x"}}, "String should match pattern"),
        ({"protected_attributes": []}, "at least 1 item"),
    ],
)
def test_manifest_mistakes_are_named(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("[", r"\[").replace("(", r"\(")):
        ModelManifest.model_validate({**MANIFEST, **change})


def test_manifest_file_errors_name_the_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump({**MANIFEST, "versions": [{"version": "v1"}]}))
    with pytest.raises(ManifestError, match=r"m.yaml: versions.0.artifact: Field required"):
        load_manifest_file(path)
    with pytest.raises(ManifestError, match="cannot read"):
        load_manifest_file(tmp_path / "missing.yaml")
