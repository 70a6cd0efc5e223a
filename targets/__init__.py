"""Routing targets: where a model's route lives, behind one read/set interface.

``protocol`` is the interface the routing activities drive; ``gateway`` speaks the
HTTP route contract (the reference gateway or any other); ``flag_file`` keeps the route
as a flagd flag (``flagd_flag``) in a JSON file the team's OpenFeature providers read.
"""
