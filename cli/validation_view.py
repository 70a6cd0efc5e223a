"""`fairlane audit validate`'s text: every gate before and after, and who drives each problem.

One row per gate and slicing: the baseline's value with its interval, the candidate's,
the threshold and the verdict on the candidate; under a failed or inconclusive gate, the
group that drives it (the worst-off group of a failure, the groups too small to judge of
an inconclusive one).
"""

from __future__ import annotations

from analysis.validation import ValidationReport
from fairness.gates import Gate, GateResult, Verdict, driving_group
from fairness.intervals import Interval

EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_BAD_INPUT = 2
EXIT_INCONCLUSIVE = 3
EXIT_CODES = {
    Verdict.PASS: EXIT_PASS,
    Verdict.FAIL: EXIT_FAIL,
    Verdict.INCONCLUSIVE: EXIT_INCONCLUSIVE,
}


def _value(result: GateResult | None) -> str:
    if result is None or result.interval is None:
        return "—"
    return _interval(result.interval)


def _interval(interval: Interval) -> str:
    return f"{interval.estimate:.3f} [{interval.lower:.3f}, {interval.upper:.3f}]"


def before_after(report: ValidationReport) -> list[str]:
    """The headline, the gate table, and the driving group under each failed/inconclusive gate."""
    baseline = {
        (r.gate, r.slicing): r
        for r in (report.baseline_gate_report.results if report.baseline_gate_report else [])
    }
    header = (
        f"{'gate':<30} {'slicing':<16} {'baseline':<26} {'candidate':<26} {'threshold':>9}  verdict"
    )
    lines = [report.headline, "", header, "-" * len(header)]
    for result in report.gate_report.results:
        before = baseline.get((result.gate, result.slicing))
        before_text = "(reference)" if result.gate is Gate.ACCURACY_LOSS else _value(before)
        lines.append(
            f"{result.gate.value:<30} {result.slicing or 'all rows':<16} {before_text:<26} "
            f"{_value(result):<26} {result.threshold:>9.3f}  {result.verdict.value}"
        )
        if result.verdict is not Verdict.PASS:
            group = driving_group(result, report.candidate.held_out)
            if group is not None:
                lines.append(f"{'':<4}driven by {group}")
            lines.append(f"{'':<4}{result.reason}")
    return lines
