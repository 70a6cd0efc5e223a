"""One look of the live canary analysis: is the candidate fair on the traffic it served so far?

The input is a window of live decisions as sufficient statistics
(:class:`~contracts.metrics.DecisionCell`), never rows, so one look costs the same at
1% of traffic as at 100%. Two kinds of test are run:

* fairness metrics, on the candidate's own decisions only, comparing every unordered
  pair of groups present (the stable side has its own, separately managed biases; what
  the candidate must show is that *it* treats groups alike);
* guards, comparing the candidate to the stable side with all groups pooled (a
  candidate that approves everyone equally is fair and still a regression).

Judgement is asymmetric on purpose, because a breach rolls back and a false rollback
stalls the remediation of a real incident:

* BREACH only when the confidence interval lies entirely on the wrong side of the
  threshold: the data then *demonstrate* harm at the look's alpha;
* PASS when there are enough samples and the point estimate is on the right side,
  even if the interval still straddles the threshold (the bake goes on, and the
  next looks see more data);
* INCONCLUSIVE when a group has fewer than the minimum samples (never a pass, never
  a breach), or when the estimate is on the wrong side but the interval still
  reaches the threshold: the bake should be extended, by about ``samples_needed``.

Orientation of pairwise comparisons: the two groups are taken in sorted name order
(first, second). Differences (demographic parity, equalized odds) are always
``second - first`` and labelled ``"B-A"``, judged on their absolute value. Ratios
(disparate impact, group mean ratio) are put worse-off over better-off, so the
estimate reads directly against the minimum; the label names that direction (``"B/A"``
when B is the worse-off group, and also on a tie). The conditional disparity is the
worse-off group's gap, labelled the same way.

Multiplicity: every enabled test over the groups present is one comparison, and the
look's family-wise alpha (from :func:`fairness.sequential.look_alpha`) is divided
among them by Bonferroni. The count depends only on the thresholds and the groups,
not on which comparisons had enough samples, so the error budget of a look cannot be
gamed by the data. Intervals are two-sided at the corrected alpha; a breach uses one
of their sides, so each test errs at most at half its share.

Metrics that need ground truth (equalized odds, error-rate increase) are advisory:
outcomes arrive weeks after a decision, so they are usually missing (NOT_APPLICABLE)
or thin in a canary window. Their INCONCLUSIVE does not hold the window back; their
BREACH does roll back.

Pure: no I/O, no clocks, safe in workflow code. Plain loops over the cells, no
pandas: the analysis runs every interval in production and ~20,000 times per
simulated study.

The package follows the look's seams: :mod:`.tallies` reduces the cells to sufficient
statistics per side and group; :mod:`.verdicts` turns one interval into a verdict
(pass, breach, inconclusive) with its reason and sample sizes; :mod:`.pairwise` holds
the fairness metrics between two groups of the candidate and :mod:`.guards` the
comparisons of the candidate with the stable side; :mod:`.measurable` switches off the
tests on an outcome the model does not make; :mod:`.window` runs them all and reaches
the look's verdict. The thresholds and result types are data that cross
boundaries (playbooks, manifests, workflow histories), so they live in
:mod:`contracts.fairness` and are re-exported here.
"""

from contracts.fairness import (
    LiveMetric,
    LiveThresholds,
    MetricResult,
    MetricVerdict,
    WindowAnalysis,
)
from fairness.live.window import ADVISORY, analyse_window

__all__ = [
    "ADVISORY",
    "LiveMetric",
    "LiveThresholds",
    "MetricResult",
    "MetricVerdict",
    "WindowAnalysis",
    "analyse_window",
]
