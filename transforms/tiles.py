"""Feature aggregates for every day of a range from per-member daily tiles, so a
backfill reads the transactions once instead of 90 days of them per snapshot day.

A transaction counts for snapshot D's N-day window when it is booked in the window
and known by D's cutoff.  Two days describe that for each row:
- `booked_day` b, the UTC day of booked_at;
- `known_day` k, the first snapshot day that can see it: the first D whose cutoff
  (D + 1 00:00 + allowed lateness) is on or after ingested_at, and never before b
  (a row booked after D is outside every window of D).
So the row counts for D exactly when k <= D <= b + N - 1.  A tile is the aggregate of
one member's rows with the same (b, k), so "tiles keyed by booked date" stay exact for
rows that arrived late: a late row sits in its own tile with a later k.

From tiles every aggregate of `transforms.features.AGGREGATE_COLUMNS` is built for all
days of the range at once, as running totals over one member-by-day event stream:
- sums and counts: +v on day k and -v on day b + N (difference events); a running sum
  at D is the window sum (tiles with k >= b + N never count and emit nothing);
- active days: one item per settled booked day, counted from the first k of that day
  to b + 29;
- distinct counterparties: per (member, counterparty) the union of the intervals
  [k, b + 29] of its settled rows, merged, then counted like active days (exact
  distinct, never approximate);
- largest outflow: a trailing 30-day max over tiles known on their booked day, and
  tiles known later spread over the few days they are visible;
- last settled day: a running max of b over tiles ordered by k (rows of any age).

Rows booked before the longest window of the first day only matter for the last
settled day, the fingerprint and nothing else; they are kept in one history tile per
member and known day (booked_day = lookback - 1).  The equality of this with the
direct single-day computation is asserted by tests/test_backfill.py.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from memberscore.feature_registry import MAX_WINDOW_DAYS
from memberscore.transforms.features import (
    ACTIVE_DAYS_WINDOW,
    COUNTERPARTY_WINDOW,
    MAX_OUTFLOW_WINDOW,
    ROW_METRICS,
    WINDOW_SUMS,
    day_index,
    hash_parts,
    is_settled,
    known_day,
    outflow_value,
    row_hash,
    settled_counterparty,
    utc_day,
    utc_midnight,
    with_row_values,
)

COUNT_TYPE = "long"  # counts, and money sums in pence
MONEY_TYPE = "decimal(18,2)"


def lookback_day(start: dt.date) -> int:
    """The first booked day any window of a snapshot day >= `start` can see."""
    return day_index(start) - (MAX_WINDOW_DAYS - 1)


# --------------------------------------------------------------------------- tiles


def transaction_tiles(transactions: DataFrame, start: dt.date, end: dt.date,
                      allowed_lateness_hours: float) -> DataFrame:
    """Fine tiles for snapshot days [start, end]: one scan of the transactions booked
    on or before `end`, aggregated by (member_id, booked_day, known_day,
    counterparty_id).

    The counterparty is kept only for settled rows booked where a 30-day window of
    the range can see them (null otherwise), so the tiles can give both the daily
    tiles and the counterparty intervals without a second scan.  Rows booked before
    the lookback are lumped into booked_day = lookback - 1; rows not known by the
    last day's cutoff get known_day = end + 1 (they are late for every day).
    """
    first, last = day_index(start), day_index(end)
    lookback = lookback_day(start)
    booked = utc_day(F.col("booked_at"))
    known = F.greatest(booked, known_day(F.col("ingested_at"), allowed_lateness_hours))
    sees_counterparty = booked >= F.lit(first - (COUNTERPARTY_WINDOW - 1))
    hi, lo = hash_parts(row_hash())
    metrics = [F.sum(fn()).alias(name) for name, fn in ROW_METRICS.items()]
    return (
        transactions
        .filter(F.col("booked_at") < F.lit(utc_midnight(end + dt.timedelta(days=1))))
        .transform(with_row_values)
        .groupBy(
            F.col("member_id"),
            F.greatest(booked, F.lit(lookback - 1)).alias("booked_day"),
            F.least(F.greatest(known, F.lit(lookback - 1)), F.lit(last + 1)).alias("known_day"),
            F.when(sees_counterparty, settled_counterparty()).alias("counterparty_id"),
        )
        .agg(
            F.count(F.lit(1)).alias("rows"),
            F.sum(hi).alias("hash_hi"),
            F.sum(lo).alias("hash_lo"),
            *metrics,
            F.max(outflow_value()).alias("max_outflow"),
            F.max(F.when(is_settled(), booked)).alias("last_settled_day"),
        )
    )


def daily_tiles(fine: DataFrame) -> DataFrame:
    """Tiles keyed by (member_id, booked_day, known_day): the fine tiles without the
    counterparty split."""
    sums = [F.sum(c).alias(c) for c in ("rows", "hash_hi", "hash_lo", *ROW_METRICS)]
    return fine.groupBy("member_id", "booked_day", "known_day").agg(
        *sums,
        F.max("max_outflow").alias("max_outflow"),
        F.max("last_settled_day").alias("last_settled_day"),
    )


def counterparty_tiles(fine: DataFrame) -> DataFrame:
    """(member_id, counterparty_id, booked_day) -> the first day a settled row with
    that counterparty booked that day is known."""
    return (
        fine.filter(F.col("counterparty_id").isNotNull())
        .groupBy("member_id", "counterparty_id", "booked_day")
        .agg(F.min("known_day").alias("known_day"))
    )


# --------------------------------------------------------------------------- per day


def transaction_fingerprints(daily: DataFrame, end: dt.date) -> DataFrame:
    """Per known day (<= end): rows and hash sums; cumulated up to D they fingerprint
    exactly the transactions snapshot D sees (booked on or before D, known by its
    cutoff), the same rows `snapshot_aggregates` fingerprints."""
    return (
        daily.filter(F.col("known_day") <= F.lit(day_index(end)))
        .groupBy(F.col("known_day").alias("day"))
        .agg(F.sum("rows").alias("rows"), F.sum("hash_hi").alias("hash_hi"),
             F.sum("hash_lo").alias("hash_lo"))
    )


def late_counts(daily: DataFrame, start: dt.date, end: dt.date) -> DataFrame:
    """(day, late_txn_count) for days in [start, end] with late rows: rows booked in
    the day's 90-day window and known only after its cutoff."""
    first, last = day_index(start), day_index(end)
    b, k = F.col("booked_day"), F.col("known_day")
    from_day = F.greatest(b, F.lit(first))
    to_day = F.least(k - 1, b + (MAX_WINDOW_DAYS - 1), F.lit(last))
    return (
        daily.filter((k > b) & (b >= F.lit(lookback_day(start))) & (from_day <= to_day))
        .select(F.explode(F.sequence(from_day, to_day)).alias("day"), "rows")
        .groupBy("day")
        .agg(F.sum("rows").alias("late_txn_count"))
    )


