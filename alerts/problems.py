"""Why a body was refused, one problem per field, named the way the sender spelled it.

A monitor's operator reads these in a webhook log, far from our code, so every
problem carries the path into the body as sent (``alerts[3].startsAt``, the wire's
camelCase, not our attribute names) next to the machine-readable location.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

Loc = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class FieldProblem:
    loc: Loc
    """The path into the body, e.g. ``("alerts", 3, "startsAt")``; ``()`` is the body itself."""
    msg: str
    type: str

    @property
    def field(self) -> str:
        """The path as a reader writes it: ``alerts[3].startsAt`` (``body`` for the root)."""
        text = ""
        for part in self.loc:
            if isinstance(part, int):
                text += f"[{part}]"
            else:
                text += f".{part}" if text else part
        return text or "body"

    def as_detail(self) -> dict[str, Any]:
        return {
            "loc": ["body", *self.loc],
            "field": self.field,
            "msg": self.msg,
            "type": self.type,
            "message": f"{self.field}: {self.msg}",
        }


class AlertRejected(ValueError):
    """A delivery refused as a whole, with every problem found (not just the first)."""

    def __init__(self, problems: Sequence[FieldProblem]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(f"{p.field}: {p.msg}" for p in self.problems))


def parse_body(model: type[M], body: bytes) -> M:
    """Parse and validate a raw JSON body in one pass, or raise :class:`AlertRejected`."""
    try:
        return model.model_validate_json(body)
    except ValidationError as error:
        raise AlertRejected([_problem(e) for e in error.errors(include_url=False)]) from error


def _problem(error: ErrorDetails) -> FieldProblem:
    if error["type"] == "json_invalid":
        reason = error.get("ctx", {}).get("error", error["msg"])
        return FieldProblem((), f"not valid JSON: {reason}", "json_invalid")
    return FieldProblem(tuple(error["loc"]), error["msg"], error["type"])
