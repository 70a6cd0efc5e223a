"""Kept so that ``from playbooks.schema import ...`` goes on working.

The types live in :mod:`contracts.playbook.schema`: a playbook is workflow input, and contracts
import nothing else of Fairlane.
"""

from contracts.playbook.schema import Playbook

__all__ = ["Playbook"]
