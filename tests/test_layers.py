"""The layers of the code (docs/architecture.md): jobs run on the library layer and
never import each other or the CLI; transforms import no job, no CLI, no config and
no I/O layer."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports, at any depth (lazy imports inside functions too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _offending(folder: str, forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    offending = {}
    for path in sorted((ROOT / folder).glob("*.py")):
        bad = sorted(m for m in imported_modules(path)
                     if any(m == f or m.startswith(f + ".") for f in forbidden))
        if bad:
            offending[path.name] = bad
    return offending


def test_jobs_never_import_jobs_or_the_cli() -> None:
    assert _offending("jobs", ("memberscore.jobs", "memberscore.cli")) == {}


@pytest.mark.parametrize("forbidden", ["memberscore.jobs", "memberscore.cli",
                                       "memberscore.runner", "memberscore.lake",
                                       "memberscore.warehouse", "memberscore.config",
                                       "memberscore.errors"])
def test_transforms_import_no_job_cli_config_or_io_layer(forbidden: str) -> None:
    """Transforms take plain values (frames, columns, numbers): no settings objects,
    no config errors."""
    assert _offending("transforms", (forbidden,)) == {}


def test_the_check_sees_lazy_imports(tmp_path: Path) -> None:
    module = tmp_path / "job.py"
    module.write_text("def run():\n    from memberscore.jobs.features import read_bronze\n")
    assert "memberscore.jobs.features" in imported_modules(module)
