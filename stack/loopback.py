"""Free loopback ports, and settings that put a whole embedded stack on them.

Benchmarks and integration tests start their own stacks beside a developer's
`fairlane up` and beside each other; fixed ports would make them collide.
"""

from __future__ import annotations

import socket
from pathlib import Path

from config import Settings


def free_port() -> int:
    """A loopback port nothing listens on right now (the OS's choice)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def settings_on_free_ports(data_dir: Path) -> Settings:
    """Settings for a stack in ``data_dir`` whose Temporal, UI, API and router each get a
    free port."""
    temporal, ui, api, router = (free_port() for _ in range(4))
    return Settings(
        data_dir=data_dir,
        temporal_address=f"127.0.0.1:{temporal}",
        temporal_ui_port=ui,
        temporal_ui_url=f"http://127.0.0.1:{ui}",
        api_port=api,
        api_url=f"http://127.0.0.1:{api}",
        router_port=router,
        router_url=f"http://127.0.0.1:{router}",
    )
