"""The audits' engines: data in, reports out, no Temporal and no HTTP.

Activities call these inside incidents; `fairlane audit ...` calls them on any data
set. The pure statistics they rest on live in `fairness/`.
"""
