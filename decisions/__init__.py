"""Decisions as Fairlane keeps them: records, their per-minute rollups, and windows over them.

One implementation shared by the Fairlane gateway (its decision log) and Fairlane's
own ingestion route, so a look at a window costs cells x minutes wherever decisions
were written.
"""
