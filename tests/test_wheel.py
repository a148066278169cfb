"""The built wheel alone runs the CLI: conf/ and expectations/ travel inside it, and
so do the Data Docs assets."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from memberscore.commands import JOBS
from memberscore.quality.data_docs import LOCAL_COPIES, MANIFEST, VENDOR

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Build from a copy so concurrent runs never share build/ or *.egg-info.
    source = tmp_path_factory.mktemp("src") / "memberscore"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".venv", ".git", ".memberscore", "build", "dist", "*.egg-info", "__pycache__",
        ".pytest_cache", ".mypy_cache", ".ruff_cache", "benchmarks"))
    out = tmp_path_factory.mktemp("dist")
    built = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out),
         str(source)],
        capture_output=True, text=True, cwd=source,
    )
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    wheels = list(out.glob("memberscore-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_contents(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in ["memberscore/cli.py", "memberscore/jobs/features.py",
                     "memberscore/transforms/__init__.py", "memberscore/conf/base.yml",
                     "memberscore/conf/local.yml", "memberscore/conf/prod.yml",
                     # the run report's page, and the local harness `demo` runs on
                     "memberscore/templates/run_report.html.j2",
                     "memberscore/local/__init__.py", "memberscore/local/warehouse_server.py",
                     # the scores API and its OpenAPI document
                     "memberscore/api/app.py", "memberscore/api/openapi.yml",
                     "memberscore/jobs/api.py",
                     # the "day published" event, its schema, and its commands
                     "memberscore/events/outbox.py",
                     "memberscore/events/day_published.v1.schema.json",
                     "memberscore/local/broker_server.py", "memberscore/jobs/events.py",
                     "memberscore/jobs/broker.py"]:
        assert required in names, required
    assert not any(n.startswith(("jobs/", "transforms/", "tests/")) for n in names)
    # the Data Docs assets (memberscore.quality.data_docs), from `make install`'s folder
    assets = "memberscore/quality/data_docs_assets/"
    assert f"{assets}{MANIFEST}" in names
    for target in LOCAL_COPIES.values():
        if target.startswith(VENDOR):
            assert f"{assets}node_modules/{target.removeprefix(VENDOR)}" in names, target
    assert f"{assets}node_modules/@fortawesome/fontawesome-free/webfonts/fa-solid-900.woff2" \
        in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "memberscore = memberscore.cli:main" in text
    for job in JOBS:  # every job of memberscore.commands, for Databricks tasks
        assert f"memberscore-{job} = memberscore.entrypoints:{job}" in text
    assert "memberscore-warehouse" not in text
    assert "memberscore-api" not in text  # a server, not a Databricks job
    assert "memberscore-broker" not in text
    assert "memberscore-events = memberscore.entrypoints:events" in text


def test_wheel_installs_and_runs_in_a_fresh_venv(wheel: Path, tmp_path: Path) -> None:
    """Install the wheel (not the source tree) into a new virtual environment and run
    it from an unrelated directory.  Third-party dependencies are borrowed from the
    test environment through a .pth file so the test stays fast; the wheel's own
    files come only from the wheel."""
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index",
                    "--quiet", str(wheel)], check=True, capture_output=True, text=True)
    purelib = subprocess.run([str(python), "-c", "import sysconfig;"
                              "print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    Path(purelib, "borrowed_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    work = tmp_path / "elsewhere"
    work.mkdir()
    run = subprocess.run([str(env_dir / "bin" / "memberscore"), "--help"], cwd=work,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "publish" in run.stdout and "warehouse" in run.stdout

    where = subprocess.run(
        [str(python), "-c", "import memberscore, memberscore.config as c;"
         "print(memberscore.__file__); print(c.load_settings('prod').lake.catalog)"],
        cwd=work, capture_output=True, text=True, check=True).stdout.split()
    assert where[0].startswith(str(env_dir)), where
    assert where[1] == "memberscore_prod"

    # Data Docs copy their CSS and scripts from the wheel's package data
    assets = subprocess.run(
        [str(python), "-c", "from memberscore.quality import data_docs;"
         "print(data_docs.asset_root())"],
        cwd=work, capture_output=True, text=True, check=True).stdout.strip()
    assert assets.startswith(str(env_dir)) and assets.endswith("data_docs_assets"), assets

    job = subprocess.run([str(env_dir / "bin" / "memberscore-features"), "--help"],
                         cwd=work, capture_output=True, text=True)
    assert job.returncode == 0 and "--run-date" in job.stdout
