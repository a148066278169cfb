"""Publishing: one member_features_daily-like day (20,000 rows) to the local warehouse.

`publish_vs_floor` compares a whole table publish (`publish_day`: lake export to
Parquet and checksum, connect, schema check, staging table, PUT, COPY, the
DELETE+INSERT+log transaction with its pre-commit check, reconciliation, cleanup)
with the floor: one PUT plus one COPY of the same Parquet files into an empty table,
on an open session.  `publish_load_vs_floor` is the warehouse side of the same
publishes (connect to cleanup: the publish less its lake export and checksum), to show
where the time goes.

Everything runs against the same warm local server.  Publish and floor runs
alternate (a publish, then a floor, RUNS times, after one warm-up of each), so a
load spike on a shared machine hits both rather than only whichever ran during it;
each figure is the median.  The median seconds of every publish step are logged
(`publish steps: ...`).
"""

from __future__ import annotations

import datetime as dt
import logging
import statistics

from pyspark.sql import functions as F

from benchmarks.common import Measurement, Workspace, timer
from memberscore.context import RunContext
from memberscore.local.warehouse_server import local_warehouse
from memberscore.warehouse import WarehouseConnection, open_warehouse, publish_tables
from memberscore.warehouse.publisher import PreparedDay, Publisher, TableSelection
from memberscore.warehouse.typemap import Column, create_table_sql

ROWS = 20_000
RUNS = 7
TABLE = "member_features_daily"
DAY = dt.date(2026, 3, 31)

log = logging.getLogger("benchmarks.publish")


def _feature_day(ws: Workspace):  # type: ignore[no-untyped-def]
    """A member_features_daily-shaped day: keys, counts, money, shares, days, lineage."""
    spark = ws.ctx.spark
    member = F.format_string("M%07d", F.col("id"))
    money = lambda scale: ((F.col("id") * scale) % 9_999_999 / 100).cast("decimal(18,2)")  # noqa: E731
    return spark.range(ROWS).select(
        member.alias("member_id"),
        F.lit(DAY).alias("as_of_date"),
        *[(F.col("id") % n).cast("long").alias(f"txn_count_{n}d") for n in (7, 30, 90)],
        money(7).alias("inflow_sum_30d"), money(11).alias("inflow_sum_90d"),
        money(13).alias("outflow_sum_30d"), money(17).alias("outflow_sum_90d"),
        (money(7) - money(13)).cast("decimal(18,2)").alias("net_flow_30d"),
        money(3).alias("max_outflow_30d"),
        (F.col("id") % 40).cast("long").alias("distinct_counterparties_30d"),
        (F.col("id") % 3).cast("long").alias("failed_payment_count_30d"),
        F.when(F.col("id") % 5 == 0, None).otherwise((F.col("id") % 100) / 100.0)
        .alias("card_spend_share_30d"),
        (F.col("id") % 31).cast("int").alias("active_days_30d"),
        F.when(F.col("id") % 9 == 0, None).otherwise((F.col("id") % 60).cast("int"))
        .alias("days_since_last_txn"),
        (F.col("id") % 3000).cast("int").alias("tenure_days"),
        F.lit(90).alias("history_days"),
        F.lit(dt.datetime(2026, 4, 1, 6, 0, tzinfo=dt.UTC)).alias("feature_cutoff_at"),
        F.lit("bench").alias("run_id"),
        F.lit(dt.datetime(2026, 4, 1, 6, 12, 30, tzinfo=dt.UTC)).alias("computed_at"),
    )


def _floor_once(conn: WarehouseConnection, prepared: PreparedDay, run: str,
                rows: int) -> float:
    """Seconds for one PUT plus one COPY of the prepared Parquet files into an empty table."""
    columns = [Column(c.source, c.name, c.type, True) for c in prepared.columns]
    conn.execute(create_table_sql("BENCH_FLOOR_TARGET", columns, replace=True), what="table")
    with timer() as t:
        conn.execute(f"PUT 'file://{prepared.spool}/part-*.parquet' "
                     f"@BENCH_FLOOR/{run}/ AUTO_COMPRESS = FALSE OVERWRITE = TRUE", what="put")
        conn.execute(f"COPY INTO BENCH_FLOOR_TARGET FROM @BENCH_FLOOR/{run}/ "
                     "FILE_FORMAT = (TYPE = PARQUET) "
                     "MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE PURGE = TRUE", what="copy")
    loaded = conn.execute("SELECT COUNT(*) FROM BENCH_FLOOR_TARGET", what="count")
    assert loaded == [(rows,)], loaded
    return t["seconds"]


