"""structlog set-up: JSON in services, bound context, secrets redacted.

Called once at each process entry point. Context (incident id, workflow id, step,
attempt) is bound by the callers with ``structlog.contextvars`` so every line a
step logs carries it without repeating it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import MutableMapping
from typing import Any

import structlog

_SECRET_KEYS = re.compile(r"(token|secret|password|authorization|api_key)", re.IGNORECASE)
_BEARER = re.compile(r"Bearer\s+[A-Za-z0-9._~+/=-]+")


def redact_secrets(
    _logger: object, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Never let a credential reach a log line, whatever key or message carries it."""
    for key, value in list(event_dict.items()):
        if _SECRET_KEYS.search(key):
            event_dict[key] = "[redacted]"
        elif isinstance(value, str) and "Bearer" in value:
            event_dict[key] = _BEARER.sub("Bearer [redacted]", value)
    return event_dict


def configure_logging(fmt: str = "json", level: str = "info") -> None:
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    logging.basicConfig(format="%(message)s", level=level.upper())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_secrets,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        cache_logger_on_first_use=True,
    )