def tiled_aggregates(daily: DataFrame, counterparties: DataFrame, days: DataFrame,
                     start: dt.date, end: dt.date) -> DataFrame:
    """(member_id, day) -> AGGREGATE_COLUMNS for every (member_id, day) of `days`
    (member_id, day) in [start, end], from the tiles of `transaction_tiles` for the
    same range.  Other (member, day) rows may appear; callers join from `days`."""
    first, last = day_index(start), day_index(end)
    streams = [
        _window_sum_events(daily, start),
        _active_day_events(daily, start),
        _counterparty_events(counterparties),
        _last_settled_events(daily),
        *_max_outflow_events(daily, start, end),
        _events(days.select("member_id", "day")),
    ]
    events = streams[0]
    for stream in streams[1:]:
        events = events.unionByName(stream)
    events = events.filter(F.col("day") <= F.lit(last))

    sums = [s.name for s in WINDOW_SUMS] + ["active_days_30d", "distinct_counterparties_30d"]
    per_day = events.groupBy("member_id", "day").agg(
        *[F.sum(c).alias(c) for c in sums],
        F.max("last_settled_day").alias("last_settled_day"),
        F.max("ontime_max_outflow").alias("ontime_max_outflow"),
        F.max("late_max_outflow").alias("late_max_outflow"),
    )
    by_member = Window.partitionBy("member_id").orderBy("day")
    running = by_member.rowsBetween(Window.unboundedPreceding, Window.currentRow)
    trailing = by_member.rangeBetween(-(MAX_OUTFLOW_WINDOW - 1), 0)
    return (
        per_day.select(
            "member_id",
            "day",
            *[F.sum(c).over(running).alias(c) for c in sums],
            F.max("last_settled_day").over(running).alias("last_settled_day"),
            F.greatest(F.max("ontime_max_outflow").over(trailing),
                       F.col("late_max_outflow")).alias("max_outflow_30d"),
        )
        .filter(F.col("day").between(first, last))
    )


# --------------------------------------------------------------------------- events

_EVENT_TYPES: dict[str, str] = {
    **{s.name: COUNT_TYPE for s in WINDOW_SUMS},
    "active_days_30d": COUNT_TYPE,
    "distinct_counterparties_30d": COUNT_TYPE,
    "last_settled_day": "int",
    "ontime_max_outflow": MONEY_TYPE,
    "late_max_outflow": MONEY_TYPE,
}


def _events(frame: DataFrame, **values: Column) -> DataFrame:
    """An event stream in the one shared shape: member_id, day, every event column
    (null where this stream says nothing)."""
    unknown = set(values) - set(_EVENT_TYPES)
    if unknown:  # pragma: no cover - a wiring error
        raise KeyError(f"unknown event columns {sorted(unknown)}")
    return frame.select(
        F.col("member_id"),
        F.col("day").cast("int").alias("day"),
        *[values.get(name, F.lit(None)).cast(kind).alias(name)
          for name, kind in _EVENT_TYPES.items()],
    )


