"""`memberscore generate`: write synthetic landing files (members, transactions,
member_outcomes) for a window of days, deterministically for a seed.

No Spark is started: the generator is numpy and Arrow (`memberscore.local.synthetic`), and
the files are written by `memberscore.landing`.
"""

from __future__ import annotations

import argparse
import logging

import pyarrow.compute as pc

from memberscore.args import iso_date
from memberscore.context import JobResult, RunContext
from memberscore.local.landing_files import generate_landing
from memberscore.local.synthetic import (
    LABEL_HORIZON_DAYS,
    MIN_DAYS_FOR_LABELS,
    add_size_arguments,
    params_from,
)

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_size_arguments(parser)
    parser.add_argument("--end-date", type=iso_date, default=None,
                        help="last generated day, YYYY-MM-DD (default: yesterday, UTC)")
    parser.add_argument("--clean", action="store_true",
                        help="generate no dirty rows (no quarantine exercise)")


def run(ctx: RunContext, args: argparse.Namespace) -> JobResult:
    params = params_from(ctx.settings.generate, args)
    root = ctx.paths.landing
    log.info("generating members=%d days=%d (%s..%s) seed=%d dirty_share=%s into %s",
             params.members, params.days, params.start_date, params.end_date, params.seed,
             params.dirty_share, root)
    summary = generate_landing(root, params)
    truth = summary.truth
    closed = truth.filter(pc.and_(pc.is_valid(truth["closed_at"]),
                                  pc.greater_equal(truth["churn_date"], params.start_date)))
    dirty = {source: sum(kinds.values()) for source, kinds in summary.dirty.items()}
    positives, label_rows = summary.label_positives, summary.label_rows

    messages = [
        f"wrote {summary.files} landing files under {root} "
        f"({params.start_date} .. {params.end_date}, seed {params.seed}) "
        f"in {summary.seconds:.1f}s:",
    ]
    for source, rows in summary.rows.items():
        days = summary.days[source]
        extra = f", {dirty.get(source, 0):,} dirty" if dirty.get(source) else ""
        messages.append(f"  {source:<16} {rows:>11,} rows in {days} day folders{extra}")
    messages.append(
        f"  {closed.num_rows:,} of {params.members:,} members closed in the window; "
        f"{positives:,} of {label_rows:,} labels churned within {LABEL_HORIZON_DAYS} days"
        + ("" if label_rows else
           f" (no labels: a window needs {MIN_DAYS_FOR_LABELS}+ days for the first one)")
    )
    if params.shift_from:
        messages.append(f"  behaviour shift: from {params.shift_from} members transact "
                        f"{params.shift_factor:g}x as often (card, payments, cash)")
    if summary.dirty.get("transactions"):
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(summary.dirty["transactions"].items()))
        messages.append(f"  dirty transactions: {kinds}")
    messages.append(f"next: memberscore ingest --start {params.start_date} "
                    f"--end {params.end_date} (every generated day, in one pass)")
    return JobResult(
        job="generate",
        rows={f"landing_{source}": rows for source, rows in summary.rows.items()},
        details={
            "landing": str(root),
            "start_date": params.start_date.isoformat(),
            "end_date": params.end_date.isoformat(),
            "members": params.members,
            "days": params.days,
            "seed": params.seed,
            "dirty_share": params.dirty_share,
            "shift_from": params.shift_from.isoformat() if params.shift_from else None,
            "shift_factor": params.shift_factor,
            "files": summary.files,
            "dirty": summary.dirty,
            "members_closed": closed.num_rows,
            "label_rows": label_rows,
            "label_positives": positives,
            "seconds": round(summary.seconds, 3),
        },
        messages=messages,
    )
