"""The HTTP route contract as an OpenAPI document, built from the contract's own models.

Any routing layer that implements these two operations can be a Fairlane routing
target (``kind: http``); Fairlane's reference gateway (router/app.py) is the reference
implementation. The document is generated from the pydantic models in
``contracts.routing`` that the gateway and Fairlane's client use, so the two cannot
drift: ``python -m targets.http_contract`` rewrites docs/route-contract.openapi.json,
and tests/test_route_contract.py fails when the file is not what this module builds or
when the reference gateway answers anything else. The prose is docs/route-contract.md.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from contracts.routing import Route, RouteError, RouteUpdate, StaleRouteRefusal

DOCUMENT = Path(__file__).resolve().parents[1] / "docs" / "route-contract.openapi.json"
ROUTE_PATH = "/v1/models/{model}/route"
VERSION = "1.0.0"
_REF = "#/components/schemas/{model}"


def _schemas() -> dict[str, Any]:
    models: list[tuple[type[BaseModel], Any]] = [
        (Route, "serialization"),
        (RouteUpdate, "validation"),
        (RouteError, "serialization"),
        (StaleRouteRefusal, "serialization"),
    ]
    _, schemas = models_json_schema(models, ref_template=_REF)
    defs: dict[str, Any] = schemas["$defs"]
    return dict(sorted(defs.items()))


def _json(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": _REF.format(model=model.__name__)}}},
    }


_UNAUTHORIZED = _json(
    RouteError, "No bearer token, or not the one this routing layer was given for Fairlane."
)
_UNKNOWN = _json(RouteError, "The routing layer has no route for this model (never deployed).")
_UPDATE_REF = _REF.format(model=RouteUpdate.__name__)
_MODEL = {
    "name": "model",
    "in": "path",
    "required": True,
    "description": "The model's id, as its Fairlane manifest names it.",
    "schema": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,62}$"},
}


def route_contract_openapi() -> dict[str, Any]:
    """The contract's OpenAPI 3.1 document."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Fairlane route contract",
            "version": VERSION,
            "description": (
                "How Fairlane reads and idempotently sets a model's route at a routing "
                "layer. See docs/route-contract.md for the rules in prose."
            ),
        },
        "security": [{"bearer": []}],
        "paths": {
            ROUTE_PATH: {
                "get": {
                    "operationId": "read_route",
                    "summary": "The model's route as the routing layer serves it now.",
                    "parameters": [_MODEL],
                    "responses": {
                        "200": _json(Route, "The current route."),
                        "401": _UNAUTHORIZED,
                        "404": _UNKNOWN,
                    },
                },
                "put": {
                    "operationId": "set_route",
                    "summary": "Set the route, creating the generation the update carries.",
                    "description": (
                        "Applied when the update's generation is newer than the routing "
                        "layer's, atomically with that check. The very same update again "
                        "(same generation, same routing) is a retry: 200 with the route "
                        "unchanged. Any other update whose generation is not newer: 409."
                    ),
                    "parameters": [_MODEL],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": _REF.format(model="RouteUpdate")}
                            }
                        },
                    },
                    "responses": {
                        "200": _json(
                            Route, "The route as set (or as it already was, for a retry)."
                        ),
                        "401": _UNAUTHORIZED,
                        "404": _UNKNOWN,
                        "409": _json(
                            StaleRouteRefusal,
                            "Stale: the generation is not newer and this is not a retry. "
                            "Nothing changed.",
                        ),
                        "422": _json(
                            RouteError,
                            "The body is invalid, or the route cannot be served (e.g. it names "
                            "a version the routing layer does not have). Nothing changed.",
                        ),
                    },
                },
            }
        },
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": (
                        "The credential operators declared for this target "
                        "(FAIRLANE_ROUTING_TARGETS: token or token_file)."
                    ),
                }
            },
            "schemas": _schemas(),
        },
    }


def render() -> str:
    return json.dumps(route_contract_openapi(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    """``python -m targets.http_contract [PATH]``: write the document (default: docs/)."""
    target = Path(argv[0]) if argv else DOCUMENT
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render())
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