def _window_sum_events(daily: DataFrame, start: dt.date) -> DataFrame:
    """+v on the day a tile becomes known, -v on the day it leaves each window."""
    b, k = F.col("booked_day"), F.col("known_day")
    windows = sorted({s.window_days for s in WINDOW_SUMS})
    marks = F.array(
        F.struct(k.alias("day"), F.lit(0).alias("leaves")),
        *[F.struct((b + n).alias("day"), F.lit(n).alias("leaves")) for n in windows],
    )
    exploded = (
        daily.filter((b >= F.lit(lookback_day(start))) & (k < b + max(windows)))
        .select("*", F.explode(marks).alias("mark"))
        .select("*", F.col("mark.day").alias("day"), F.col("mark.leaves").alias("leaves"))
    )

    def delta(metric: str, n: int) -> Column:
        counts = k < b + n
        enters = counts & (F.col("leaves") == 0)
        leaves = counts & (F.col("leaves") == n)
        return F.when(enters, F.col(metric)).when(leaves, -F.col(metric))

    return _events(exploded, **{s.name: delta(s.metric, s.window_days) for s in WINDOW_SUMS})


def _active_day_events(daily: DataFrame, start: dt.date) -> DataFrame:
    """A settled booked day is active from the first day one of its rows is known
    until it leaves the 30-day window."""
    n = ACTIVE_DAYS_WINDOW
    b, k = F.col("booked_day"), F.col("known_day")
    items = (
        daily.filter((F.col("settled_count") > 0) & (b >= F.lit(day_index(start) - (n - 1))))
        .groupBy("member_id", "booked_day")
        .agg(F.min("known_day").alias("known_day"))
        .filter(k < b + n)
    )
    return _interval_events(items, k, b + n, "active_days_30d")


def _counterparty_events(counterparties: DataFrame) -> DataFrame:
    """A counterparty counts while at least one of its settled rows is visible:
    the union of [k, b + 29] over its rows, merged into disjoint intervals."""
    n = COUNTERPARTY_WINDOW
    intervals = counterparties.select(
        "member_id", "counterparty_id",
        F.col("known_day").alias("first_day"),
        (F.col("booked_day") + (n - 1)).alias("last_day"),
    ).filter(F.col("first_day") <= F.col("last_day"))
    ordered = Window.partitionBy("member_id", "counterparty_id").orderBy("first_day", "last_day")
    reach = F.max("last_day").over(ordered.rowsBetween(Window.unboundedPreceding, -1))
    starts_group = F.when(reach.isNull() | (F.col("first_day") > reach + 1), 1).otherwise(0)
    merged = (
        intervals.withColumn("starts_group", starts_group)
        .withColumn("group", F.sum("starts_group").over(
            ordered.rowsBetween(Window.unboundedPreceding, Window.currentRow)))
        .groupBy("member_id", "counterparty_id", "group")
        .agg(F.min("first_day").alias("first_day"), F.max("last_day").alias("last_day"))
    )
    return _interval_events(merged, F.col("first_day"), F.col("last_day") + 1,
                            "distinct_counterparties_30d")


def _interval_events(items: DataFrame, enters: Column, leaves: Column, name: str) -> DataFrame:
    """+1 on `enters`, -1 on `leaves` for each item."""
    marks = F.array(F.struct(enters.alias("day"), F.lit(1).alias("step")),
                    F.struct(leaves.alias("day"), F.lit(-1).alias("step")))
    exploded = items.select("member_id", F.explode(marks).alias("mark")).select(
        "member_id", F.col("mark.day").alias("day"), F.col("mark.step").alias("step"))
    return _events(exploded, **{name: F.col("step")})


def _last_settled_events(daily: DataFrame) -> DataFrame:
    """The latest settled booked day among the rows known on a day."""
    known = daily.filter(F.col("last_settled_day").isNotNull()).select(
        "member_id", F.col("known_day").alias("day"), "last_settled_day")
    return _events(known, last_settled_day=F.col("last_settled_day"))


def _max_outflow_events(daily: DataFrame, start: dt.date, end: dt.date) -> list[DataFrame]:
    """Largest outflows: tiles known on their booked day go to a trailing 30-day max
    on that day; tiles known later are spread over the days they are visible."""
    n = MAX_OUTFLOW_WINDOW
    b, k = F.col("booked_day"), F.col("known_day")
    candidates = daily.filter(F.col("max_outflow").isNotNull()
                              & (b >= F.lit(day_index(start) - (n - 1))))
    on_time = candidates.filter(k == b).select(
        "member_id", F.col("booked_day").alias("day"), "max_outflow")
    from_day = F.greatest(k, F.lit(day_index(start)))
    to_day = F.least(b + (n - 1), F.lit(day_index(end)))
    late = (
        candidates.filter((k > b) & (from_day <= to_day))
        .select("member_id", F.explode(F.sequence(from_day, to_day)).alias("day"),
                "max_outflow")
    )
    return [_events(on_time, ontime_max_outflow=F.col("max_outflow")),
            _events(late, late_max_outflow=F.col("max_outflow"))]
