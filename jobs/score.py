"""`memberscore score`: not built yet (issue #7)."""

from __future__ import annotations

import argparse

from memberscore.args import iso_date
from memberscore.context import JobResult, RunContext
from memberscore.errors import NotBuiltYetError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run-date", type=iso_date, required=True,
                        help="the day to process, YYYY-MM-DD (UTC)")


def run(ctx: RunContext, args: argparse.Namespace) -> JobResult:
    raise NotBuiltYetError(
        "`score` is not implemented yet (tracked in issue #7); nothing was done"
    )
