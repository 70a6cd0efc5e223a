"""Fairness maths with no I/O: group outcome metrics the audit, the gates and the monitor share."""
