"""The complaint itself: each group's outcomes and the gap, with intervals and counts.

Before: the serving model, live (the monitor's window that opened the incident, when
a watch opened it) and on held-out data. During containment: what the fallback really
decided while it served, read from the model's decision source when the assessment was
written (``findings.fallback_window``), and, after a canary breach, the fallback beside
the candidate as that analysis compared them. After: the candidate on the same held-out
data. A phase without evidence in this incident says so, with the reason.
"""

from __future__ import annotations

from contracts.fallback_window import FallbackWindow
from fairness.group_metrics import Disparity, SlicingMetrics
from fairness.live import WindowAnalysis
from reports.document import Section, Table
from reports.evidence import Evidence
from reports.formatting import MISSING, amount, counts, interval, moment, number

DISPARITIES = (
    ("disparate_impact_ratio", "approval-rate ratio (worst/best group)", False),
    ("demographic_parity_difference", "approval-rate difference", False),
    ("group_mean_ratio", "mean amount ratio (worst/best group)", False),
    ("conditional_amount_disparity", "amount gap within strata", True),
)


def complaint_section(evidence: Evidence) -> Section:
    rows: list[list[str]] = []
    trigger = evidence.state.trigger
    if trigger is not None and trigger.evaluation is not None:
        look = trigger.evaluation
        where = f"live, {moment(look.since)} to {moment(look.until)} ({look.provider})"
        rows += _live_rows("before (biased model serving)", where, look.fairness)
    else:
        rows.append(
            [
                "before (biased model serving)",
                "live",
                "no live window on record: the incident was not opened by a monitor",
                MISSING,
                MISSING,
                MISSING,
            ]
        )
    validation = evidence.validation
    if validation is not None:
        held_out = f"held-out data, {validation.rows:,} rows"
        for slicing in validation.baseline.held_out.slicings:
            rows += _disparity_rows("before (serving model)", held_out, slicing)
    rows += _fallback_rows(evidence.state.findings.fallback_window)
    canary = evidence.state.canary
    if canary is not None and canary.breach is not None:
        breach = canary.breach
        where = f"live canary look {breach.look}, {moment(breach.since)} to {moment(breach.until)}"
        rows += _live_rows("during containment (fallback vs candidate)", where, breach.analysis)
    if validation is not None:
        for slicing in validation.candidate.held_out.slicings:
            rows += _disparity_rows("after (candidate)", held_out, slicing)
    else:
        rows.append(
            [
                "after (candidate)",
                MISSING,
                "the candidate was not validated",
                MISSING,
                MISSING,
                MISSING,
            ]
        )
    table = Table(
        caption="The gap by group, before, during containment and after",
        columns=["phase", "evidence", "measure", "estimate", "interval", "counts"],
        rows=rows,
    )
    return Section(
        title="1. The complaint",
        paragraphs=[f"Reported problem: {evidence.state.summary}"],
        tables=[table, *_group_tables(evidence)],
    )


DURING = "during containment (fallback)"


def _fallback_rows(window: FallbackWindow | None) -> list[list[str]]:
    """What the fallback decided while it served: each group's decisions, then every gap
    with its interval and counts; or, with no decision to judge, why, and no number."""
    if window is None:
        why = "the fallback's decisions were not read in this incident (no impact assessment"
        why += " by a version that reads them)"
        return [[DURING, "live", why, MISSING, MISSING, MISSING]]
    where = "live"
    if window.since is not None and window.until is not None:
        where = f"live, {moment(window.since)} to {moment(window.until)}"
    if window.provider is not None:
        where += f" ({window.provider}, {window.decisions:,} decisions)"
    if window.analysis is None:
        why = window.unavailable or "no decision of the fallback to judge"
        return [[DURING, where, f"no numbers: {why}", MISSING, MISSING, MISSING]]
    by_group = window.analysis.samples.get("candidate", {})  # the judged side: the fallback
    rows = [[DURING, where, "decisions by group", MISSING, MISSING, counts(by_group)]]
    rows += _live_rows(DURING, where, window.analysis)
    if not window.analysis.results:
        rows.append([DURING, where, f"no comparison: {window.analysis.headline}", *[MISSING] * 3])
    return rows


