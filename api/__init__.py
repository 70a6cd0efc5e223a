"""The FastAPI app: incidents, sign-offs, models, playbooks and the audit trail, under /v1."""
