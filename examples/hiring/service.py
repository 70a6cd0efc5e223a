"""The hiring team's screening service: asks the route flag, scores, reports to Fairlane.

Written as a team would write it against Fairlane, with nothing of Fairlane's inside
its request path but files and HTTP:

* **Who answers** each applicant is the flag ``fairlane.route.<model>`` that Fairlane
  writes to the team's flag file, read by the real OpenFeature SDK with the flagd
  provider in in-process file mode; the targeting key is the applicant id, so the canary
  share is sticky per applicant.
* **What answers** is the version's artifact (a plain scikit-learn pipeline, opened by
  name at its registered sha256 through Fairlane's one scorer), or the declarative
  fallback rules (Fairlane's format, at their registered sha256, evaluated by the same
  engine as Fairlane's gateway) while the flag says ``fallback``.
* **Every decision** is reported to ``POST /v1/models/{id}/decisions`` over HTTP with a
  ``decision_reporter`` token, and the ground truth later to ``/outcomes``; Fairlane's
  canary and drift monitor read those. The versions the flag keeps in shadow
  (``shadowVersions``, e.g. the biased model while contained) score every applicant too;
  their decisions are never returned, and are reported marked as shadow.

A version the service has not seen (a remediation candidate) is looked up in Fairlane's
registry (``GET /v1/models/{id}``, a read-only token) and loaded from the shared
artifacts directory, only at the sha256 registered there.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
from openfeature import api
from openfeature.contrib.provider.flagd import FlagdProvider
from openfeature.contrib.provider.flagd.config import ResolverType
from openfeature.evaluation_context import EvaluationContext
from openfeature.flag_evaluation import FlagEvaluationDetails

from analysis.scoring import Scorer, load_scorer
from contracts.fallback_rules import FallbackRuleSet, parse_rules
from contracts.model import ModelManifest
from router.decision_log import shadow_id
from router.rules import RulesEngine
from store.artifacts import ArtifactStore
from targets.flagd_flag import flag_key

FALLBACK = {"serving": "fallback"}
"""What the service assumes when the flag cannot be read: the rules, never the model."""
BATCH = 1_000


@dataclass(frozen=True)
class Served:
    """One applicant's decision and who made it, and what each shadowed version said."""

    applicant_id: str
    serving: str  # primary | candidate | fallback
    version: str  # the model version, or the rules' version
    hired: bool
    shadows: tuple[tuple[str, bool], ...] = ()  # (version, its decision), never returned


