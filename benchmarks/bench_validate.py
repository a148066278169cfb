"""The quality gate: how long validating one day's feature snapshot of 20,000 members
takes (GX suite, GX JSON result, `validation_results` rows, Data Docs page).

`validate_features_seconds` is the default conf (`validation.engine: auto`, which
takes pandas for a day this size); `validate_features_spark_seconds` forces GX's
Spark engine, what `auto` uses above `validation.pandas_max_rows`.

The snapshot is synthetic but valid (it passes every expectation), built with Spark
from the feature registry's schema and kept in its own lake table
(`bench_member_features`) so other benchmarks' tables are left alone.  The first
validation of a process also pays for importing Great Expectations and making its
context; it is reported separately from the steady-state figure.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from benchmarks.common import Measurement, Workspace, timer
from memberscore.context import RunContext
from memberscore.quality import validate_table

MEMBERS = 20_000
DAY = dt.date(2031, 3, 31)
TABLE = "bench_member_features"
MARKER = f"bench_validate_{MEMBERS}"
TARGET_SECONDS = 30.0


def run(ws: Workspace) -> list[Measurement]:
    ctx = ws.new_ctx("bench-validate")
    if not ws.done(MARKER):
        ctx.lake.replace_where(TABLE, snapshot(ctx.spark, MEMBERS, DAY), {"as_of_date": DAY},
                               partition_by=["as_of_date"])
        ws.mark(MARKER)
    day = ctx.lake.read(TABLE).where(F.col("as_of_date") == F.lit(DAY))
    with timer() as first:
        outcome = validate_table(ctx, "member_features_daily", DAY, day)
    with timer() as steady:
        outcome = validate_table(ws.new_ctx("bench-validate-2"), "member_features_daily", DAY,
                                 day)
    on_spark_settings = dataclasses.replace(
        ws.settings, validation=dataclasses.replace(ws.settings.validation, engine="spark"))
    spark_ctx = RunContext(on_spark_settings, run_id="bench-validate-spark", spark=ctx.spark)
    validate_table(spark_ctx, "member_features_daily", DAY, day)  # warm-up
    with timer() as on_spark:
        spark_outcome = validate_table(spark_ctx, "member_features_daily", DAY, day)
    for found in (outcome, spark_outcome):
        if not found.passed or found.row_count != MEMBERS:
            raise AssertionError(f"benchmark snapshot should pass with {MEMBERS} rows: "
                                 f"{found.summary_line()}")
    return [
        Measurement("validate_features_seconds", steady["seconds"], "s", TARGET_SECONDS,
                    note="validation.engine auto (pandas at this size)"),
        Measurement("validate_features_spark_seconds", on_spark["seconds"], "s",
                    note="validation.engine spark"),
        Measurement("validate_features_first_call_seconds", first["seconds"], "s"),
    ]


def snapshot(spark: SparkSession, members: int, day: dt.date) -> DataFrame:
    """A valid feature snapshot of `members` members for `day`, in the registry's
    column order and types."""
    from memberscore.feature_registry import feature_table_schema

    schema = feature_table_schema()
    i = F.col("id")
    money = "decimal(18,2)"
    txn_7 = i % 5
    txn_30 = txn_7 + i % 7
    outflow_30 = ((i % 900) * 3 + 50).cast(money)
    values: dict[str, Column] = {
        "member_id": F.format_string("M%07d", i),
        "as_of_date": F.lit(day),
        "txn_count_7d": txn_7,
        "txn_count_30d": txn_30,
        "txn_count_90d": txn_30 + i % 11,
        "inflow_sum_30d": ((i % 1000) * 7).cast(money),
        "inflow_sum_90d": ((i % 1000) * 19).cast(money),
        "outflow_sum_30d": outflow_30,
        "outflow_sum_90d": (outflow_30 * 3).cast(money),
        "net_flow_30d": (((i % 1000) * 7) - ((i % 900) * 3 + 50)).cast(money),
        "max_outflow_30d": F.least(outflow_30, F.lit(50).cast(money)),
        "distinct_counterparties_30d": i % 4,
        "failed_payment_count_30d": i % 2,
        "card_spend_share_30d": F.when(i % 10 == 0, F.lit(None)).otherwise((i % 100) / 100.0),
        "active_days_30d": F.least(txn_30, F.lit(30)),
        "days_since_last_txn": F.when(i % 13 == 0, F.lit(None)).otherwise(i % 40),
        "tenure_days": 30 + i % 2000,
        "history_days": F.lit(90),
        "feature_cutoff_at": F.lit(dt.datetime(day.year, day.month, day.day) +
                                   dt.timedelta(days=1, hours=6)),
        "run_id": F.lit("bench"),
        "computed_at": F.current_timestamp(),
    }
    return spark.range(members).select(
        *[values[field.name].cast(field.dataType).alias(field.name) for field in schema.fields]
    )
