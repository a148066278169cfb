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
   never duplicates), then published to the warehouse (when `drift_metrics` is in
   `snowflake.published_tables`), then the run report is written.
5. Only then, when any metric is in alert and `monitor.warn_only` is false, the job
   fails (DriftAlertError, exit status 10) naming the metrics in alert.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging

from memberscore.args import iso_date
from memberscore.context import JobResult, RunContext
from memberscore.errors import MemberscoreError
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

    # ---------------------------------------------------------------- PUBLISH DRIFT
    # The one call site that sends D's drift_metrics to the warehouse: the pipeline
    # publishes before it monitors, so the day's drift rows are published here.
    publish_error: MemberscoreError | None = None
    try:
        published = _publish_drift(ctx, run_date)
    except MemberscoreError as exc:  # the report is still written, then this is raised
        publish_error, published = exc, []

    report = (build_run_report(ctx, run_date) if getattr(args, "report", True)
              else run_report_path(ctx, run_date))
    alerts = measurement.alerts
    messages = [
        f"{DRIFT_METRICS.name} {run_date}: {commit.rows_written} rows (table version "
        f"{commit.version})",
        *measurement.summary_lines(),
        *published,
        f"report: {report}",
    ]
    if alerts and ctx.settings.monitor.warn_only:
        messages.append(f"{len(alerts)} metric(s) in alert; monitor.warn_only is true, so "
                        "the job does not fail")
    log.info("monitor %s: %s", run_date, " | ".join(messages))
    if publish_error is not None:
        publish_error.args = (
            f"{publish_error} ({DRIFT_METRICS.name} of {run_date} was written to the lake "
            f"and the report to {report}; publish it again with `memberscore publish "
            f"--run-date {run_date} --table {DRIFT_METRICS.name}`)",)
        raise publish_error
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


def _publish_drift(ctx: RunContext, run_date: dt.date) -> list[str]:
    """Publish D's drift_metrics rows through the warehouse publisher (one Snowflake
    transaction, reconciled with the lake, like `memberscore publish --table
    drift_metrics`), when `drift_metrics` is in conf `snowflake.published_tables`.

    Returns lines for the job's output.  A warehouse failure raises WarehouseError;
    the caller writes the report first.
    """
    if DRIFT_METRICS.name not in ctx.settings.snowflake.published_tables:
        log.info("monitor %s: %s is not in snowflake.published_tables; not published",
                 run_date, DRIFT_METRICS.name)
        return []
    from memberscore.warehouse import publish_day

    results = publish_day(ctx.settings, ctx.lake, ctx.spark, warehouse_dir=ctx.paths.warehouse,
                          run_id=ctx.run_id, tables=[DRIFT_METRICS.name], day=run_date,
                          verbose=ctx.verbose)
    return [f"published {r.target} {r.day}: {r.rows:,} rows (replaced {r.replaced_rows:,}), "
            f"reconciled with lake version {r.lake_version}" for r in results]
