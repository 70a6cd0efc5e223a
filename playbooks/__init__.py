"""Runbooks as YAML (the shipped ones) and the loader that validates them.

The schema they are validated against is in :mod:`contracts.playbook` (a playbook is
workflow input); ``playbooks.schema``, ``playbooks.steps`` and the other old module
names re-export it.
"""
