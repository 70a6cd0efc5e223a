"""The client for a declared target, by its kind (the routing activities' one switch)."""

from __future__ import annotations

from config.targets import ResolvedFlagFile, ResolvedTarget
from targets.flag_file import FlagFileTarget
from targets.gateway import GatewayTarget


def open_target(
    resolved: ResolvedTarget | ResolvedFlagFile, timeout_s: float = 10.0
) -> GatewayTarget | FlagFileTarget:
    if isinstance(resolved, ResolvedFlagFile):
        return FlagFileTarget(resolved)
    return GatewayTarget(resolved, timeout_s)
