"""CPU seconds a process and its children have used, from Linux's /proc.

On a machine shared with other work, decisions per second measure the neighbours as much
as Fairlane; the CPU a service spent per decision does not. With it, a figure reads as
"this many decisions per core-second", which is what "10,000 a second on 2 cores" asks.
"""

from __future__ import annotations

import os
from pathlib import Path

_PROC = Path("/proc")
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> list[str] | None:
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces


def _children(pid: int) -> list[int]:
    found = []
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None and int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def tree_cpu_seconds(pid: int) -> float | None:
    """User and system CPU of ``pid`` and its live descendants; None without /proc."""
    if not (_PROC / str(pid)).exists():
        return None
    total = 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        fields = _stat(current)
        if fields is None:
            continue
        total += (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime
        pending.extend(_children(current))
    return total
