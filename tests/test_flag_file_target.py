"""A flagd flag file as a routing target, through the real routing activities.

Real files in a temporary directory, written by the same activities a worker runs:
the flag's shape, compare-and-set on the digest read, retries that change nothing,
other flags kept, and the bad input of issue 12 (a file that is not JSON, a flag
someone else changed since Fairlane read it, a file no operator declared).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError
from sqlmodel import SQLModel, create_engine
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.routing import RoutingActivities
from config import Settings
from config.targets import GATEWAY, FlagdFileTarget, RoutingTarget, TargetResolver, UnknownTarget
from contracts.canary import DeployVersionInput
from contracts.model import ModelManifest
from contracts.routing import RouteUpdate, Serving
from contracts.steps import ReadRouteInput, SetRouteInput, TargetRoute, VerifyRouteInput
from registry.limits import ManifestRejected
from registry.service import ModelRegistry
from targets.flagd_flag import flag_key

FLAGS = "flags"
MODEL = "hiring"
TEAM_FLAG = {
    "state": "ENABLED",
    "variants": {"on": True, "off": False},
    "defaultVariant": "off",
    "targeting": {"if": [{"in": ["@example.com", {"var": "email"}]}, "on", None]},
}


@pytest.fixture
def flag_path(tmp_path: Path) -> Path:
    """A flag file the team already uses for other flags (and a shared evaluator)."""
    path = tmp_path / "flags.json"
    path.write_text(
        json.dumps(
            {
                "$schema": "https://flagd.dev/schema/v0/flags.json",
                "flags": {"checkout.new-ui": TEAM_FLAG},
                "$evaluators": {"staff": {"in": ["@example.com", {"var": "email"}]}},
            },
            indent=4,
        )
    )
    return path


def _activities(path: Path) -> RoutingActivities:
    return RoutingActivities(TargetResolver({FLAGS: FlagdFileTarget(kind="flagd-file", path=path)}))


def _update(generation: int, serving: Serving = Serving.PRIMARY, **spec: Any) -> RouteUpdate:
    return RouteUpdate(
        serving=serving,
        primary_version="v1",
        generation=generation,
        updated_by="fairlane:test",
        reason="test",
        **spec,
    )


async def _set(
    activities: RoutingActivities, update: RouteUpdate, revision: str | None = None
) -> TargetRoute:
    result: TargetRoute = await ActivityEnvironment().run(
        activities.set_route,
        SetRouteInput(target=FLAGS, model=MODEL, update=update, expected_revision=revision),
    )
    return result


async def _read(activities: RoutingActivities) -> TargetRoute:
    result: TargetRoute = await ActivityEnvironment().run(
        activities.read_route, ReadRouteInput(target=FLAGS, model=MODEL)
    )
    return result


def _document(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def _flags(path: Path) -> dict[str, Any]:
    flags: dict[str, Any] = _document(path)["flags"]
    return flags


def _bytes(path: Path) -> bytes:
    return path.read_bytes()


def _write(path: Path, text: str) -> None:
    path.write_text(text)


def _listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# ---- the flag Fairlane writes, and reads back -------------------------------------------


async def test_the_route_is_written_as_a_flagd_flag_and_read_back_from_the_file(
    flag_path: Path,
) -> None:
    activities = _activities(flag_path)
    written = await _set(
        activities,
        _update(1, candidate_version="v2", canary_percent=5.0, shadow_versions=["v0"]),
    )
    flag = _flags(flag_path)[flag_key(MODEL)]
    assert flag["variants"] == {
        "primary": {"serving": "primary", "version": "v1"},
        "fallback": {"serving": "fallback"},
        "candidate": {"serving": "candidate", "version": "v2"},
    }
    assert flag["defaultVariant"] == "primary"
    assert flag["targeting"] == {"fractional": [["candidate", 500], ["primary", 9500]]}
    assert flag["metadata"]["generation"] == 1
    assert flag["metadata"]["shadowVersions"] == "v0"
    read = await _read(activities)
    assert read == written and read.revision is not None
    assert read.canary_percent == 5.0 and read.shadow_versions == ["v0"]
    assert read.candidate_version == "v2" and read.serving is Serving.PRIMARY


async def test_other_flags_and_keys_of_the_file_are_kept(flag_path: Path) -> None:
    before = _document(flag_path)
    activities = _activities(flag_path)
    first = await _set(activities, _update(1))
    await _set(activities, _update(2, Serving.FALLBACK, shadow_versions=["v1"]), first.revision)
    after = _document(flag_path)
    assert after["flags"]["checkout.new-ui"] == TEAM_FLAG
    assert after["$evaluators"] == before["$evaluators"]
    assert after["$schema"] == before["$schema"]
    assert list(after["flags"]) == ["checkout.new-ui", flag_key(MODEL)]


async def test_a_retry_of_an_applied_write_changes_nothing(flag_path: Path) -> None:
    activities = _activities(flag_path)
    first = await _set(activities, _update(1))
    flip = _update(2, Serving.FALLBACK, shadow_versions=["v1"])
    flipped = await _set(activities, flip, first.revision)
    on_disk = _bytes(flag_path)
    again = await _set(activities, flip, first.revision)  # the answer was lost; Temporal retries
    assert again == flipped
    assert _bytes(flag_path) == on_disk


async def test_two_models_written_at_once_into_one_file_both_land(flag_path: Path) -> None:
    targets = TargetResolver({FLAGS: FlagdFileTarget(kind="flagd-file", path=flag_path)})
    activities = RoutingActivities(targets)
    models = [f"model-{i}" for i in range(6)]
    await asyncio.gather(
        *(
            ActivityEnvironment().run(
                activities.set_route, SetRouteInput(target=FLAGS, model=m, update=_update(1))
            )
            for m in models
        )
    )
    flags = _flags(flag_path)
    assert {flag_key(m) for m in models} <= set(flags)
    assert flags["checkout.new-ui"] == TEAM_FLAG


async def test_a_route_that_cannot_be_served_is_refused_and_nothing_written(
    flag_path: Path,
) -> None:
    before = _bytes(flag_path)
    with pytest.raises(ApplicationError) as refused:
        await _set(_activities(flag_path), _update(1, Serving.CANDIDATE))
    assert refused.value.type == "RouteInvalid" and refused.value.non_retryable
    assert "needs a candidate_version" in refused.value.message
    assert _bytes(flag_path) == before


async def test_verify_reads_the_flag_back_and_deploy_names_what_it_did(flag_path: Path) -> None:
    activities = _activities(flag_path)
    first = await _set(activities, _update(1))
    flipped = await _set(
        activities, _update(2, Serving.FALLBACK, shadow_versions=["v1"]), first.revision
    )
    verified = await ActivityEnvironment().run(
        activities.verify_route,
        VerifyRouteInput(target=FLAGS, model=MODEL, expected=flipped.spec(), generation=2),
    )
    assert verified.target == FLAGS and verified.route.serving is Serving.FALLBACK
    assert verified.probe is None
    with pytest.raises(ApplicationError) as unverified:
        await ActivityEnvironment().run(
            activities.verify_route,
            VerifyRouteInput(target=FLAGS, model=MODEL, expected=first.spec(), generation=2),
        )
    assert unverified.value.type == "ContainmentUnverified"
    deployed = await ActivityEnvironment().run(
        activities.deploy_version,
        DeployVersionInput(target=FLAGS, model=MODEL, version="v2", artifact="hiring/v2.skops"),
    )
    assert "nothing was deployed" in deployed and str(flag_path) in deployed


# ---- bad input: nothing half-applied ----------------------------------------------------


async def test_a_flag_file_that_is_not_json_is_refused_naming_file_and_position(
    flag_path: Path,
) -> None:
    _write(flag_path, '{\n  "flags": {\n    "checkout.new-ui": {,\n  }\n}\n')
    before = _bytes(flag_path)
    activities = _activities(flag_path)
    for attempt in (_read(activities), _set(activities, _update(1))):
        with pytest.raises(ApplicationError) as refused:
            await attempt
        assert refused.value.type == "FlagFileInvalid" and refused.value.non_retryable
        assert str(flag_path) in refused.value.message
        assert "line 3, column 25" in refused.value.message
        assert "nothing was written" in refused.value.message
    assert _bytes(flag_path) == before
    assert [n for n in _listing(flag_path.parent) if "tmp" in n] == []


async def test_a_flag_changed_by_someone_else_since_it_was_read_is_refused_untouched(
    flag_path: Path,
) -> None:
    """Someone flips the flag by hand (same generation) after Fairlane read it: the
    write Fairlane computed from its read is refused, and the file keeps their change."""
    activities = _activities(flag_path)
    await _set(activities, _update(1, candidate_version="v2", canary_percent=25.0))
    read = await _read(activities)
    document = _document(flag_path)
    document["flags"][flag_key(MODEL)]["targeting"]["fractional"] = [
        ["candidate", 0],
        ["primary", 10_000],
    ]
    _write(flag_path, json.dumps(document))
    theirs = _bytes(flag_path)
    with pytest.raises(ApplicationError) as refused:
        await _set(
            activities,
            _update(2, Serving.FALLBACK, candidate_version="v2", shadow_versions=["v1"]),
            read.revision,
        )
    assert refused.value.type == "StaleRoute" and refused.value.non_retryable
    assert "changed since Fairlane read it" in refused.value.message
    assert str(read.revision) in refused.value.message
    assert _bytes(flag_path) == theirs


async def test_a_stale_generation_is_refused_untouched(flag_path: Path) -> None:
    activities = _activities(flag_path)
    await _set(activities, _update(3))
    before = _bytes(flag_path)
    with pytest.raises(ApplicationError) as refused:
        await _set(activities, _update(2, Serving.FALLBACK))
    assert refused.value.type == "StaleRoute"
    assert "not newer than" in refused.value.message
    assert _bytes(flag_path) == before


async def test_a_flag_edited_into_something_else_is_refused_not_guessed(flag_path: Path) -> None:
    activities = _activities(flag_path)
    await _set(activities, _update(1))
    document = _document(flag_path)
    document["flags"][flag_key(MODEL)]["defaultVariant"] = "on"
    _write(flag_path, json.dumps(document))
    with pytest.raises(ApplicationError) as refused:
        await _read(activities)
    assert refused.value.type == "FlagMalformed"
    assert "defaultVariant is 'on'" in refused.value.message


async def test_a_model_never_written_to_the_file_is_not_found(flag_path: Path) -> None:
    with pytest.raises(ApplicationError) as missing:
        await _read(_activities(flag_path))
    assert missing.value.type == "RouteNotFound" and missing.value.non_retryable


# ---- bad input: the file is the operator's, never the caller's --------------------------


async def test_a_flag_target_no_operator_declared_is_refused_and_nothing_written(
    tmp_path: Path,
) -> None:
    declared = tmp_path / "declared.json"
    activities = _activities(declared)
    with pytest.raises(ApplicationError) as refused:
        await ActivityEnvironment().run(
            activities.set_route,
            SetRouteInput(target="other-flags", model=MODEL, update=_update(1)),
        )
    assert refused.value.type == "UnknownRoutingTarget" and refused.value.non_retryable
    assert "'other-flags' is not declared" in refused.value.message
    assert _listing(tmp_path) == []


def test_a_manifest_cannot_name_a_flag_file() -> None:
    """A path beside the target id is refused at registration, by its path, and nothing
    is registered: where a route is written is the operator's to say."""
    body = {
        "id": "hiring",
        "versions": [{"version": "v1", "artifact": "hiring/v1.skops"}],
        "primary_version": "v1",
        "outcomes": {"decision": "hired"},
        "protected_attributes": ["race"],
        "router": {"target": FLAGS, "path": "/etc/flagd/elsewhere.json"},
    }
    engine = create_engine("sqlite://")
    SQLModel.metadata.create_all(engine)
    registry = ModelRegistry(engine)
    with pytest.raises(ManifestRejected) as refused:
        registry.register(ModelManifest.model_validate(body), "admin")
    assert refused.value.loc == ("router", "path")
    assert registry.get("hiring") is None