def run(ws: Workspace) -> list[Measurement]:
    ctx = ws.ctx
    if not ws.done("publish_day") or not ctx.lake.exists(TABLE):
        ctx.lake.replace_where(TABLE, _feature_day(ws), {"as_of_date": DAY}, ["as_of_date"])
        ws.mark("publish_day")
    return publish_against_floor(ctx, TABLE, DAY, ROWS, RUNS)


def publish_against_floor(ctx: RunContext, table: str, day: dt.date, rows: int,
                          runs: int, prefix: str = "publish") -> list[Measurement]:
    """`<prefix>_vs_floor` and its split: publishes of `table`'s `day` (`rows` rows in
    the lake) alternated with the floor, PUT + COPY of the same spooled files, after
    one warm-up of each, against one warm local server; medians of `runs`."""
    settings = ctx.settings
    sf = settings.snowflake
    warehouse = ctx.paths.warehouse
    median = statistics.median
    # One warm server for every run (as when `memberscore warehouse` is serving).
    with local_warehouse(warehouse, database=sf.database.upper(), schema=sf.schema.upper()):
        statements: list[int] = []

        def publish_once(run_id: str) -> tuple[float, dict[str, float]]:
            with timer() as t:
                outcome = publish_tables(settings, ctx.lake, ctx.spark,
                                         warehouse_dir=warehouse, run_id=run_id,
                                         selection=TableSelection((table,), frozenset()),
                                         day=day)
            (result,) = outcome.published
            assert result.rows == rows, (result.rows, rows)
            statements.append(outcome.statements)
            log.info("publish %s: %.3fs, %d statements, %s", run_id, t["seconds"],
                     outcome.statements, result.seconds)
            return t["seconds"], result.seconds

        # The floor loads the very files a publish spools (its own export of the day),
        # spooled outside the publishes' folder: a publish removes what other runs left
        # in the day's spool before it spools its own.
        publisher = Publisher(ctx.lake, spool_root=warehouse / "bench-floor-spool",
                              run_id="bench-floor")
        floor_files = publisher.prepare(table, day)
        publish_times, floor_times, steps = [], [], []
        try:
            with open_warehouse(settings, warehouse, purpose="bench floor") as floor_conn:
                floor_conn.execute("CREATE STAGE IF NOT EXISTS BENCH_FLOOR", what="stage")
                publish_once("bench-warmup")
                _floor_once(floor_conn, floor_files, "warmup", rows)
                for i in range(runs):
                    seconds, step = publish_once(f"bench-{i}")
                    publish_times.append(seconds)
                    steps.append(step)
                    floor_times.append(_floor_once(floor_conn, floor_files, f"run{i}", rows))
                floor_conn.execute("DROP TABLE IF EXISTS BENCH_FLOOR_TARGET", what="drop")
        finally:
            publisher.discard(floor_files)
        publish_seconds, floor_seconds = median(publish_times), median(floor_times)
        step_medians = {name: round(median(s[name] for s in steps), 3) for name in steps[0]}
        log.info("publish steps (median seconds): %s; rest (connect, session setup, "
                 "timing) %.3f; floor PUT+COPY %.3f", step_medians,
                 publish_seconds - sum(step_medians.values()), floor_seconds)
        # The lake side (export + checksum) and the warehouse side (connect to cleanup)
        # of the same publishes.
        spool_times = [s["export"] + s["checksum"] for s in steps]
        load_seconds = median(t - spool for t, spool in zip(publish_times, spool_times,
                                                             strict=True))

    return [
        Measurement(f"{prefix}_vs_floor", publish_seconds / floor_seconds, "x", target=1.5,
                    note=f"publish {publish_seconds:.2f}s / PUT+COPY {floor_seconds:.2f}s, "
                         f"{rows:,} rows of {table}"),
        Measurement(f"{prefix}_rows_per_second", rows / publish_seconds, "rows/s"),
        Measurement(f"{prefix}_load_vs_floor", load_seconds / floor_seconds, "x"),
        Measurement(f"{prefix}_seconds", publish_seconds, "s"),
        Measurement(f"{prefix}_spool_seconds", median(spool_times), "s"),
        Measurement(f"{prefix}_load_seconds", load_seconds, "s"),
        Measurement(f"{prefix}_floor_put_copy_seconds", floor_seconds, "s"),
        Measurement(f"{prefix}_statements_per_table_day", statements[-1], "statements",
                    note="a day of an existing table; the floor sends 2 (PUT, COPY)"),
    ]
