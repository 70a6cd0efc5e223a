"""How a manifest and a request name the router they act on: a declared routing target.

Kept apart from the manifest so every request type (activity inputs, watch and ramp-step
inputs) can carry a target without importing the manifest.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, model_validator

from contracts.known_keys import ManifestPart

TARGET_ID = r"^[a-z0-9][a-z0-9-]{0,62}$"
"""A routing target's id: a lower-case slug, declared by operators in the worker's settings."""


class RouterRef(ManifestPart):
    """Where a model's route lives: a routing target declared by operators, by id.

    Never a URL chosen by whoever registers the manifest: the worker resolves the id to
    the URL and credential operators declared with it (``config/targets.py``), so a
    credential only goes where it was declared to go. ``url`` is the pre-target form,
    kept only so incidents and histories recorded with it still read; registration
    refuses it, and a worker honours it only if it is exactly a declared target's URL.
    Any other key (a flag file ``path``, a token) is refused at registration, by its
    path: those are the operator's.
    """

    target: str | None = Field(
        default=None,
        pattern=TARGET_ID,
        description="id of a routing target declared in FAIRLANE_ROUTING_TARGETS, e.g. gateway",
    )
    url: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="deprecated, refused at registration: name a `target` instead",
    )

    @model_validator(mode="after")
    def _one_of(self) -> RouterRef:
        if self.target is None and self.url is None:
            raise ValueError("name the routing `target` (e.g. gateway)")
        if self.target is not None and self.url is not None:
            raise ValueError("name a routing `target`, not a `url`")
        return self


class RoutedTo(BaseModel):
    """The routing target of an activity's (or child workflow's) request.

    ``target`` is the id; ``router_url`` is only the pre-target form recorded in older
    histories, accepted by a worker only when it is a declared target's URL.
    """

    target: str | None = Field(default=None, pattern=TARGET_ID)
    router_url: str | None = Field(default=None, description="deprecated: use `target`")

    @model_validator(mode="after")
    def _addressed(self) -> RoutedTo:
        if self.target is None and self.router_url is None:
            raise ValueError("name the routing `target`")
        return self

    def router_ref(self) -> RouterRef:
        if self.target is not None:
            return RouterRef(target=self.target)
        return RouterRef(url=self.router_url)
