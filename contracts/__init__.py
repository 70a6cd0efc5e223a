"""Data types that cross a boundary: HTTP bodies, workflow and activity inputs and outputs.

Kept in one small package with no I/O so workflow code can import it freely.
"""
