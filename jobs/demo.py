"""`memberscore demo`: not built yet (issue #9)."""

from __future__ import annotations

import argparse

from memberscore.args import positive_int
from memberscore.context import JobResult, RunContext
from memberscore.errors import NotBuiltYetError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--members", type=positive_int, default=None,
                        help="members to generate (default: conf generate.members)")
    parser.add_argument("--days", type=positive_int, default=None,
                        help="days of history to generate (default: conf generate.days)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: conf)")


def run(ctx: RunContext, args: argparse.Namespace) -> JobResult:
    raise NotBuiltYetError(
        "`demo` is not implemented yet (tracked in issue #9); nothing was done"
    )
