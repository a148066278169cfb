"""Publishing: one member_features_daily-like day (20,000 rows) to the local warehouse.

`publish_vs_floor` compares a whole table publish (lake read and Parquet spool,
schema check, PUT, COPY into staging, staging check, the DELETE+INSERT+log
transaction, reconciliation, cleanup) with the floor: one PUT plus one COPY of the
same Parquet files into an empty table, on an open session.  `publish_load_vs_floor`
is the warehouse side alone (connect to cleanup, from an already written spool), to
show where the time goes.  Everything runs against the same warm local server; each
figure is the median of a few runs.
"""

from __future__ import annotations

import datetime as dt
import logging
import statistics

from pyspark.sql import functions as F

from benchmarks.common import Measurement, Workspace, timer
from memberscore.warehouse import open_warehouse, publish_day
from memberscore.warehouse.local_server import local_warehouse
from memberscore.warehouse.publisher import PreparedDay, Publisher
from memberscore.warehouse.typemap import Column, create_table_sql

ROWS = 20_000
RUNS = 3
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
        F.lit(dt.datetime(2026, 4, 1, 6, 0, tzinfo=dt.UTC)).alias("feature_cutoff_at"),
        F.lit("bench").alias("run_id"),
        F.lit(dt.datetime(2026, 4, 1, 6, 12, 30, tzinfo=dt.UTC)).alias("computed_at"),
    )


def _floor(ws: Workspace, prepared: PreparedDay) -> float:
    """Seconds for one PUT plus one COPY of the prepared Parquet files."""
    with open_warehouse(ws.settings, ws.ctx.paths.warehouse, purpose="bench floor") as conn:
        conn.execute("CREATE STAGE IF NOT EXISTS BENCH_FLOOR", what="stage")
        columns = [Column(c.source, c.name, c.type, True) for c in prepared.columns]
        times = []
        for run in range(RUNS):
            conn.execute(create_table_sql("BENCH_FLOOR_TARGET", columns, replace=True),
                         what="table")
            with timer() as t:
                conn.execute(f"PUT 'file://{prepared.spool}/part-*.parquet' "
                             f"@BENCH_FLOOR/run{run}/ AUTO_COMPRESS = FALSE OVERWRITE = TRUE",
                             what="put")
                conn.execute(f"COPY INTO BENCH_FLOOR_TARGET FROM @BENCH_FLOOR/run{run}/ "
                             "FILE_FORMAT = (TYPE = PARQUET) "
                             "MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE PURGE = TRUE",
                             what="copy")
            loaded = conn.execute("SELECT COUNT(*) FROM BENCH_FLOOR_TARGET", what="count")
            assert loaded == [(ROWS,)], loaded
            times.append(t["seconds"])
        conn.execute("DROP TABLE IF EXISTS BENCH_FLOOR_TARGET", what="drop")
        return statistics.median(times)


def run(ws: Workspace) -> list[Measurement]:
    ctx = ws.ctx
    if not ws.done("publish_day") or not ctx.lake.exists(TABLE):
        ctx.lake.replace_where(TABLE, _feature_day(ws), {"as_of_date": DAY}, ["as_of_date"])
        ws.mark("publish_day")
    settings = ws.settings
    sf = settings.snowflake
    # One warm server for every run (as when `memberscore warehouse` is serving).
    with local_warehouse(ctx.paths.warehouse, database=sf.database.upper(),
                         schema=sf.schema.upper()):
        def publish_once(run_id: str) -> float:
            with timer() as t:
                (result,) = publish_day(settings, ctx.lake, ctx.spark,
                                        warehouse_dir=ctx.paths.warehouse, run_id=run_id,
                                        tables=[TABLE], day=DAY)
            assert result.rows == ROWS
            log.info("publish %s: %.2fs %s", run_id, t["seconds"], result.seconds)
            return t["seconds"]

        publish_once("bench-warmup")
        publish_seconds = statistics.median(publish_once(f"bench-{i}") for i in range(RUNS))

        # The warehouse side alone: the same publish from an already written spool.
        publisher = Publisher(ctx.lake, ctx.spark, spool_root=ctx.paths.warehouse / "spool",
                              run_id="bench-load")
        spool_times, load_times = [], []
        for _ in range(RUNS):
            with timer() as spool:
                prepared = publisher.prepare(TABLE, DAY)
            spool_times.append(spool["seconds"])
            try:
                with timer() as load, open_warehouse(settings, ctx.paths.warehouse,
                                                     purpose="bench load") as conn:
                    publisher.publish(conn, prepared)
                load_times.append(load["seconds"])
            finally:
                publisher.discard(prepared)
        load_seconds = statistics.median(load_times)

        prepared = publisher.prepare(TABLE, DAY)
        try:
            floor_seconds = _floor(ws, prepared)
        finally:
            publisher.discard(prepared)

    return [
        Measurement("publish_vs_floor", publish_seconds / floor_seconds, "x", target=1.5,
                    note=f"publish {publish_seconds:.2f}s / PUT+COPY {floor_seconds:.2f}s"),
        Measurement("publish_rows_per_second", ROWS / publish_seconds, "rows/s"),
        Measurement("publish_load_vs_floor", load_seconds / floor_seconds, "x"),
        Measurement("publish_seconds", publish_seconds, "s"),
        Measurement("publish_spool_seconds", statistics.median(spool_times), "s"),
        Measurement("publish_load_seconds", load_seconds, "s"),
        Measurement("publish_floor_put_copy_seconds", floor_seconds, "s"),
    ]
