"""`memberscore backfill --start D1 --end D2 [--force]`: the feature snapshot of every
day in [D1, D2].

Days are processed in chunks (`features.backfill_chunk_days`).  For each chunk the
transactions are read once into per-member daily tiles (transforms/tiles.py); the
input fingerprint of every day comes from the tiles, and days whose snapshot in the
table was built from the same inputs are skipped (unless --force).  The other days'
snapshots are computed together from the tiles and written in one commit (a chunk
is all there or not at all), followed by their build-log rows, so an interrupted
backfill resumes at the chunk it stopped in and a reader never sees half a day.

Backfilled days are NOT validated (a suite run per day would cost more than the
day's own build): `score` and `publish` refuse a built day until
`memberscore validate --run-date D` has passed for it, and a rebuilt day (--force)
until it has been validated again.  `train` reads snapshots without the gate.
"""

from __future__ import annotations

import argparse
import datetime as dt

from memberscore.args import iso_date
from memberscore.context import JobResult, RunContext
from memberscore.errors import InputError
from memberscore.snapshots import build_days, days_between


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--start", type=iso_date, required=True, help="first day, YYYY-MM-DD")
    parser.add_argument("--end", type=iso_date, required=True, help="last day, YYYY-MM-DD")
    parser.add_argument("--force", action="store_true",
                        help="rebuild days already built from the same inputs")


def run(ctx: RunContext, args: argparse.Namespace) -> JobResult:
    start: dt.date = args.start
    end: dt.date = args.end
    if start > end:
        raise InputError(
            f"backfill --start {start} is after --end {end}; give the first day first"
        )
    return build_days(ctx, days_between(start, end), force=bool(args.force))
