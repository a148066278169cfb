"""`memberscore publish`: not built yet (issue #8)."""

from __future__ import annotations

import argparse

from memberscore.args import iso_date
from memberscore.context import JobResult, RunContext
from memberscore.errors import NotBuiltYetError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run-date", type=iso_date, required=True,
                        help="the day to process, YYYY-MM-DD (UTC)")
    parser.add_argument("--table", action="append", default=None, metavar="T",
                        help="publish only this table (repeatable; default: all in conf)")


def run(ctx: RunContext, args: argparse.Namespace) -> JobResult:
    raise NotBuiltYetError(
        "`publish` is not implemented yet (tracked in issue #8); nothing was done"
    )
