"""Databases a model's decisions may be read from, as operators declare them.

Like routing targets (:mod:`config.targets`): a manifest names a database by id
(``decisions: {kind: sql, database: sales}``), never a URL, so whoever registers a
manifest cannot point the worker, and the credential, at a server of their choosing.
The password is given apart from the URL (inline from a secret store, or as a file the
worker reads) so that the URL can be logged and shown, and the password never is.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from contracts.targets import TARGET_ID

_ID = re.compile(TARGET_ID)


class DecisionDatabase(BaseModel):
    """One declared database: a SQLAlchemy URL without its password, and the password."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="SQLAlchemy URL, e.g. postgresql://reader@db:5432/sales")
    password: SecretStr | None = None
    password_file: Path | None = None

    @field_validator("url")
    @classmethod
    def _no_inline_password(cls, url: str) -> str:
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise ValueError("not a SQLAlchemy database URL") from None
        if parsed.password is not None:
            raise ValueError(
                "give the password as `password` or `password_file`, not inside the URL "
                "(the URL is logged and shown; the password never is)"
            )
        return url

    @model_validator(mode="after")
    def _one_password(self) -> DecisionDatabase:
        if self.password is not None and self.password_file is not None:
            raise ValueError("give `password` or `password_file`, not both")
        return self

    def resolved_url(self) -> URL:
        """The URL with its password, for the engine only."""
        url = make_url(self.url)
        if self.password is not None:
            return url.set(password=self.password.get_secret_value())
        if self.password_file is not None:
            return url.set(password=self.password_file.read_text().strip())
        return url


def validate_database_ids(databases: dict[str, DecisionDatabase]) -> dict[str, DecisionDatabase]:
    for database_id in databases:
        if not _ID.match(database_id):
            raise ValueError(f"decision database id {database_id!r} must be a lower-case slug")
    return databases
