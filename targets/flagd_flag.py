"""A model's route as one flagd flag definition, and back (pure, no I/O).

The flag ``fairlane.route.<model>`` has the variants ``primary``, ``fallback`` and
(while there is one) ``candidate``. Each variant's value is a small object a service
switches on: ``{"serving": "primary", "version": "v1"}``, ``{"serving": "fallback"}``,
``{"serving": "candidate", "version": "v2"}``. ``defaultVariant`` is what serves. A
canary is ``fractional`` targeting on the evaluation's ``targetingKey`` (flagd hashes
it with the flag key, so one key always lands on the same side): the candidate gets
the canary share, the serving variant the rest, in weights of 1/10,000 (0.01 %). An
evaluation without a targeting key gets ``defaultVariant``. Shadow versions, the
generation and who set it why are flag ``metadata`` (flagd allows only strings, numbers
and booleans there, so shadow versions are one comma-separated string).

Reading back is strict: a flag that is not in this shape (edited by hand into
something else) is refused, naming what is wrong, rather than guessed at.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from contracts.routing import Route, RouteSpec, Serving

FLAG_KEY_PREFIX = "fairlane.route."
FLAGD_SCHEMA = "https://flagd.dev/schema/v0/flags.json"
WEIGHT_SCALE = 10_000
"""Fractional weights per 100 %: 0.01 % resolution, well inside flagd's int32 total."""
_FLAG_KEYS = {"state", "variants", "defaultVariant", "targeting", "metadata"}


class FlagShapeError(ValueError):
    """A flag definition that is not a Fairlane route (the message names the part)."""


def flag_key(model: str) -> str:
    return f"{FLAG_KEY_PREFIX}{model}"


