"""The package lists in pyproject.toml agree with the folders on disk, and with each other.

Setuptools, mypy and import-linter each need a list of Fairlane's packages and none of
them can read another's, so the one source is the repository itself: every top-level
folder with an ``__init__.py``. A package added to the tree but to no list (shipped
untyped, or outside the layer contracts) fails here with the list to fix. Ruff needs no
list: it finds first-party packages on disk by itself.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
NOT_SHIPPED = {"examples", "bench", "tests"}
"""First-party, but not in the wheel: the example models, the benchmarks and the tests."""
NOT_PRODUCT = {"demo", "examples", "bench", "tests"}
"""Users of the product, which the product never imports."""


def on_disk() -> set[str]:
    return {
        path.parent.name
        for path in ROOT.glob("*/__init__.py")
        if not path.parent.name.startswith(".") and path.parent.name not in {"build", "data"}
    }


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def contract(name_starts: str) -> dict[str, Any]:
    contracts: list[dict[str, Any]] = pyproject()["tool"]["importlinter"]["contracts"]
    found = [c for c in contracts if c["name"].startswith(name_starts)]
    assert len(found) == 1, f"one import-linter contract named {name_starts!r}"
    return found[0]


def test_the_wheel_ships_the_product_and_the_demo() -> None:
    include = pyproject()["tool"]["setuptools"]["packages"]["find"]["include"]
    shipped = {pattern.removesuffix("*") for pattern in include}
    assert shipped == on_disk() - NOT_SHIPPED, (
        "[tool.setuptools.packages.find] include should be exactly "
        f"{sorted(on_disk() - NOT_SHIPPED)}"
    )


def test_mypy_checks_every_package_but_the_tests_strictly() -> None:
    mypy = pyproject()["tool"]["mypy"]
    assert mypy["strict"] is True
    assert set(mypy["files"]) == on_disk() - {"tests"}, (
        f"[tool.mypy] files should be exactly {sorted(on_disk() - {'tests'})}"
    )
    assert "overrides" not in mypy or all(
        not any(flag in override for flag in ("strict", "ignore_errors"))
        for override in mypy["overrides"]
    ), "no package is let off strict mode"


def test_import_linter_sees_every_package_but_the_tests() -> None:
    roots = set(pyproject()["tool"]["importlinter"]["root_packages"])
    assert roots == on_disk() - {"tests"}, (
        f"[tool.importlinter] root_packages should be exactly {sorted(on_disk() - {'tests'})}"
    )


def test_the_layer_contracts_name_every_package() -> None:
    roots = on_disk() - {"tests"}
    product = roots - NOT_PRODUCT
    bottom = contract("contracts are the bottom layer")
    assert set(bottom["forbidden_modules"]) == roots - {"contracts"}
    no_demo = contract("the product never imports the demo")
    assert set(no_demo["source_modules"]) == product
    assert set(no_demo["forbidden_modules"]) == roots & NOT_PRODUCT
    pure = contract("fairness is pure maths")
    assert set(pure["forbidden_modules"]) == roots - {"fairness", "contracts"}


def test_ruff_is_left_to_find_first_party_packages_itself() -> None:
    isort = pyproject()["tool"]["ruff"]["lint"].get("isort", {})
    assert "known-first-party" not in isort, "a second list to keep in step; ruff reads the tree"
