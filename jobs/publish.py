"""`memberscore publish --run-date D [--table T]...`: publish D's rows to Snowflake.

For each published table (conf `snowflake.published_tables`, or the `--table`s given):
the day's lake rows go to Snowflake as Parquet files through a named stage and a
staging table, and replace the target's day in one transaction together with its
PUBLISH_LOG row; the committed day is then reconciled with the lake (row count and
key checksum).  A table missing from the lake, or without rows for D, fails the job
before anything is published (leave it out with --table) -- except the tables in
conf `snowflake.optional_tables` (drift_metrics: monitor runs after publish), which
are skipped with a warning unless named with --table.  See docs/publish.md.

Before anything is published (before Snowflake is even reached), every selected
table that has an expectation suite (member_features_daily, member_scores; not
drift_metrics) and has rows for D must have passed the data quality gate for D: a
day never validated, whose validation is stale (its rows were rewritten after it)
or whose critical expectations failed is refused (QualityGateError) and nothing is
published.  See docs/data-quality.md.

With conf `events.enabled`, the publish's transaction also records the day's "day
published" event in Snowflake's EVENT_OUTBOX (when the day is complete), and after
COMMIT every pending event is sent to Kafka and marked sent on the broker's
acknowledgement.  A broker that cannot be reached leaves the event pending and the
publish still succeeds; `memberscore events --resend` (or the next publish) sends it.
The local broker is launched when the job starts, so it is up by the time the
day is committed.  See docs/events.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from memberscore.args import iso_date
from memberscore.context import JobResult, RunContext
from memberscore.events import DayPublishedEvents, describe_event, event_details, open_broker
from memberscore.quality import VALIDATED_TABLES, require_passed
from memberscore.quality.gate import day_rows
from memberscore.warehouse import LOG_TABLE, TableSelection, publish_tables, published_tables
from memberscore.warehouse.identifiers import identifier
from memberscore.warehouse.publisher import FAULT_ENV_VAR, FaultHook, required_tables


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run-date", type=iso_date, required=True,
                        help="the day to process, YYYY-MM-DD (UTC)")
    parser.add_argument("--table", action="append", default=None, metavar="T",
                        help="publish only this table (repeatable; default: all in conf)")


def _fault_hook(env: str) -> FaultHook | None:
    """The drill's fault hook when $MEMBERSCORE_FAULT is set; the local harness that
    builds it is loaded only then."""
    if not os.environ.get(FAULT_ENV_VAR, "").strip():
        return None
    from memberscore.local.faults import hook_from_environment

    return hook_from_environment(env)


@contextlib.contextmanager
def _event_hooks(ctx: RunContext,
                 selection: TableSelection) -> Iterator[DayPublishedEvents | None]:
    """The "day published" event's hooks: None with events.enabled false, or when only
    optional tables are published (the nightly drift_metrics publish after monitor
    does not announce the day again).  A local broker is launched here and waited for
    only when an event is sent."""
    required = required_tables(ctx.settings)
    if not ctx.settings.events.enabled or not any(
            identifier(t, "table name") in required for t in selection.tables):
        yield None
        return
    with open_broker(ctx.settings, ctx.paths.broker) as broker:
        yield DayPublishedEvents(ctx.settings, broker, claimer=ctx.run_id)


def run(ctx: RunContext, args: argparse.Namespace) -> JobResult:
    selection = published_tables(ctx.settings, args.table)
    fault_hook = _fault_hook(ctx.env)
    with _event_hooks(ctx, selection) as events:
        # pin each table's version once: the gate checks it and the publisher exports
        # it, so a rewrite between the two can never publish rows nobody validated
        versions = {t: v for t in selection.tables if (v := ctx.lake.version(t)) is not None}
        warnings = require_validated(ctx, selection.tables, args.run_date, versions)
        outcome = publish_tables(
            ctx.settings, ctx.lake, ctx.spark, warehouse_dir=ctx.paths.warehouse,
            run_id=ctx.run_id, selection=selection, day=args.run_date, fault_hook=fault_hook,
            verbose=ctx.verbose, versions=versions, hooks=events,
        )
    sf = ctx.settings.snowflake
    schema = f"{sf.database}.{sf.schema}".upper()
    messages = [
        f"published {r.target} {r.day}: {r.rows:,} rows (replaced {r.replaced_rows:,}), "
        f"reconciled with lake version {r.lake_version} ({r.checksum})"
        for r in outcome.published
    ]
    messages += [
        f"skipped {table} {args.run_date} (optional): {why}; publish it later with "
        f"`memberscore publish --run-date {args.run_date} --table {table}`"
        for table, why in outcome.skipped
    ]
    messages += warnings
    event_lines = (describe_event(events.recorded, outcome.after_commit, args.run_date)
                   if events is not None else [])
    messages += event_lines
    messages.append(f"look: SELECT * FROM {schema}.{LOG_TABLE} WHERE AS_OF_DATE = "
                    f"'{args.run_date}' ORDER BY TABLE_NAME")
    if sf.local_server:
        messages.append("the local warehouse is under "
                        f"{ctx.paths.warehouse}; `memberscore warehouse` serves it for queries")
    details: dict[str, Any] = {r.table: {
        "target": f"{schema}.{r.target}", "rows": r.rows, "replaced_rows": r.replaced_rows,
        "checksum": r.checksum, "lake_version": r.lake_version, "created": r.created,
        "added_columns": list(r.added_columns), "seconds": r.seconds,
    } for r in outcome.published}
    if outcome.skipped:
        details["skipped"] = dict(outcome.skipped)
    details["statements"] = outcome.statements
    if events is not None and events.recorded is not None:
        details["event"] = {**event_details(events.recorded, outcome.after_commit),
                            "send_seconds": events.send_seconds}
    return JobResult(job="publish", rows={r.table: r.rows for r in outcome.published},
                     details=details, messages=messages)


def require_validated(ctx: RunContext, tables: Sequence[str], day: dt.date,
                      versions: Mapping[str, int] | None = None) -> list[str]:
    """The quality gate of publish: QualityGateError unless every table of `tables`
    with a suite passed its validation for `day` (and it is not stale); returns the
    warnings of those validations.

    A table without rows for `day` is left to the publisher, which refuses it before
    Snowflake is touched (or skips it when it is optional) with its own message."""
    warnings: list[str] = []
    for table in tables:
        spec = VALIDATED_TABLES.get(table)
        version = (versions or {}).get(table)
        if spec is None or not day_rows(ctx, spec, day, version):
            continue
        warnings += require_passed(ctx, table, day, version)
    return warnings
