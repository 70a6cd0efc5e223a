"""An incident's trail as console pages show it: a page of records at a time, a search,
and real links to the older and newer pages (``audit/browse.py`` does the reading).

The incident page's timeline and the audit page share this: the same query
parameters (``before``/``after`` a record's sequence number; ``kind``, ``actor``, ``q``
to search), the same links, so a search is kept while paging through it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlencode

from fastapi import HTTPException, Query, status
from sqlalchemy.engine import Engine

from audit.browse import TrailPage, TrailSearch, read_page


@dataclass(frozen=True)
class TrailQuery:
    """What the visitor asked for: where the page starts, and what to search."""

    before: int | None = None
    after: int | None = None
    kind: str = ""
    actor: str = ""
    q: str = ""

    def search(self, hidden_kinds: frozenset[str] = frozenset()) -> TrailSearch:
        return TrailSearch(kind=self.kind, actor=self.actor, text=self.q, hidden_kinds=hidden_kinds)

    def search_params(self) -> dict[str, str]:
        """The search as query parameters, leaving out empty fields."""
        fields = {"kind": self.kind, "actor": self.actor, "q": self.q}
        return {name: value for name, value in fields.items() if value}


def trail_query(
    before: Annotated[
        int | None, Query(ge=1, description="a page of records before this seq")
    ] = None,
    after: Annotated[
        int | None, Query(ge=0, description="a page of records after this seq")
    ] = None,
    kind: Annotated[str, Query(max_length=100)] = "",
    actor: Annotated[str, Query(max_length=200)] = "",
    q: Annotated[str, Query(max_length=200)] = "",
) -> TrailQuery:
    """The FastAPI dependency: the trail's paging and search parameters, checked.

    ``before``/``after`` are record sequence numbers: the page of records just before
    or just after one; neither is the newest page."""
    if before is not None and after is not None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "after: a page starts `before` a record or `after` one, not both",
        )
    return TrailQuery(before, after, kind.strip(), actor.strip(), q.strip())


@dataclass
class TrailLinks:
    newest: str
    oldest: str
    older: str | None
    newer: str | None


@dataclass
class TrailView:
    page: TrailPage
    query: TrailQuery
    links: TrailLinks

    @property
    def is_newest(self) -> bool:
        return self.page.newer_after is None


def _href(path: str, params: dict[str, str | int], fragment: str) -> str:
    query = urlencode(params)
    return f"{path}{'?' + query if query else ''}{'#' + fragment if fragment else ''}"


def links_for(
    page: TrailPage, query: TrailQuery, path: str, keep: dict[str, str], fragment: str = ""
) -> TrailLinks:
    """Links to the neighbouring pages, keeping the search and ``keep`` (e.g. the incident)."""
    base: dict[str, str | int] = {**keep, **query.search_params()}
    older = page.older_before
    newer = page.newer_after
    return TrailLinks(
        newest=_href(path, base, fragment),
        oldest=_href(path, {**base, "after": 0}, fragment),
        older=None if older is None else _href(path, {**base, "before": older}, fragment),
        newer=None if newer is None else _href(path, {**base, "after": newer}, fragment),
    )


async def trail_view(
    engine: Engine,
    incident_id: str,
    query: TrailQuery,
    path: str,
    keep: dict[str, str] | None = None,
    fragment: str = "",
    hidden_kinds: frozenset[str] = frozenset(),
) -> TrailView:
    """One page of the incident's trail for ``query``, with its links, read off the loop."""
    page = await asyncio.to_thread(
        read_page,
        engine,
        incident_id,
        query.search(hidden_kinds),
        before=query.before,
        after=query.after,
    )
    return TrailView(page, query, links_for(page, query, path, keep or {}, fragment))
