"""Running Fairlane: the Temporal connection, the worker, and the embedded stack."""
