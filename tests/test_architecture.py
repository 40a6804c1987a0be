"""Import directions (STYLE.md §12), bottom layer first; each rule holds for the code today.

- ``config.py`` imports none of our modules: every other module may read settings.
- The foundation (``models``, ``db``, ``storage``, ``observability``, ``voice_library`` (the
  voiceprints kept in Postgres), and ``queueing/``: the jobs and webhooks Redis carries)
  imports ``config`` and itself at most: nothing of the API, the pipeline or the processes
  above it.
- ``lifecycle.py`` (a session's state changes) stands on the foundation: the API, the job and
  the operator commands all use it, it uses none of them.
- ``services/`` (the ML stages and pure functions) knows nothing of the database, storage,
  queues or HTTP: none of our modules but ``config``, and no sqlalchemy, redis, rq or httpx.
- ``processing/`` (the job's bookkeeping) may use the foundation and the services, never
  ``processor`` (which uses it), the API, the worker process, the CLI or the benchmarks.
- ``backend/`` (the API) knows nothing of the pipeline or torch.
- ``processor.py`` never imports the API or the processes that run it (worker, CLI, bench);
  ``worker.py`` never imports the API, the CLI or the benchmarks.
- ``cli/`` is the top: it may import anything (``bench``, ``research``, ``scripts`` and
  ``migrations`` are tools beside the product and are not checked here).

And the tests share factories and fixtures rather than each other (STYLE.md §13)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.paths import REPO

FOUNDATION = {"models", "db", "storage", "observability", "queueing", "voice_library"}
ABOVE_FOUNDATION = {
    "lifecycle", "backend", "processing", "services", "processor", "worker", "cli", "bench",
}  # fmt: skip
FORBIDDEN = {
    "config.py": FOUNDATION | ABOVE_FOUNDATION,
    **{f"{module}.py": ABOVE_FOUNDATION for module in FOUNDATION - {"queueing"}},
    "queueing": ABOVE_FOUNDATION,
    "lifecycle.py": ABOVE_FOUNDATION - {"lifecycle"},
    "services": (FOUNDATION | ABOVE_FOUNDATION | {"sqlalchemy", "redis", "rq", "httpx", "fastapi"})
    - {"services"},
    "processing": {"processor", "backend", "worker", "cli", "bench", "fastapi"},
    "backend": ABOVE_FOUNDATION - {"backend", "lifecycle"} | {"torch", "transformers"},
    "processor.py": {"backend", "worker", "cli", "bench"},
    "worker.py": {"backend", "cli", "bench"},
}
UNCHECKED_ROOT_MODULES: set[str] = set()


def _imported_modules(path: Path, package: str | None = None) -> set[str]:
    """Every module name ``path`` imports, dotted (``from a.b import c`` gives ``a.b`` and
    ``a.b.c``, as ``c`` may be a module); relative imports are resolved against ``package``
    where it is given, and left out where not."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.level == 0 or package):
            prefix = f"{package}." if node.level else ""
            module = (prefix + (node.module or "")).rstrip(".")
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def _imports(path: Path) -> set[str]:
    return {name.split(".")[0] for name in _imported_modules(path)}


def _files(target: str) -> list[Path]:
    path = REPO / target
    return [path] if path.suffix == ".py" else sorted(path.rglob("*.py"))


@pytest.mark.parametrize("target", sorted(FORBIDDEN))
def test_import_directions(target):
    files = _files(target)
    assert files and all(f.is_file() for f in files)
    offenders = {str(f.relative_to(REPO)): sorted(_imports(f) & FORBIDDEN[target]) for f in files}
    assert {f: bad for f, bad in offenders.items() if bad} == {}


def test_every_root_module_has_a_rule():
    """A new module at the root gets its place in the layers above, or is named unchecked."""
    root = {f.name for f in REPO.glob("*.py")}
    assert root - set(FORBIDDEN) - UNCHECKED_ROOT_MODULES == set()


def test_no_test_module_imports_another():
    """Tests share ``tests/factories.py``, ``tests/paths.py`` and the fixtures of
    ``conftest.py`` (which pytest injects; importing it would load it twice)."""
    offenders = {}
    for path in sorted((REPO / "tests").glob("*.py")):
        modules = _imported_modules(path, package="tests")
        bad = sorted(m for m in modules if m.startswith(("tests.test_", "tests.conftest")))
        if bad:
            offenders[path.name] = bad
    assert offenders == {}


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