def test_operators_declare_flag_files_in_settings_with_absolute_paths(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "routes.flagd.json"
    monkeypatch.setenv(
        "FAIRLANE_ROUTING_TARGETS",
        json.dumps(
            {
                FLAGS: {"kind": "flagd-file", "path": str(path)},
                "prod-gw": {"url": "https://gw.internal"},
            }
        ),
    )
    settings = Settings(router_token=SecretStr("t"))
    assert settings.routing_targets[FLAGS] == FlagdFileTarget(kind="flagd-file", path=path)
    assert isinstance(settings.routing_targets["prod-gw"], RoutingTarget)
    resolver = settings.target_resolver()
    assert resolver.ids == [FLAGS, GATEWAY, "prod-gw"]
    assert resolver.resolve_route_target(FLAGS).path == path  # type: ignore[union-attr]
    with pytest.raises(UnknownTarget, match="flagd flag file, not an HTTP routing layer"):
        resolver.resolve(FLAGS)  # no decision log, no deployments at a flag file
    for bad, why in (
        ({"kind": "flagd-file", "path": "relative/flags.json"}, "must be absolute"),
        ({"kind": "flagd-file", "path": str(tmp_path / "flags.yaml")}, "must be a .json file"),
        ({"kind": "flagd-file", "path": str(path), "url": "http://x"}, "Extra inputs"),
        ({"kind": "launchdarkly", "path": str(path)}, "does not match any of the expected tags"),
    ):
        with pytest.raises(ValidationError, match=why):
            Settings(routing_targets={FLAGS: bad})


async def test_an_old_style_router_url_never_reaches_a_flag_file(flag_path: Path) -> None:
    before = _bytes(flag_path)
    with pytest.raises(ApplicationError) as refused:
        await ActivityEnvironment().run(
            _activities(flag_path).set_route,
            SetRouteInput(router_url="http://127.0.0.1:9", model=MODEL, update=_update(1)),
        )
    assert refused.value.type == "UnknownRoutingTarget"
    assert _bytes(flag_path) == before
