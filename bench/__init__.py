"""Benchmarks: each starts what it needs, prints its figures, and compares to a baseline."""