def flag_digest(definition: dict[str, Any]) -> str:
    """The flag's revision: sha256 of its canonical JSON (key order and spacing aside)."""
    canonical = json.dumps(definition, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def spec_problems(spec: RouteSpec) -> list[str]:
    """Why ``spec`` cannot be written as a flag (empty when it can)."""
    problems = []
    if spec.serving is Serving.CANDIDATE and spec.candidate_version is None:
        problems.append("serving 'candidate' needs a candidate_version")
    if spec.canary_percent > 0 and spec.candidate_version is None:
        problems.append("canary_percent above 0 needs a candidate_version")
    if spec.canary_percent > 0 and candidate_weight(spec.canary_percent) == 0:
        problems.append(
            f"canary_percent {spec.canary_percent:g} is below the flag's resolution "
            f"({100 / WEIGHT_SCALE:g} %)"
        )
    problems += [
        f"shadow version {version!r} contains a comma"
        for version in spec.shadow_versions
        if "," in version
    ]
    return problems


def candidate_weight(canary_percent: float) -> int:
    return round(canary_percent * WEIGHT_SCALE / 100)


def render(route: Route) -> dict[str, Any]:
    """The flagd flag definition of ``route``."""
    problems = spec_problems(route.spec())
    if problems:
        raise FlagShapeError("; ".join(problems))
    variants: dict[str, dict[str, str]] = {
        Serving.PRIMARY.value: {"serving": "primary", "version": route.primary_version},
        Serving.FALLBACK.value: {"serving": "fallback"},
    }
    if route.candidate_version is not None:
        variants[Serving.CANDIDATE.value] = {
            "serving": "candidate",
            "version": route.candidate_version,
        }
    definition: dict[str, Any] = {
        "state": "ENABLED",
        "variants": variants,
        "defaultVariant": route.serving.value,
    }
    weight = candidate_weight(route.canary_percent)
    if weight > 0 and route.serving is not Serving.CANDIDATE:
        definition["targeting"] = {
            "fractional": [
                [Serving.CANDIDATE.value, weight],
                [route.serving.value, WEIGHT_SCALE - weight],
            ]
        }
    definition["metadata"] = {
        "model": route.model,
        "generation": route.generation,
        "shadowVersions": ",".join(route.shadow_versions),
        "canaryPercent": route.canary_percent,
        "updatedBy": route.updated_by,
        "reason": route.reason,
        "updatedAt": route.updated_at.isoformat(),
    }
    return definition


def parse(model: str, definition: Any) -> Route:
    """The route a flag definition holds; :class:`FlagShapeError` if it holds none."""
    if not isinstance(definition, dict):
        raise FlagShapeError("the flag is not a JSON object")
    unknown = sorted(set(definition) - _FLAG_KEYS)
    if unknown:
        raise FlagShapeError(f"unexpected key(s) {unknown}")
    if definition.get("state") != "ENABLED":
        raise FlagShapeError(f"state is {definition.get('state')!r}, not 'ENABLED'")
    variants = definition.get("variants")
    if not isinstance(variants, dict):
        raise FlagShapeError("variants is not an object")
    serving = _serving(definition.get("defaultVariant"), variants)
    metadata = definition.get("metadata")
    if not isinstance(metadata, dict):
        raise FlagShapeError("metadata is missing: a Fairlane route flag carries its generation")
    if metadata.get("model", model) != model:
        raise FlagShapeError(f"metadata.model is {metadata.get('model')!r}, not {model!r}")
    primary = _version(variants, Serving.PRIMARY)
    if primary is None:
        raise FlagShapeError("variant 'primary' is missing")
    candidate = _version(variants, Serving.CANDIDATE)
    canary = _canary_percent(definition.get("targeting"), serving, metadata)
    generation = metadata.get("generation")
    if not isinstance(generation, int) or isinstance(generation, bool) or generation < 0:
        raise FlagShapeError(f"metadata.generation is {generation!r}, not a whole number >= 0")
    shadows = _text(metadata, "shadowVersions")
    try:
        updated_at = datetime.fromisoformat(_text(metadata, "updatedAt"))
        return Route(
            model=model,
            serving=serving,
            primary_version=primary,
            candidate_version=candidate,
            shadow_versions=[v for v in shadows.split(",") if v],
            canary_percent=canary,
            generation=generation,
            updated_by=_text(metadata, "updatedBy"),
            reason=_text(metadata, "reason"),
            updated_at=updated_at,
        )
    except ValueError as error:
        raise FlagShapeError(f"metadata does not describe a route: {error}") from None


def _serving(default_variant: Any, variants: dict[str, Any]) -> Serving:
    try:
        serving = Serving(default_variant)
    except ValueError:
        raise FlagShapeError(
            f"defaultVariant is {default_variant!r}, not one of primary, fallback, candidate"
        ) from None
    if serving.value not in variants:
        raise FlagShapeError(f"defaultVariant {serving.value!r} is not among the variants")
    return serving


def _version(variants: dict[str, Any], serving: Serving) -> str | None:
    value = variants.get(serving.value)
    if value is None:
        return None
    if not isinstance(value, dict) or value.get("serving") != serving.value:
        raise FlagShapeError(f"variant {serving.value!r} is not {{'serving': {serving.value!r}}}")
    version = value.get("version")
    if serving is Serving.FALLBACK:
        return None
    if not isinstance(version, str) or not version:
        raise FlagShapeError(f"variant {serving.value!r} names no version")
    return version


def _canary_percent(targeting: Any, serving: Serving, metadata: dict[str, Any]) -> float:
    """The candidate's share from the fractional split itself; the exact percent from the
    metadata only where it agrees with the weights (the weights are what flagd serves)."""
    stated = metadata.get("canaryPercent")
    stated_ok = isinstance(stated, int | float) and not isinstance(stated, bool)
    if targeting is None or targeting == {}:
        # Serving the candidate, nobody is split off: the percent is only a record.
        return float(stated) if serving is Serving.CANDIDATE and stated_ok else 0.0  # type: ignore[arg-type]
    split = targeting.get("fractional") if isinstance(targeting, dict) else None
    if (
        not isinstance(split, list)
        or len(targeting) != 1
        or len(split) != 2
        or not all(isinstance(part, list) and len(part) == 2 for part in split)
        or [split[0][0], split[1][0]] != [Serving.CANDIDATE.value, serving.value]
        or not all(isinstance(part[1], int) and part[1] >= 0 for part in split)
        or split[0][1] + split[1][1] != WEIGHT_SCALE
    ):
        raise FlagShapeError(
            "targeting is not a canary split "
            f"(fractional [['candidate', w], ['{serving.value}', {WEIGHT_SCALE} - w]])"
        )
    weight = int(split[0][1])
    if stated_ok and candidate_weight(float(stated)) == weight:  # type: ignore[arg-type]
        return float(stated)  # type: ignore[arg-type]
    return weight * 100 / WEIGHT_SCALE


def _text(metadata: dict[str, Any], key: str) -> str:
    value = metadata.get(key, "")
    if not isinstance(value, str):
        raise FlagShapeError(f"metadata.{key} is not a string")
    return value
