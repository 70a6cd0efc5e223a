"""Kept so that ``from playbooks.durations import ...`` goes on working.

The types live in :mod:`contracts.durations`: a playbook is workflow input, and contracts
import nothing else of Fairlane.
"""

from contracts.durations import Duration, format_duration, parse_duration

__all__ = ["Duration", "format_duration", "parse_duration"]
