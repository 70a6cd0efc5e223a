"""Kept so that ``from playbooks.steps import ...`` goes on working.

The types live in :mod:`contracts.playbook.steps`: a playbook is workflow input, and contracts
import nothing else of Fairlane.
"""

from contracts.playbook.steps import (
    DEFAULT_SIGNOFF_ROLES,
    MESSAGE_FIELDS,
    STEP_KINDS,
    AttributionAuditStep,
    AuditStep,
    Gates,
    ImpactAssessmentStep,
    MonitorStep,
    NotifyStep,
    ParallelAuditsStep,
    ProvenanceAuditStep,
    RemediateStep,
    RemediationStrategy,
    RouteStep,
    SandboxValidateStep,
    SignoffRole,
    SignoffStep,
    Step,
)

__all__ = [
    "DEFAULT_SIGNOFF_ROLES",
    "MESSAGE_FIELDS",
    "STEP_KINDS",
    "AttributionAuditStep",
    "AuditStep",
    "Gates",
    "ImpactAssessmentStep",
    "MonitorStep",
    "NotifyStep",
    "ParallelAuditsStep",
    "ProvenanceAuditStep",
    "RemediateStep",
    "RemediationStrategy",
    "RouteStep",
    "SandboxValidateStep",
    "SignoffRole",
    "SignoffStep",
    "Step",
]
