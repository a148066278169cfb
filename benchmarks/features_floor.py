"""Same-output floors for the `features` job: plain Spark programs that write the same
`member_features_daily` partition from the same bronze Delta tables (the same member
scope, cutoff and late-row rule, window sums, exact distinct count, one Delta replace
of the day), without what the job adds for trust: the input fingerprint and late-row
count, the members fingerprint, the build log, the validation.

Variants (each timed; the fastest is the floor):
- `one_pass`: every aggregate in one `groupBy(member_id)` over the transactions booked
  up to the day, the exact distinct count among them (Spark expands the rows once per
  distinct aggregate to count it), then the members of the day joined and the
  partition replaced.  The first booked day known (for `history_days`) comes from the
  cached aggregates.
- `split_distinct`: the same, but the distinct counterparties counted on their own
  (distinct member-counterparty pairs of the window, then a count per member) and
  joined, so the main aggregation needs no expand.

`check_same_rows` holds every floor to the job: the floor's rows must equal the job's
rows of the day (all columns but run_id and computed_at), or the bench fails.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from memberscore.context import RunContext
from memberscore.schemas import bronze_table
from memberscore.tables import MEMBER_FEATURES_DAILY
from memberscore.transforms.features import (
    ACTIVE_DAYS_WINDOW,
    COUNTERPARTY_WINDOW,
    MAX_OUTFLOW_WINDOW,
    ROW_METRICS,
    WINDOW_SUMS,
    assemble_features,
    day_index,
    feature_cutoff,
    history_days,
    is_settled,
    member_days,
    outflow_value,
    settled_counterparty,
    utc_day,
    utc_midnight,
    with_row_values,
)

TABLE = "bench_features_floor"
LINEAGE = ("run_id", "computed_at")


def _rules(day: dt.date, lateness: float) -> tuple[Column, Callable[[int], Column], Column]:
    """(is_known, counted(window_days), booked_day) for snapshot `day`."""
    is_known = F.col("ingested_at") <= F.lit(feature_cutoff(day, lateness))

    def counted(days: int) -> Column:
        start = utc_midnight(day - dt.timedelta(days=days - 1))
        return is_known & (F.col("booked_at") >= F.lit(start))

    return is_known, counted, utc_day(F.col("booked_at"))


def _transactions(ctx: RunContext, day: dt.date) -> DataFrame:
    end = utc_midnight(day + dt.timedelta(days=1))
    return (ctx.lake.read(bronze_table("transactions"))
            .filter(F.col("booked_at") < F.lit(end))
            .transform(with_row_values))


def _aggregates(day: dt.date, lateness: float, with_distinct: bool) -> list[Column]:
    is_known, counted, booked_day = _rules(day, lateness)
    one_bit_per_day = F.call_function("shiftleft", F.lit(1).cast("long"),
                                      F.lit(day_index(day)) - booked_day)
    return [
        *[F.sum(F.when(counted(s.window_days), ROW_METRICS[s.metric]())).alias(s.name)
          for s in WINDOW_SUMS],
        F.max(F.when(counted(MAX_OUTFLOW_WINDOW), outflow_value())).alias("max_outflow_30d"),
        *([F.count_distinct(F.when(counted(COUNTERPARTY_WINDOW), settled_counterparty()))
           .alias("distinct_counterparties_30d")] if with_distinct else []),
        F.bit_count(F.bit_or(F.when(counted(ACTIVE_DAYS_WINDOW) & is_settled(),
                                    one_bit_per_day))).alias("active_days_30d"),
        F.max(F.when(is_known & is_settled(), booked_day)).alias("last_settled_day"),
        F.min(F.when(is_known, booked_day)).alias("first_booked_day"),
    ]


def _distinct_counterparties(transactions: DataFrame, day: dt.date,
                             lateness: float) -> DataFrame:
    _, counted, _ = _rules(day, lateness)
    counterparty = F.when(counted(COUNTERPARTY_WINDOW), settled_counterparty())
    return (transactions.select("member_id", counterparty.alias("counterparty"))
            .filter(F.col("counterparty").isNotNull())
            .distinct()
            .groupBy("member_id")
            .agg(F.count(F.lit(1)).alias("distinct_counterparties_30d")))


def _write(ctx: RunContext, day: dt.date, aggregates: DataFrame, run_id: str) -> None:
    lateness = ctx.settings.features.allowed_lateness_hours
    aggregates = aggregates.withColumn("day", F.lit(day_index(day))).persist()
    try:
        first = aggregates.agg(F.min("first_booked_day")).first()
        assert first is not None
        members = ctx.lake.read(bronze_table("members"))
        joined = member_days(members, day, day, lateness).join(
            aggregates.drop("first_booked_day"), on=["member_id", "day"], how="left")
        rows = assemble_features(joined, lateness, run_id, dt.datetime.now(dt.UTC),
                                 {day_index(day): history_days(day_index(day), first[0])})
        ctx.lake.replace_where(TABLE, rows, {"as_of_date": day},
                               list(MEMBER_FEATURES_DAILY.partition_by))
    finally:
        aggregates.unpersist()


def one_pass(ctx: RunContext, day: dt.date) -> None:
    lateness = ctx.settings.features.allowed_lateness_hours
    aggregates = (_transactions(ctx, day).groupBy("member_id")
                  .agg(*_aggregates(day, lateness, with_distinct=True)))
    _write(ctx, day, aggregates, "floor-one-pass")


def split_distinct(ctx: RunContext, day: dt.date) -> None:
    lateness = ctx.settings.features.allowed_lateness_hours
    transactions = _transactions(ctx, day)
    aggregates = (transactions.groupBy("member_id")
                  .agg(*_aggregates(day, lateness, with_distinct=False))
                  .join(_distinct_counterparties(transactions, day, lateness),
                        on="member_id", how="left"))
    _write(ctx, day, aggregates, "floor-split-distinct")


VARIANTS: dict[str, Callable[[RunContext, dt.date], None]] = {
    "one_pass": one_pass,
    "split_distinct": split_distinct,
}


def check_same_rows(ctx: RunContext, day: dt.date) -> int:
    """The floor's rows of `day` equal the job's (lineage columns aside); the rows."""
    def day_rows(table: str) -> DataFrame:
        return (ctx.lake.read(table).filter(F.col("as_of_date") == F.lit(day))
                .drop(*LINEAGE))

    job, floor = day_rows(MEMBER_FEATURES_DAILY.name), day_rows(TABLE)
    rows = job.count()
    extra, missing = floor.exceptAll(job).count(), job.exceptAll(floor).count()
    if extra or missing or rows != floor.count():
        raise AssertionError(
            f"the features floor does not produce the job's rows for {day}: {missing} of "
            f"the job's {rows} rows missing, {extra} rows the job does not have")
    return rows