def _disparity_rows(phase: str, where: str, slicing: SlicingMetrics) -> list[list[str]]:
    sizes = {g.group: g.size for g in slicing.groups}
    rows = []
    for field, label, percent in DISPARITIES:
        disparity: Disparity | None = getattr(slicing, field)
        if disparity is None or disparity.estimate is None:
            continue
        worst = " vs ".join(disparity.extremes)
        rows.append(
            [
                phase,
                where,
                f"{slicing.name}: {label}" + (f" ({worst})" if worst else ""),
                number(disparity.estimate, percent),
                interval(disparity.interval, percent),
                counts({g: sizes[g] for g in disparity.groups if g in sizes}),
            ]
        )
    return rows


def _live_rows(phase: str, where: str, analysis: WindowAnalysis) -> list[list[str]]:
    return [
        [
            phase,
            where,
            f"{result.metric.value} {result.comparison}",
            number(result.estimate),
            interval(result.interval),
            counts(result.counts),
        ]
        for result in analysis.results
    ]


def _group_tables(evidence: Evidence) -> list[Table]:
    """Each group's approval rate and mean amount, before and after, on held-out data."""
    validation = evidence.validation
    if validation is None:
        return []
    tables = []
    for before, after in zip(
        validation.baseline.held_out.slicings, validation.candidate.held_out.slicings, strict=True
    ):
        later = {g.group: g for g in after.groups}
        rows = []
        for group in before.groups:
            then = later.get(group.group)
            rows.append(
                [
                    group.group,
                    f"{group.size:,}",
                    _rate(group.selection_rate),
                    amount(group.mean_amount),
                    _rate(then.selection_rate) if then else MISSING,
                    amount(then.mean_amount) if then else MISSING,
                ]
            )
        tables.append(
            Table(
                caption=f"Outcomes by {before.name} (held-out data)",
                columns=[
                    "group",
                    "rows",
                    "approval before [interval]",
                    "mean amount before",
                    "approval after [interval]",
                    "mean amount after",
                ],
                rows=rows,
            )
        )
    return tables


def _rate(rate: object) -> str:
    iv = getattr(rate, "interval", None)
    if iv is None:
        return MISSING
    return f"{number(iv.estimate, True)} {interval(iv, True)} of {getattr(rate, 'trials', 0):,}"


def strata_section(evidence: Evidence) -> Section:
    """Inside each stratum of comparable cases, each group's mean and gap, before and after."""
    validation = evidence.validation
    section = Section(title="2. Within each stratum")
    if validation is None:
        section.paragraphs.append("The candidate was not validated: no stratum comparison.")
        return section
    for before, after in zip(
        validation.baseline.held_out.slicings, validation.candidate.held_out.slicings, strict=True
    ):
        old, new = before.conditional_detail, after.conditional_detail
        if old is None:
            continue
        later = {s.stratum: s for s in new.strata} if new else {}
        rows = []
        for stratum in old.strata:
            then = later.get(stratum.stratum)
            for group, count in stratum.group_counts.items():
                rows.append(
                    [
                        stratum.stratum,
                        group,
                        f"{count:,}",
                        amount(stratum.group_means.get(group)),
                        number(stratum.relative_gaps.get(group), True),
                        amount(then.group_means.get(group)) if then else MISSING,
                        number(then.relative_gaps.get(group), True) if then else MISSING,
                    ]
                )
        section.tables.append(
            Table(
                caption=f"{before.name}: mean amount and gap to the best-off group, by stratum "
                f"({', '.join(validation.strata) or 'no strata'})",
                columns=[
                    "stratum",
                    "group",
                    "rows",
                    "mean before",
                    "gap before",
                    "mean after",
                    "gap after",
                ],
                rows=rows,
            )
        )
        if old.skipped_strata:
            section.paragraphs.append(
                f"{before.name}: strata with fewer than {old.min_count} rows of some group were "
                f"not compared: {', '.join(old.skipped_strata)}"
            )
    if not section.tables:
        section.paragraphs.append("This model declares no amount, or no strata to compare within.")
    return section