class HiringService:
    """One instance per process; :meth:`close` stops the flag provider."""

    def __init__(
        self,
        *,
        model: str,
        flag_file: Path,
        artifacts_dir: Path,
        fairlane_url: str,
        reporter_token: str,
        reader_token: str,
        poll_ms: int = 50,
    ) -> None:
        self.model = model
        self.flag = flag_key(model)
        self._store = ArtifactStore(artifacts_dir)
        self._scorers: dict[str, Scorer] = {}
        self._http = httpx.Client(base_url=fairlane_url, timeout=30)
        self._reporter = {"Authorization": f"Bearer {reporter_token}"}
        self._reader = {"Authorization": f"Bearer {reader_token}"}
        self.rules = self._fallback(self.manifest())
        self._domain = f"hiring-{uuid.uuid4().hex[:8]}"
        self._provider = FlagdProvider(
            resolver_type=ResolverType.FILE,
            offline_flag_source_path=str(flag_file),
            deadline_ms=poll_ms,
        )
        api.set_provider_and_wait(self._provider, self._domain)
        self._flags = api.get_client(self._domain)

    def close(self) -> None:
        self._provider.shutdown()
        self._http.close()

    def route(self, applicant_id: str | None) -> FlagEvaluationDetails[Any]:
        """The flag's answer for one applicant (no id: what serves everyone else)."""
        context = (
            EvaluationContext(targeting_key=applicant_id) if applicant_id else EvaluationContext()
        )
        return self._flags.get_object_details(self.flag, FALLBACK, context)

    def manifest(self) -> ModelManifest:
        """The model as Fairlane's registry has it now."""
        response = self._http.get(f"/v1/models/{self.model}", headers=self._reader)
        response.raise_for_status()
        return ModelManifest.model_validate(response.json())

    def _fallback(self, manifest: ModelManifest) -> RulesEngine:
        """The manifest's fallback rules, read at their registered sha256."""
        if manifest.fallback is None:
            raise ValueError(f"model {manifest.id!r} declares no fallback rules")
        text = self._store.read_pinned(manifest.fallback.rules, manifest.fallback.sha256)
        rules: FallbackRuleSet = parse_rules(
            text.decode(),
            {f.name: f.type for f in manifest.features},
            decision=manifest.outcomes.decision is not None,
            amount=manifest.outcomes.amount is not None,
        )
        return RulesEngine(rules, decides=True, grants=False)

    def _scorer(self, version: str) -> Scorer:
        if version not in self._scorers:
            registered = self.manifest().version(version)
            self._scorers[version] = load_scorer(
                self._store, registered.artifact, registered.sha256
            )
        return self._scorers[version]

    def serve(self, applicants: pd.DataFrame) -> list[Served]:
        """Decide every applicant as the flag routes them (scored in one batch per version),
        and score them with each version the flag keeps in shadow too."""
        details = [self.route(str(i)) for i in applicants["applicant_id"]]
        routes = [d.value for d in details]
        sides = pd.Series(
            [str(r.get("serving", "fallback")) for r in routes], index=applicants.index
        )
        versions = pd.Series(
            [str(r.get("version") or self.rules.version) for r in routes], index=applicants.index
        )
        hired = pd.Series(False, index=applicants.index)
        for version in versions[sides != "fallback"].unique():
            rows = applicants[(versions == version) & (sides != "fallback")]
            hired[rows.index] = self._decide(version, rows)
        by_rules = applicants[sides == "fallback"]
        if len(by_rules):
            decided = self.rules.score(by_rules).decision
            assert decided is not None
            hired[by_rules.index] = decided
        shadows = self._shadows(applicants, details, versions)
        return [
            Served(str(a), str(s), str(v), bool(h), shadow)
            for a, s, v, h, shadow in zip(
                applicants["applicant_id"], sides, versions, hired, shadows, strict=True
            )
        ]

    def _decide(self, version: str, rows: pd.DataFrame) -> pd.Series:
        scores = self._scorer(version).score(rows)
        assert scores.decision is not None, f"version {version} makes no decision"
        return pd.Series(scores.decision, index=rows.index)

    def _shadows(
        self,
        applicants: pd.DataFrame,
        details: Sequence[FlagEvaluationDetails[Any]],
        versions: pd.Series,
    ) -> list[tuple[tuple[str, bool], ...]]:
        """Per applicant, each shadowed version's decision, as the gateway shadows: every
        applicant the flag's ``shadowVersions`` name, except where that version answered
        live (its live decision already says the same)."""
        named = [
            [v for v in str(d.flag_metadata.get("shadowVersions", "")).split(",") if v]
            for d in details
        ]
        shadowed: list[list[tuple[str, bool]]] = [[] for _ in named]
        for version in sorted({v for names in named for v in names}):
            wanted = [
                i
                for i, names in enumerate(named)
                if version in names and versions.iloc[i] != version
            ]
            if not wanted:
                continue
            decided = self._decide(version, applicants.iloc[wanted])
            for i, hired in zip(wanted, decided, strict=True):
                shadowed[i].append((version, bool(hired)))
        return [tuple(s) for s in shadowed]

    def report(
        self,
        manifest: ModelManifest,
        applicants: pd.DataFrame,
        served: Sequence[Served],
        at: datetime,
    ) -> int:
        """Report the decisions (batches of :data:`BATCH`); how many were new to Fairlane.

        Shadow decisions are marked as the gateway's decision log marks them: ``shadow``,
        the shadowed version, the live side's ``served_by``, and the live decision's id
        with ``/shadow/<version>`` (:func:`router.decision_log.shadow_id`). Fairlane logs
        them, and the canary and the monitor leave them out."""
        columns = reported_columns(manifest)
        records: list[dict[str, Any]] = []
        for s, (_, row) in zip(served, applicants.iterrows(), strict=True):
            common = {
                "served_by": s.serving,
                "at": at.isoformat(),
                "values": {c: _plain(row[c]) for c in columns},
            }
            records.append(
                {
                    **common,
                    "decision_id": s.applicant_id,
                    "version": s.version,
                    "decision": s.hired,
                    **({"rules_version": self.rules.version} if s.serving == "fallback" else {}),
                }
            )
            records += [
                {
                    **common,
                    "decision_id": shadow_id(s.applicant_id, version),
                    "version": version,
                    "shadow": True,
                    "decision": hired,
                }
                for version, hired in s.shadows
            ]
        return self._post("decisions", records)

    def report_outcomes(self, applicants: pd.DataFrame, label: str) -> int:
        """Report the ground truth (``label``) of applicants already reported."""
        records = [
            {"decision_id": str(a), "outcome": bool(o)}
            for a, o in zip(applicants["applicant_id"], applicants[label], strict=True)
        ]
        return self._post("outcomes", records)

    def _post(self, kind: str, records: list[dict[str, Any]]) -> int:
        written = 0
        for start in range(0, len(records), BATCH):
            response = self._http.post(
                f"/v1/models/{self.model}/{kind}",
                headers=self._reporter,
                json={kind: records[start : start + BATCH]},
            )
            if response.status_code >= 400:
                raise RuntimeError(
                    f"Fairlane refused {kind}: {response.status_code} {response.text}"
                )
            written += int(response.json().get("written", 0))
        return written


def reported_columns(manifest: ModelManifest) -> list[str]:
    """What Fairlane needs with each decision: protected attributes, column strata, and
    the feature of each binned stratum."""
    binned = {b.feature for b in manifest.bins.values()}
    columns = [
        *manifest.protected_attributes,
        *[s for s in manifest.strata if s not in manifest.bins],
    ]
    return list(dict.fromkeys([*columns, *sorted(binned)]))


def _plain(value: Any) -> str | int | float | bool:
    return value.item() if hasattr(value, "item") else value  # type: ignore[no-any-return]
