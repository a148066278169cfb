"""`memberscore generate`: not built yet (issue #3)."""

from __future__ import annotations

import argparse

from memberscore.args import iso_date, positive_int
from memberscore.context import JobResult, RunContext
from memberscore.errors import NotBuiltYetError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--members", type=positive_int, default=None,
                        help="members to generate (default: conf generate.members)")
    parser.add_argument("--days", type=positive_int, default=None,
                        help="days of history to generate (default: conf generate.days)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: conf)")
    parser.add_argument("--end-date", type=iso_date, default=None,
                        help="last generated day, YYYY-MM-DD (default: yesterday, UTC)")
    parser.add_argument("--clean", action="store_true",
                        help="generate no dirty rows (no quarantine exercise)")


def run(ctx: RunContext, args: argparse.Namespace) -> JobResult:
    raise NotBuiltYetError(
        "`generate` is not implemented yet (tracked in issue #3); nothing was done"
    )
