"""`memberscore warehouse`: not built yet (issue #8)."""

from __future__ import annotations

import argparse

from memberscore.context import JobResult, RunContext
from memberscore.errors import NotBuiltYetError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=None,
                        help="port to listen on (default: a free port, printed)")


def run(ctx: RunContext, args: argparse.Namespace) -> JobResult:
    raise NotBuiltYetError(
        "`warehouse` is not implemented yet (tracked in issue #8); nothing was done"
    )
