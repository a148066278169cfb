"""The table layer: how fast a day's partition is replaced and read back."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import functions as F

from benchmarks.common import Measurement, Workspace, timer

ROWS = 500_000


def run(ws: Workspace) -> list[Measurement]:
    spark, lake = ws.ctx.spark, ws.ctx.lake
    day = dt.date(2026, 1, 1)
    frame = (
        spark.range(ROWS)
        .select(
            F.concat(F.lit("m"), F.col("id").cast("string")).alias("member_id"),
            F.lit(day).alias("as_of_date"),
            (F.col("id") % 10_000 / 100).cast("decimal(18,2)").alias("amount"),
            F.current_timestamp().alias("computed_at"),
        )
        .cache()
    )
    frame.count()
    lake.replace_where("bench_lake", frame, {"as_of_date": day}, ["as_of_date"])  # warm-up
    with timer() as write:
        lake.replace_where("bench_lake", frame, {"as_of_date": day})
    with timer() as read:
        total = lake.read("bench_lake").agg(F.sum("amount")).first()
    assert total is not None
    frame.unpersist()
    return [
        Measurement(f"lake_replace_partition_{lake.backend}_rows_per_second",
                    ROWS / write["seconds"], "rows/s"),
        Measurement(f"lake_read_sum_{lake.backend}_seconds", read["seconds"], "s"),
    ]
