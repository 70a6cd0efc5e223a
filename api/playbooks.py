"""Playbooks over HTTP: which exist, and what a given one says."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, status

from api.deps import Reader, SettingsDep
from api.incidents import SLUG
from playbooks.loader import PlaybookError, available_playbooks, find_playbook
from playbooks.schema import Playbook

router = APIRouter(prefix="/v1/playbooks", tags=["playbooks"])


@router.get("", response_model=list[str])
def list_playbooks(settings: SettingsDep, _: Reader) -> list[str]:
    return available_playbooks(settings.playbooks_dir)


@router.get("/{name}", response_model=Playbook)
def show_playbook(
    name: Annotated[str, Path(pattern=SLUG)],
    settings: SettingsDep,
    _: Reader,
) -> Playbook:
    try:
        return find_playbook(name, settings.playbooks_dir)
    except PlaybookError as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from error
