"""The playbook's schema: typed steps, validated when a playbook is loaded.

A playbook travels into the incident workflow as input, so its types are contracts;
the shipped YAML files and the loader that reads them stay in :mod:`playbooks`.
"""
