"""Secrets an operator mounts as files (Kubernetes secrets, Docker secrets), read at start-up.

A setting ``<field>_file`` names a file holding the secret ``<field>``; it is read once,
when the settings are built, so a worker or an API with a missing, unreadable or empty
secret file refuses to start, naming what is wrong, instead of failing at the first
message hours later. The path is the operator's (from the environment), never one a
playbook or a request named. Errors name the setting and the path, never the content.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr


class SecretFileError(ValueError):
    """A declared secret file that cannot give a secret; the message never holds one."""


def read_secret_file(what: str, path: Path) -> SecretStr:
    """The secret in ``path`` (surrounding whitespace dropped: files end with a newline).

    ``what`` names the setting for the error, e.g. ``notification channel 'room':
    webhook_url_file``."""
    if not path.is_absolute():
        raise SecretFileError(f"{what} {str(path)!r} must be an absolute path")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SecretFileError(f"{what} {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise SecretFileError(f"{what} {str(path)!r} is a directory, not a file") from None
    except PermissionError:
        raise SecretFileError(f"{what} {str(path)!r} cannot be read (permission denied)") from None
    except UnicodeDecodeError:
        raise SecretFileError(f"{what} {str(path)!r} is not UTF-8 text") from None
    except OSError as error:
        raise SecretFileError(
            f"{what} {str(path)!r} cannot be read ({error.strerror or type(error).__name__})"
        ) from None
    secret = text.strip()
    if not secret:
        raise SecretFileError(f"{what} {str(path)!r} is empty")
    return SecretStr(secret)


def inline_or_file(
    what: str, field: str, inline: SecretStr | None, path: Path | None
) -> SecretStr | None:
    """The secret given as ``field`` or as ``field_file``; both at once is an error."""
    if inline is not None and path is not None:
        raise SecretFileError(f"{what}: give `{field}` or `{field}_file`, not both")
    if path is not None:
        return read_secret_file(f"{what}: {field}_file", path)
    return inline
