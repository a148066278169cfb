"""`memberscore monitor --run-date D`: drift and freshness of day D -> `drift_metrics`,
and the run report.

1. For every model in `models.names`: the version that scored D (from
   `member_scores`) and the baseline its training run logged.
2. Every model feature and the score: PSI against the baseline's bins and, for
   numeric columns, KS against its percentiles (transforms/drift.py); each with a
   status ok / warn / alert from conf `monitor`.  A column missing on one side is a
   value-null, warn row, not a crash.
3. The sources: freshness of transactions and members at D's feature cutoff, and the
   transactions that arrived after it (late rows); the same rows for every model.
4. D's partition of `drift_metrics` is replaced in one commit (a re-run replaces,
   never duplicates), then the run report is written.
5. Only then, when any metric is in alert and `monitor.warn_only` is false, the job
   fails (DriftAlertError, exit status 10) naming the metrics in alert.

Monitor never talks to the warehouse: `publish --table drift_metrics` sends D's drift
rows, alert or not (`pipeline` runs it after this step, and so does the nightly job).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging

from memberscore.args import iso_date
from memberscore.context import JobResult, RunContext
from memberscore.monitoring.drift import alert_error, drift_metrics_frame, measure_drift
from memberscore.reporting import build_run_report, run_report_path
from memberscore.tables import DRIFT_METRICS

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run-date", type=iso_date, required=True,
                        help="the day to process, YYYY-MM-DD (UTC)")
    # `pipeline` writes the day's report itself, after monitor, with its steps (and
    # also when a step fails): monitor's own would be read and rendered for nothing
    parser.add_argument("--no-report", dest="report", action="store_false",
                        help=argparse.SUPPRESS)


def run(ctx: RunContext, args: argparse.Namespace) -> JobResult:
    run_date: dt.date = args.run_date
    measurement = measure_drift(ctx, run_date)
    commit = ctx.lake.replace_where(
        DRIFT_METRICS.name, drift_metrics_frame(ctx.spark, measurement, ctx.run_id),
        {"as_of_date": run_date}, list(DRIFT_METRICS.partition_by))

    report = (build_run_report(ctx, run_date) if getattr(args, "report", True)
              else run_report_path(ctx, run_date))
    alerts = measurement.alerts
    messages = [
        f"{DRIFT_METRICS.name} {run_date}: {commit.rows_written} rows (table version "
        f"{commit.version})",
        *measurement.summary_lines(),
        f"report: {report}",
    ]
    if DRIFT_METRICS.name in ctx.settings.snowflake.published_tables:
        messages.append(f"to the warehouse: `memberscore publish --run-date {run_date} "
                        f"--table {DRIFT_METRICS.name}` (pipeline runs it after monitor)")
    if alerts and ctx.settings.monitor.warn_only:
        messages.append(f"{len(alerts)} metric(s) in alert; monitor.warn_only is true, so "
                        "the job does not fail")
    log.info("monitor %s: %s", run_date, " | ".join(messages))
    if alerts and not ctx.settings.monitor.warn_only:
        raise alert_error(measurement, str(report))
    return JobResult(
        job="monitor",
        rows={DRIFT_METRICS.name: commit.rows_written},
        details={
            "table_version": commit.version,
            "report": str(report),
            "models": {b.name: b.model.version for b in measurement.baselines},
            "statuses": measurement.status_counts(),
            "alerts": measurement.alert_lines(),
        },
        messages=messages,
    )

