"""Kept so that ``from playbooks.canary import ...`` goes on working.

The types live in :mod:`contracts.playbook.canary`: a playbook is workflow input, and contracts
import nothing else of Fairlane.
"""

from contracts.playbook.canary import DEFAULT_RAMP, CanaryStep

__all__ = ["DEFAULT_RAMP", "CanaryStep"]
