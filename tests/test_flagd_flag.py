"""A route as a flagd flag and back: every route Fairlane writes reads back as itself."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from contracts.routing import Route, Serving
from targets.flagd_flag import FlagShapeError, flag_digest, parse, render, spec_problems

AT = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def _route(**spec: Any) -> Route:
    return Route(
        model="hiring",
        primary_version="v1",
        generation=4,
        updated_by="fairlane:inc-1",
        reason="why",
        updated_at=AT,
        **spec,
    )


@pytest.mark.parametrize(
    "spec",
    [
        {},
        {"serving": Serving.FALLBACK, "shadow_versions": ["v1", "v0"]},
        {"candidate_version": "v2", "canary_percent": 1.0},
        {"candidate_version": "v2", "canary_percent": 33.333},
        {"candidate_version": "v2", "canary_percent": 100.0},
        {"serving": Serving.FALLBACK, "candidate_version": "v2", "canary_percent": 5.0},
        {"serving": Serving.CANDIDATE, "candidate_version": "v2", "canary_percent": 100.0},
        {"candidate_version": "v2", "canary_percent": 0.0},
    ],
)
def test_every_route_reads_back_as_itself(spec: dict[str, Any]) -> None:
    route = _route(**spec)
    definition = render(route)
    assert parse("hiring", definition) == route
    assert flag_digest(render(parse("hiring", definition))) == flag_digest(definition)


def test_the_canary_is_split_from_what_serves() -> None:
    definition = render(_route(serving=Serving.FALLBACK, candidate_version="v2", canary_percent=5))
    assert definition["defaultVariant"] == "fallback"
    assert definition["targeting"] == {"fractional": [["candidate", 500], ["fallback", 9500]]}
    assert "targeting" not in render(_route())


def test_routes_a_flag_cannot_hold_are_named() -> None:
    assert spec_problems(_route(candidate_version="v2", canary_percent=0.001).spec()) == [
        "canary_percent 0.001 is below the flag's resolution (0.01 %)"
    ]
    assert spec_problems(_route(serving=Serving.CANDIDATE).spec()) == [
        "serving 'candidate' needs a candidate_version"
    ]


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda d: d.update(state="DISABLED"), "state is 'DISABLED'"),
        (lambda d: d.update(description="x"), "unexpected key(s) ['description']"),
        (lambda d: d["variants"].pop("primary"), "defaultVariant 'primary' is not among"),
        (
            lambda d: (d["variants"].pop("primary"), d.update(defaultVariant="fallback")),
            "variant 'primary' is missing",
        ),
        (lambda d: d["metadata"].update(generation="4"), "metadata.generation is '4'"),
        (lambda d: d["metadata"].update(model="credit"), "metadata.model is 'credit'"),
        (
            lambda d: d["targeting"]["fractional"][1].__setitem__(1, 9000),
            "targeting is not a canary split",
        ),
        (
            lambda d: d.update(targeting={"if": [True, "candidate", None]}),
            "targeting is not a canary split",
        ),
        (lambda d: d["variants"]["candidate"].pop("version"), "variant 'candidate' names no"),
    ],
)
def test_a_flag_edited_out_of_shape_is_refused_naming_the_part(edit: Any, named: str) -> None:
    definition = render(_route(candidate_version="v2", canary_percent=5))
    edit(definition)
    with pytest.raises(FlagShapeError) as refused:
        parse("hiring", definition)
    assert named in str(refused.value)
