"""What the analysis steps conclude from each other's findings, computed from them alone."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.analysis import Findings


def confirm_proxies(findings: Findings) -> None:
    """A suspected proxy that is also a top driver of the gap is a confirmed proxy."""
    provenance, attribution = findings.provenance, findings.attribution
    if provenance is None or attribution is None:
        return
    suspected = set(provenance.suspected_proxies)
    findings.confirmed_proxies = [f for f in attribution.gap_drivers if f in suspected]


def proxies_to_check(findings: Findings) -> list[str]:
    """The proxies the sandbox checks a candidate against: confirmed first, then suspected."""
    provenance = findings.provenance
    suspected = provenance.suspected_proxies if provenance else []
    return list(dict.fromkeys([*findings.confirmed_proxies, *suspected]))
