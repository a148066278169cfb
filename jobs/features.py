"""`memberscore features --run-date D`: the member feature snapshot as of D.

Refuses D unless ingest has completed D (memberscore.ingest_log).  Reads
bronze_transactions and bronze_members, computes D's snapshot in one pass
(transforms/features.py), replaces D's partition of member_features_daily in one
commit, and records the build (with its input fingerprint) in feature_build_log so
a later backfill can skip D while its inputs are unchanged.  Re-running D gives the
same feature values; run_id and computed_at say which run wrote them.

Then the snapshot it wrote is validated (the member_features_daily suite, the data
quality gate): warnings are shown with the job's output; a critical failure fails
the job (QualityGateError) after the snapshot, its build-log row and the validation
results are written, so they can be inspected.  `score` and `publish` use D only
while that validation passed and still describes D's rows.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import time

from memberscore.args import iso_date
from memberscore.context import JobResult, RunContext
from memberscore.feature_builds import (
    BuildRecord,
    InputFingerprint,
    RowsFingerprint,
    code_digest,
    cumulative,
)
from memberscore.feature_registry import MAX_WINDOW_DAYS
from memberscore.ingest_log import require_ingested
from memberscore.quality import validate_table
from memberscore.snapshots import build_log, now_utc, read_bronze
from memberscore.spark import release
from memberscore.tables import MEMBER_FEATURES_DAILY
from memberscore.transforms.features import (
    assemble_features,
    day_index,
    feature_cutoff,
    history_days,
    input_totals,
    member_days,
    member_fingerprints,
    snapshot_aggregates,
    with_aggregates,
)

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run-date", type=iso_date, required=True,
                        help="the day to process, YYYY-MM-DD (UTC)")


def run(ctx: RunContext, args: argparse.Namespace) -> JobResult:
    day: dt.date = args.run_date
    conf = ctx.settings.features
    lateness = conf.allowed_lateness_hours
    timings: dict[str, float] = {}
    started = time.perf_counter()

    require_ingested(ctx.lake, ctx.settings.ingest.log_table, [day], f"features for {day}")
    transactions, members = read_bronze(ctx, day)
    aggregates = snapshot_aggregates(transactions, day, lateness).persist()
    try:
        totals = input_totals(aggregates).first()
        timings["aggregate_seconds"] = time.perf_counter() - started
        member_parts = member_fingerprints(members, day, day, lateness).collect()

        computed_at = now_utc()
        joined = with_aggregates(member_days(members, day, day, lateness), aggregates)
        history = history_days(day_index(day), totals["first_booked_day"])
        snapshot = assemble_features(joined, lateness, ctx.run_id, computed_at,
                                     {day_index(day): history})
        mark = time.perf_counter()
        commit = ctx.lake.replace_where(MEMBER_FEATURES_DAILY.name, snapshot, {"as_of_date": day},
                                        list(MEMBER_FEATURES_DAILY.partition_by))
        timings["write_seconds"] = time.perf_counter() - mark
    finally:
        release(aggregates)

    assert totals is not None  # a global aggregate always returns one row
    fingerprint = InputFingerprint(
        day,
        RowsFingerprint.from_row(totals, prefix="fp_"),
        cumulative(member_parts, [day])[day],
        lateness,
        code_digest(),
    )
    late = int(totals["late_txn_count"])
    build_log(ctx).record([BuildRecord.of(fingerprint, late, commit, job="features",
                                          run_id=ctx.run_id, built_at=computed_at)])
    mark = time.perf_counter()
    validation = validate_table(ctx, MEMBER_FEATURES_DAILY.name, day, raise_on_critical=False)
    timings["validate_seconds"] = time.perf_counter() - mark
    timings["total_seconds"] = time.perf_counter() - started

    cutoff = feature_cutoff(day, lateness)
    log.info("features as_of_date=%s members=%d late_rows=%d history_days=%d cutoff=%s "
             "version=%d seconds=%.1f", day, commit.rows_written, late, history,
             cutoff.isoformat(), commit.version, timings["total_seconds"])
    # Raised only now: the snapshot, its build-log row and the results are kept.
    validation.raise_for_critical()
    return JobResult(
        job="features",
        rows={MEMBER_FEATURES_DAILY.name: commit.rows_written},
        details={
            "as_of_date": day.isoformat(),
            "members": commit.rows_written,
            "late_txn_count": late,
            "history_days": history,
            "transactions_seen": fingerprint.transactions.rows,
            "feature_cutoff_at": cutoff.isoformat(),
            "table_version": commit.version,
            "input_fingerprint": fingerprint.digest,
            "timings": {k: round(v, 3) for k, v in timings.items()},
            "validation": {"passed": validation.passed,
                           "warnings": len(validation.warnings),
                           "result_path": str(validation.result_path)},
            "validation_warnings": validation.warning_lines(),
        },
        messages=[
            f"{MEMBER_FEATURES_DAILY.name} as of {day}: {commit.rows_written} members "
            f"(table version {commit.version})",
            f"cutoff {cutoff.isoformat()}: {fingerprint.transactions.rows} transaction rows "
            f"seen, {late} late row(s) in the 90-day window left out",
            f"history_days {history}: "
            + ("every window is complete" if history >= MAX_WINDOW_DAYS else
               f"windows longer than {history} days are incomplete (the transactions "
               "known start later than their first day)"),
            validation.summary_line(),
            *validation.warning_lines(),
            f"took {timings['total_seconds']:.1f}s (aggregate "
            f"{timings['aggregate_seconds']:.1f}s, write {timings['write_seconds']:.1f}s, "
            f"validate {timings['validate_seconds']:.1f}s)",
        ],
    )
