"""One function per job, named in setup.py as the `memberscore-<job>` console scripts.

Databricks `python_wheel_task` calls these with the task's `parameters` in sys.argv:
`memberscore-features --run-date 2026-11-20 --env prod` is the same as
`memberscore --env prod features --run-date 2026-11-20`.
"""

from __future__ import annotations

import sys

from memberscore.cli import main

_GLOBAL_FLAGS_WITH_VALUE = ("--env", "--run-id")
_GLOBAL_SWITCHES = ("--verbose", "-v")


def _run(command: str) -> None:
    """Move global options before the command, run it, exit with its status."""
    rest = sys.argv[1:]
    front: list[str] = []
    back: list[str] = []
    i = 0
    while i < len(rest):
        arg = rest[i]
        flag = arg.split("=", 1)[0]
        if flag in _GLOBAL_FLAGS_WITH_VALUE:
            if "=" in arg:
                front.append(arg)
            else:
                front.extend(rest[i:i + 2])
                i += 1
        elif arg in _GLOBAL_SWITCHES:
            front.append(arg)
        else:
            back.append(arg)
        i += 1
    raise SystemExit(main([*front, command, *back]))


def demo() -> None:
    _run("demo")


def generate() -> None:
    _run("generate")


def ingest() -> None:
    _run("ingest")


def features() -> None:
    _run("features")


def backfill() -> None:
    _run("backfill")


def validate() -> None:
    _run("validate")


def train() -> None:
    _run("train")


def score() -> None:
    _run("score")


def publish() -> None:
    _run("publish")


def monitor() -> None:
    _run("monitor")


def pipeline() -> None:
    _run("pipeline")
