"""`memberscore backfill`: not built yet (issue #4)."""

from __future__ import annotations

import argparse

from memberscore.args import iso_date
from memberscore.context import JobResult, RunContext
from memberscore.errors import NotBuiltYetError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--start", type=iso_date, required=True, help="first day, YYYY-MM-DD")
    parser.add_argument("--end", type=iso_date, required=True, help="last day, YYYY-MM-DD")
    parser.add_argument("--force", action="store_true",
                        help="rebuild days already built from the same inputs")


def run(ctx: RunContext, args: argparse.Namespace) -> JobResult:
    raise NotBuiltYetError(
        "`backfill` is not implemented yet (tracked in issue #4); nothing was done"
    )
