"""One function per job (memberscore.commands.JOBS), the `memberscore-<job>` console
scripts setup.py declares.

Databricks `python_wheel_task` calls these with the task's `parameters` in sys.argv:
`memberscore-features --run-date 2026-11-20 --env prod` is the same as
`memberscore --env prod features --run-date 2026-11-20`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from memberscore.cli import main
from memberscore.commands import JOBS

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



def __getattr__(name: str) -> Callable[[], None]:
    """`memberscore.entrypoints:<job>`, the console script `memberscore-<job>`, for
    every job in memberscore.commands.JOBS (module attributes made on demand)."""
    if name not in JOBS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

    def entry_point() -> None:
        _run(name)

    entry_point.__name__ = entry_point.__qualname__ = name
    return entry_point
