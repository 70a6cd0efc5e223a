"""Load and validate playbooks, with errors that name the YAML path and line.

An incident commander fixing a playbook at 3 a.m. needs ``steps[2].roles[0].quorum
(line 31): Input should be greater than or equal to 1``, not a pydantic traceback.
"""

from __future__ import annotations

import functools
import re
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from contracts.playbook.schema import Playbook
from contracts.playbook.steps import STEP_KINDS

BUILTIN_PLAYBOOKS = ("drift-rollback", "ethical-audit")
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class PlaybookError(ValueError):
    """A playbook that cannot be used, with every problem found in it."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


def load_playbook_text(text: str, source: str = "<playbook>") -> Playbook:
    """The playbook in ``text``, validated; a copy of its own for the caller to keep."""
    return _validated(text, source).model_copy(deep=True)


@functools.lru_cache(maxsize=64)
def _validated(text: str, source: str) -> Playbook:
    """Parsed once per text: every incident opened reads its playbook again (a team may
    have edited it), and in an alert storm parsing the same YAML for each of a hundred
    incidents was a twentieth of the containment worker's CPU. A refusal is not cached."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise PlaybookError(source, [f"not valid YAML: {error}"]) from error
    if not isinstance(data, dict):
        raise PlaybookError(source, ["the document must be a mapping with name, version, steps"])
    try:
        return Playbook.model_validate(data)
    except ValidationError as error:
        node = yaml.compose(text, Loader=yaml.SafeLoader)  # for line numbers, only when needed
        raise PlaybookError(source, _describe(error, node)) from error


def load_playbook_file(path: Path) -> Playbook:
    try:
        text = path.read_text()
    except OSError as error:
        raise PlaybookError(str(path), [f"cannot read: {error.strerror}"]) from error
    return load_playbook_text(text, str(path))


def builtin_playbook_text(name: str) -> str:
    """The YAML of one of the playbooks that ship with Fairlane, by name."""
    if name not in BUILTIN_PLAYBOOKS:
        raise PlaybookError(name, [f"no such playbook; shipped: {', '.join(BUILTIN_PLAYBOOKS)}"])
    return resources.files("playbooks").joinpath(f"{name}.yaml").read_text()


def builtin_playbook(name: str) -> Playbook:
    """One of the playbooks that ship with Fairlane, by name."""
    return load_playbook_text(builtin_playbook_text(name), f"playbooks/{name}.yaml")


def find_playbook(name: str, extra_dir: Path | None = None) -> Playbook:
    """A playbook by name: ``extra_dir/<name>.yaml`` first (a team's own), then the shipped ones."""
    if not _NAME.match(name):
        raise PlaybookError(name, ["a playbook name is lower-case letters, digits and -"])
    if extra_dir is not None and (extra_dir / f"{name}.yaml").is_file():
        return load_playbook_file(extra_dir / f"{name}.yaml")
    return builtin_playbook(name)


def available_playbooks(extra_dir: Path | None = None) -> list[str]:
    names = set(BUILTIN_PLAYBOOKS)
    if extra_dir is not None and extra_dir.is_dir():
        names |= {p.stem for p in extra_dir.glob("*.yaml") if _NAME.match(p.stem)}
    return sorted(names)


def _describe(error: ValidationError, root: yaml.Node | None) -> list[str]:
    problems = []
    for item in error.errors():
        path = _yaml_path(item["loc"])
        line = _line_of(root, item["loc"])
        where = f"{path} (line {line})" if path and line else path or "playbook"
        problems.append(f"{where}: {item['msg']}")
    return problems


def _clean_loc(loc: tuple[Any, ...]) -> list[str | int]:
    """Drop the discriminator tags pydantic inserts (``steps.2.signoff.roles``)."""
    cleaned: list[str | int] = []
    for index, part in enumerate(loc):
        after_step_index = (
            index >= 2 and loc[index - 2] == "steps" and isinstance(loc[index - 1], int)
        )
        if after_step_index and part in STEP_KINDS:
            continue
        cleaned.append(part)
    return cleaned


def _yaml_path(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in _clean_loc(loc):
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _line_of(root: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    node = root
    for part in _clean_loc(loc):
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            node = next((v for k, v in node.value if k.value == part), None)
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            node = node.value[part]
        else:
            break
    return node.start_mark.line + 1 if node is not None else None
