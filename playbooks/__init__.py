"""Runbooks as YAML, and the pydantic schema that validates them."""
