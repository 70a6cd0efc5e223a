"""The CLI's way to the API: bearer token from settings, errors as clear messages."""

from __future__ import annotations

from typing import Any

import httpx
import typer

from config import Settings


def operator_token_path(settings: Settings) -> Any:
    return settings.data_dir / "operator-token"


def resolve_token(settings: Settings) -> str:
    if settings.api_token is not None:
        return settings.api_token.get_secret_value()
    path = operator_token_path(settings)
    if path.exists():
        return str(path.read_text().strip())
    raise CliError(
        "no API token: set FAIRLANE_API_TOKEN (see `fairlane tokens create`), "
        f"or run `fairlane up`, which writes an operator token to {path}"
    )


class CliError(Exception):
    """A message for the person at the terminal; printed without a traceback."""


def _request(settings: Settings, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {resolve_token(settings)}"}
    try:
        response = httpx.request(
            method, f"{settings.api_url}{path}", headers=headers, timeout=30, **kwargs
        )
    except httpx.TransportError as error:
        raise CliError(f"cannot reach the API at {settings.api_url}: {error}") from error
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        if isinstance(detail, list):  # validation errors: name each field
            detail = "; ".join(
                f"{'.'.join(str(p) for p in e.get('loc', []))}: {e.get('msg')}"
                if isinstance(e, dict)
                else str(e)
                for e in detail
            )
        raise CliError(f"HTTP {response.status_code}: {detail}")
    return response


def call(settings: Settings, method: str, path: str, **kwargs: Any) -> Any:
    """A JSON API call."""
    return _request(settings, method, path, **kwargs).json()


def call_raw(settings: Settings, method: str, path: str) -> tuple[str, str]:
    """A document API call: its text and its assessment digest header."""
    response = _request(settings, method, path)
    return response.text, response.headers.get("X-Assessment-Digest", "")


def fail(message: str, code: int = 1) -> None:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)
