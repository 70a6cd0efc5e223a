"""A renderer-neutral document: titled sections of paragraphs and tables of strings.

The HTML and PDF renderers both draw this one structure, so they cannot disagree
about what the report says; each only decides how a table looks.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, model_validator


class Table(BaseModel):
    caption: str
    columns: list[str] = Field(min_length=1)
    rows: list[list[str]]

    @model_validator(mode="after")
    def _rectangular(self) -> Table:
        for index, row in enumerate(self.rows):
            if len(row) != len(self.columns):
                raise ValueError(f"row {index} of {self.caption!r} has {len(row)} cells")
        return self


class Section(BaseModel):
    title: str
    paragraphs: list[str] = Field(default_factory=list)
    tables: list[Table] = Field(default_factory=list)


class Document(BaseModel):
    title: str
    facts: list[tuple[str, str]] = Field(description="the header: label, value")
    sections: list[Section]
