"""Import directions (STYLE.md §12): the stages know nothing of the database, storage or the
queue; the API knows nothing of the pipeline or torch."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.paths import REPO

FORBIDDEN = {
    "services": {"backend", "models", "storage", "rq", "db", "processor", "processing", "worker"},
    "backend": {"processor", "processing", "services", "torch", "worker", "transformers"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_import_directions(package):
    files = sorted((REPO / package).rglob("*.py"))
    assert files
    offenders = {str(f.relative_to(REPO)): sorted(_imports(f) & FORBIDDEN[package]) for f in files}
    assert {f: bad for f, bad in offenders.items() if bad} == {}


def test_nothing_but_config_reads_the_environment():
    readers = [
        str(f.relative_to(REPO))
        for f in REPO.glob("*.py")
        if f.name != "config.py"
        if "os.environ" in f.read_text() or "getenv" in f.read_text()
    ]
    for package in ("backend", "services", "processing"):
        readers += [
            str(f.relative_to(REPO))
            for f in (REPO / package).rglob("*.py")
            if "os.environ" in f.read_text() or "getenv" in f.read_text()
        ]
    assert readers == []


def test_no_module_shadows_the_standard_library():
    import sys

    ours = {p.stem for p in REPO.rglob("*.py") if ".venv" not in p.parts}
    assert ours & set(sys.stdlib_module_names) == set()
