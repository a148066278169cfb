"""The layers of the code (docs/architecture.md): jobs run on the library layer and
never import each other or the CLI; transforms import no job, no CLI, no config and
no I/O layer."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from memberscore.commands import JOBS

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


# --------------------------------------------------------------------------- the local harness

HARNESS = "memberscore.local"
# The commands that exist for the local harness itself: the synthetic bank and the
# local warehouse.  Everything else is production.
HARNESS_COMMANDS = ("demo", "generate", "warehouse", "broker")
# The two lazy imports production may take, each only on a local or drill path
# (module, then the name imported from it).
LAZY_HARNESS_IMPORTS = {
    "memberscore/warehouse/session.py": {"memberscore.local.warehouse_server",
                                         "memberscore.local.warehouse_server.local_warehouse"},
    "jobs/publish.py": {"memberscore.local.faults",
                        "memberscore.local.faults.hook_from_environment"},
    "memberscore/events/kafka.py": {"memberscore.local.broker_server",
                                    "memberscore.local.broker_server.local_broker"},
}


def production_files() -> list[Path]:
    harness_jobs = {f"{name}.py" for name in HARNESS_COMMANDS}
    files = [p for p in (ROOT / "memberscore").rglob("*.py")
             if (ROOT / "memberscore" / "local") not in p.parents]
    files += [p for p in (ROOT / "jobs").glob("*.py") if p.name not in harness_jobs]
    files += list((ROOT / "transforms").glob("*.py"))
    return sorted(files)


def top_level_modules(path: Path) -> set[str]:
    """The modules `path` imports when it is imported: module-level statements, not
    imports inside functions."""
    found: set[str] = set()
    pending = list(ast.parse(path.read_text(encoding="utf-8")).body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, (ast.If, ast.Try, ast.With)):
            pending.extend(ast.iter_child_nodes(node))
    return found


def _harness(modules: set[str]) -> set[str]:
    return {m for m in modules if m == HARNESS or m.startswith(HARNESS + ".")}


def test_production_never_imports_the_local_harness_at_module_level() -> None:
    files = production_files()
    assert ROOT / "jobs" / "publish.py" in files and ROOT / "transforms" / "tiles.py" in files
    assert not any("local" in p.relative_to(ROOT).parts[:2] for p in files)
    offending = {str(p.relative_to(ROOT)): sorted(_harness(top_level_modules(p)))
                 for p in files if _harness(top_level_modules(p))}
    assert offending == {}


def test_the_only_lazy_harness_imports_are_the_local_and_drill_paths() -> None:
    lazy = {str(p.relative_to(ROOT)): _harness(imported_modules(p)) for p in production_files()}
    assert {name: found for name, found in lazy.items() if found} == LAZY_HARNESS_IMPORTS


def test_the_nightly_jobs_load_without_the_harness() -> None:
    """What a Databricks python_wheel_task imports: the entry points and every job
    but the harness's own commands."""
    jobs = [name for name in JOBS if name not in HARNESS_COMMANDS]
    assert {"ingest", "features", "score", "publish", "pipeline"} <= set(jobs)
    code = (
        "import sys\n"
        "import memberscore.entrypoints\n"
        + "".join(f"import memberscore.jobs.{name}\n" for name in jobs)
        + "print(sorted(m for m in sys.modules if m.startswith('memberscore.local')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"
