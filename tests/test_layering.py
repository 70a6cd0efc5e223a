"""The layers hold: `lint-imports` over the project, and proof that each contract bites.

The contracts are in pyproject.toml (``[tool.importlinter]``); `make lint` runs the same
command. The second test builds a throwaway tree of empty first-party packages with one
crossing import and checks the contract it crosses is reported broken, so a contract
that had silently stopped matching anything would fail here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = str(Path(sys.executable).parent / "lint-imports")


def lint_imports(cwd: Path, *config: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(cwd))
    return subprocess.run(
        [LINT_IMPORTS, "--no-logo", "--no-cache", *config],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def importlinter_config() -> dict[str, Any]:
    config: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"][
        "importlinter"
    ]
    return config


def test_the_project_keeps_its_layers() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    contracts = importlinter_config()["contracts"]
    assert f"Contracts: {len(contracts)} kept, 0 broken." in result.stdout, result.stdout


CROSSINGS = [
    # (module written into the throwaway tree, what it imports, the contract it crosses)
    ("contracts/crossing.py", "fairness", "contracts are the bottom layer"),
    ("contracts/crossing.py", "playbooks", "contracts are the bottom layer"),
    ("router/crossing.py", "demo", "the product never imports the demo"),
    ("cli/crossing.py", "bench", "the product never imports the demo"),
    ("workflows/crossing.py", "store", "workflows are deterministic"),
    ("workflows/crossing.py", "activities", "workflows are deterministic"),
    ("fairness/crossing.py", "config", "fairness is pure maths"),
]


@pytest.mark.parametrize(("module", "imported", "contract"), CROSSINGS)
def test_a_crossed_layer_breaks_its_contract(
    tmp_path: Path, module: str, imported: str, contract: str
) -> None:
    config = importlinter_config()
    for package in config["root_packages"]:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / module).write_text(f"import {imported}\n")
    contracts = "\n".join(_contract_toml(c) for c in config["contracts"])
    roots = ", ".join(f'"{p}"' for p in config["root_packages"])
    (tmp_path / "layers.toml").write_text(
        f"[tool.importlinter]\nroot_packages = [{roots}]\n\n{contracts}"
    )

    result = lint_imports(tmp_path, "layers.toml")

    assert result.returncode != 0, result.stdout
    broken = [line for line in result.stdout.splitlines() if line.endswith("BROKEN")]
    assert len(broken) == 1 and broken[0].startswith(contract), result.stdout


def _contract_toml(contract: dict[str, Any]) -> str:
    """One contract as written in pyproject, without its ignored imports (the modules
    they name do not exist in the throwaway tree)."""
    lines = ["[[tool.importlinter.contracts]]"]
    for key, value in contract.items():
        if key == "ignore_imports":
            continue
        if isinstance(value, list):
            lines.append(f"{key} = [{', '.join(repr(str(v)) for v in value)}]")
        else:
            lines.append(f"{key} = {value!r}")
    return "\n".join(lines) + "\n"
