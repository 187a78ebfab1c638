"""The layering the folders promise, read from the imports of every module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from recipe_ml.config import REPO_ROOT

EDGE = ("service.py", "edge", "runners")
"""Where BentoML may be imported."""


def _python_files(*roots: str) -> list[Path]:
    files: list[Path] = []
    for root in roots:
        path = REPO_ROOT / root
        files.extend([path] if path.is_file() else sorted(path.rglob("*.py")))
    return files


def _imports(path: Path) -> set[str]:
    """Top-level-qualified names of every module ``path`` imports (lazy imports inside functions too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _importers(module: str, files: list[Path]) -> list[str]:
    return [
        str(path.relative_to(REPO_ROOT))
        for path in files
        if any(name == module or name.startswith(f"{module}.") for name in _imports(path))
    ]


MEASURES_BENTOML = ["harness/floor.py"]
"""The benchmark's floor of one BentoML hop: a BentoML service with nothing behind it, so BentoML by definition."""


@pytest.mark.parametrize(("package", "allowed"), [("recipe_ml", []), ("scripts", []), ("harness", MEASURES_BENTOML)])
def test_bentoml_is_imported_only_at_the_edge(package: str, allowed: list[str]) -> None:
    assert _importers("bentoml", _python_files(package)) == allowed


def test_the_edge_is_where_bentoml_lives() -> None:
    assert _importers("bentoml", _python_files(*EDGE)), "the edge imports bentoml (else this test checks nothing)"


def test_storage_does_not_import_events() -> None:
    """Events build on storage (the applier writes to a store), never the other way round."""
    assert _importers("recipe_ml.events", _python_files("recipe_ml/storage")) == []


def test_the_product_does_not_import_the_harness() -> None:
    assert _importers("harness", _python_files("recipe_ml", *EDGE, "scripts")) == []
