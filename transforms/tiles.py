"""Feature aggregates for every day of a range (a backfill chunk) from per-member
daily tiles, so a backfill reads the transactions once per chunk instead of 90 days of
them per snapshot day.

A transaction counts for snapshot D's N-day window when it is booked in the window
and known by D's cutoff.  Two days describe that for each row:
- `booked_day` b, the UTC day of booked_at;
- `known_day` k, the first snapshot day that can see it: the first D whose cutoff
  (D + 1 00:00 + allowed lateness) is on or after ingested_at, and never before b
  (a row booked after D is outside every window of D).
So the row counts for D exactly when k <= D <= b + N - 1.  A tile is the aggregate of
one member's rows with the same (b, k): "tiles keyed by booked day" stay exact for
rows that arrived late, because a late row sits in its own tile with a later k.

From the tiles every aggregate of `transforms.features.AGGREGATE_COLUMNS` is built for
all days of the chunk at once, as running totals over one member-by-day stream:
- sums and counts: +v on day k and -v on day b + N (difference events); the running
  sum at D is the window sum (a tile with k >= b + N is never visible and emits
  nothing);
- active days: a booked day with a settled row known on that day enters on b and
  leaves on b + 30; a day whose settled rows were all late enters on the first k;
- largest outflow: a trailing 30-day max over the tiles known on their booked day,
  plus the late tiles spread over the few days they are visible;
- last settled day: a running max of b over tiles ordered by k (rows of any age).
Distinct counterparties are exact sets, not sums: per (member, counterparty) the days
of the chunk on which one of its settled rows is visible ([k, b + 29]) are OR-ed into
a bit mask (one bit per day, hence at most MAX_CHUNK_DAYS days per chunk), and the
count for day D is the number of the member's counterparties with bit D set.

Cost: one scan for the tiles and one (pruned to the 30-day windows) for the
counterparty masks; tiles are spread by member once, after which everything stays
inside a member's partition until the day streams are put together with one shuffle.
tests/test_backfill.py asserts that every day equals the direct single-day computation.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, Row, Window
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
    history_days,
    is_settled,
    known_day,
    outflow_value,
    row_hash,
    utc_day,
    utc_midnight,
    with_row_values,
)

# Counterparty masks hold one bit per day of a chunk in a signed 64-bit long.
MAX_CHUNK_DAYS = 62


def lookback_day(start: dt.date) -> int:
    """The first booked day any window of a snapshot day >= `start` can see."""
    return day_index(start) - (MAX_WINDOW_DAYS - 1)


# --------------------------------------------------------------------------- tiles


def daily_tiles(transactions: DataFrame, start: dt.date, end: dt.date,
                allowed_lateness_hours: float) -> DataFrame:
    """Tiles for snapshot days [start, end]: the transactions booked on or before
    `end`, aggregated by (member_id, booked_day, known_day) in one scan, then spread
    by member so every later step works inside a member's partition.

    Rows booked before the lookback (they only matter for the last settled day and
    the fingerprint) are lumped into booked_day = lookback - 1; rows not known by the
    last day's cutoff get known_day = end + 1 (late for every day of the range).
    """
    _check_range(start, end)
    last = day_index(end)
    lookback = lookback_day(start)
    booked = utc_day(F.col("booked_at"))
    known = F.greatest(booked, known_day(F.col("ingested_at"), allowed_lateness_hours))
    hi, lo = hash_parts(row_hash())
    rows = (
        transactions
        .filter(F.col("booked_at") < F.lit(utc_midnight(end + dt.timedelta(days=1))))
        .transform(with_row_values)
        .select(
            F.col("member_id"),
            F.greatest(booked, F.lit(lookback - 1)).alias("booked_day"),
            F.least(F.greatest(known, F.lit(lookback - 1)), F.lit(last + 1)).alias("known_day"),
            hi.alias("hash_hi"),
            lo.alias("hash_lo"),
            *[fn().alias(name) for name, fn in ROW_METRICS.items()],
            outflow_value().alias("max_outflow"),
            F.when(is_settled(), booked).alias("last_settled_day"),
        )
    )
    return (
        rows.groupBy("member_id", "booked_day", "known_day")
        .agg(
            F.count(F.lit(1)).alias("rows"),
            F.sum("hash_hi").alias("hash_hi"),
            F.sum("hash_lo").alias("hash_lo"),
            *[F.sum(name).alias(name) for name in ROW_METRICS],
            F.max("max_outflow").alias("max_outflow"),
            F.max("last_settled_day").alias("last_settled_day"),
        )
        .repartition("member_id")
    )


def counterparty_counts(transactions: DataFrame, start: dt.date, end: dt.date,
                        allowed_lateness_hours: float) -> DataFrame:
    """(member_id, day, distinct_counterparties_30d) for the days of [start, end] on
    which the member has at least one visible counterparty.

    Only settled rows with a counterparty booked where a 30-day window of the range
    can see them are read.  Each contributes the days [max(k, start), min(b + 29,
    end)] as a bit mask; OR-ing the masks per (member, counterparty) gives exactly the
    days on which that counterparty counts, and summing bit D over a member's
    counterparties gives the distinct count of day D.
    """
    n_days = _check_range(start, end)
    first, last = day_index(start), day_index(end)
    n = COUNTERPARTY_WINDOW
    booked = utc_day(F.col("booked_at"))
    known = F.greatest(booked, known_day(F.col("ingested_at"), allowed_lateness_hours))
    from_day = F.greatest(known, F.lit(first))
    to_day = F.least(booked + (n - 1), F.lit(last))
    one = F.lit(1).cast("long")
    days_mask = F.call_function(
        "shiftleft",
        F.call_function("shiftleft", one, F.col("to_day") - F.col("from_day") + 1) - one,
        F.col("from_day") - F.lit(first),
    )
    window_start = utc_midnight(start - dt.timedelta(days=n - 1))
    window_end = utc_midnight(end + dt.timedelta(days=1))
    visible = (
        transactions
        .filter((F.col("booked_at") >= F.lit(window_start))
                & (F.col("booked_at") < F.lit(window_end))
                & is_settled() & F.col("counterparty_id").isNotNull())
        .select("member_id", "counterparty_id", from_day.alias("from_day"),
                to_day.alias("to_day"))
        .filter(F.col("from_day") <= F.col("to_day"))
        .select("member_id", "counterparty_id", days_mask.alias("days"))
    )
    per_counterparty = visible.groupBy("member_id", "counterparty_id").agg(
        F.bit_or("days").alias("days"))
    per_member = per_counterparty.groupBy("member_id").agg(
        *[F.sum(F.shiftright("days", j).bitwiseAND(F.lit(1))).alias(f"d{j}")
          for j in range(n_days)])
    days = F.array(*[F.struct(F.lit(first + j).alias("day"), F.col(f"d{j}").alias("count"))
                     for j in range(n_days)])
    return (
        per_member.select("member_id", F.explode(days).alias("d"))
        .select("member_id", F.col("d.day").alias("day"),
                F.col("d.count").alias("distinct_counterparties_30d"))
        .filter(F.col("distinct_counterparties_30d") > 0)
    )


def _check_range(start: dt.date, end: dt.date) -> int:
    """The number of days in [start, end]; at most MAX_CHUNK_DAYS."""
    days = (end - start).days + 1
    if not 1 <= days <= MAX_CHUNK_DAYS:
        raise ValueError(f"a tile range holds 1 to {MAX_CHUNK_DAYS} days, got {start}..{end}")
    return days


# --------------------------------------------------------------------------- per day


def transaction_fingerprints(daily: DataFrame, end: dt.date) -> DataFrame:
    """Per known day (<= end): rows and hash sums; cumulated up to D they fingerprint
    exactly the transactions snapshot D sees (booked on or before D, known by its
    cutoff), the same rows `snapshot_aggregates` fingerprints.  `first_booked_day`
    is the first booked day among the day's rows (rows before the lookback count as
    lookback - 1: their snapshots all see the full history anyway)."""
    return (
        daily.filter(F.col("known_day") <= F.lit(day_index(end)))
        .groupBy(F.col("known_day").alias("day"))
        .agg(F.sum("rows").alias("rows"), F.sum("hash_hi").alias("hash_hi"),
             F.sum("hash_lo").alias("hash_lo"),
             F.min("booked_day").alias("first_booked_day"))
    )


def history_by_day(parts: Sequence[Row], days: Sequence[dt.date]) -> dict[int, int]:
    """{day index: history_days} for `days`, from `transaction_fingerprints` rows:
    for D, the first booked day among the rows known by D's cutoff."""
    known = sorted((int(r["day"]), int(r["first_booked_day"])) for r in parts)
    out: dict[int, int] = {}
    first: int | None = None
    i = 0
    for day in sorted(day_index(d) for d in days):
        while i < len(known) and known[i][0] <= day:
            first = known[i][1] if first is None else min(first, known[i][1])
            i += 1
        out[day] = history_days(day, first)
    return out


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
    """(member_id, day, onboarded_day, AGGREGATE_COLUMNS) for every row of `days`
    (from `member_days`, within [start, end]), from `daily_tiles` and
    `counterparty_counts` of the same range; aggregates are null where nothing is
    visible, as for the direct computation."""
    first, last = day_index(start), day_index(end)
    streams = [
        _tile_events(daily, start, end),
        _late_active_day_events(daily, start, end),
        _late_max_outflow_events(daily, start, end),
        _events(counterparties,
                {"distinct_counterparties_30d": F.col("distinct_counterparties_30d")},
                start, end, one_row_per_day=True),
        _events(days, {"onboarded_day": F.col("onboarded_day"), "is_anchor": F.lit(1)},
                start, end, one_row_per_day=True),
    ]
    events = streams[0]
    for stream in streams[1:]:
        events = events.unionByName(stream)
    per_day = (
        events.repartition("member_id")  # one shuffle; the rest stays in the partition
        .groupBy("member_id", "day")
        .agg(*[F.sum(c).alias(c) for c in _SUMMED],
             *[F.max(c).alias(c) for c in _MAXED])
    )
    by_member = Window.partitionBy("member_id").orderBy("day")
    running = by_member.rowsBetween(Window.unboundedPreceding, Window.currentRow)
    trailing = by_member.rangeBetween(-(MAX_OUTFLOW_WINDOW - 1), 0)
    return (
        per_day.select(
            "member_id",
            "day",
            "onboarded_day",
            "is_anchor",
            *[F.sum(c).over(running).alias(c) for c in _SUMMED],
            F.max("last_settled_day").over(running).alias("last_settled_day"),
            F.greatest(F.max("ontime_max_outflow").over(trailing),
                       F.col("late_max_outflow")).alias("max_outflow_30d"),
            "distinct_counterparties_30d",
        )
        .filter(F.col("day").between(first, last) & (F.col("is_anchor") == 1))
        .drop("is_anchor")
    )


# --------------------------------------------------------------------------- events

COUNT_TYPE = "long"  # counts, and money in pence

_EVENT_TYPES: dict[str, str] = {
    **{s.name: COUNT_TYPE for s in WINDOW_SUMS},
    "active_days_30d": COUNT_TYPE,
    "last_settled_day": "int",
    "ontime_max_outflow": COUNT_TYPE,
    "late_max_outflow": COUNT_TYPE,
    # point values of the day, not running totals
    "distinct_counterparties_30d": COUNT_TYPE,
    "onboarded_day": "int",
    "is_anchor": "int",
}
_POINT = ("distinct_counterparties_30d", "onboarded_day", "is_anchor")
_MAXED = ("last_settled_day", "ontime_max_outflow", "late_max_outflow", *_POINT)
_SUMMED = tuple(name for name in _EVENT_TYPES if name not in _MAXED)


def _events(frame: DataFrame, values: dict[str, Column], start: dt.date, end: dt.date,
            one_row_per_day: bool = False) -> DataFrame:
    """A stream in the one shared shape (member_id, day, every event column, null
    where this stream says nothing), for the running totals of days [start, end].

    Events after `end` are dropped, and events more than 30 days before `start` are
    lumped onto start - 30: the running totals from `start` on are the same, the
    trailing 30-day maximum never reaches back that far, and a member's stream
    shrinks to about two months of days.  Streams that may hold several rows per
    member and day are then pre-aggregated inside the member's partition, so the
    shuffle after the union moves fewer rows."""
    unknown = set(values) - set(_EVENT_TYPES)
    if unknown:  # pragma: no cover - a wiring error
        raise KeyError(f"unknown event columns {sorted(unknown)}")
    earliest = day_index(start) - MAX_OUTFLOW_WINDOW
    typed = frame.filter(F.col("day") <= F.lit(day_index(end))).select(
        F.col("member_id"),
        F.greatest(F.col("day").cast("int"), F.lit(earliest)).alias("day"),
        *[values[name].cast(kind).alias(name) for name, kind in _EVENT_TYPES.items()
          if name in values],
    )
    if not one_row_per_day:
        typed = typed.groupBy("member_id", "day").agg(
            *[(F.max if name in _MAXED else F.sum)(name).alias(name) for name in values])
    return typed.select(
        "member_id", "day",
        *[(F.col(name) if name in values else F.lit(None)).cast(kind).alias(name)
          for name, kind in _EVENT_TYPES.items()],
    )


def _tile_events(daily: DataFrame, start: dt.date, end: dt.date) -> DataFrame:
    """Everything a tile says, in one explode: on its known day k it enters every
    window it is still inside (and is known: last settled day, on-time largest
    outflow, on-time active day); on b + N it leaves the N-day window."""
    last = day_index(end)
    b, k = F.col("booked_day"), F.col("known_day")
    windows = sorted({s.window_days for s in WINDOW_SUMS} | {ACTIVE_DAYS_WINDOW})
    marks = F.array(
        F.struct(k.alias("day"), F.lit(0).alias("leaves")),
        *[F.struct((b + n).alias("day"), F.lit(n).alias("leaves")) for n in windows],
    )
    enters = F.col("leaves") == 0
    on_time = k == b
    is_active = on_time & (F.col("settled_count") > 0)
    exploded = (
        daily.filter(k <= F.lit(last))
        .select("*", F.explode(marks).alias("mark"))
        .select("*", F.col("mark.day").alias("day"), F.col("mark.leaves").alias("leaves"))
        .filter(F.col("day") <= F.lit(last))
        .filter(enters | (k < b + F.col("leaves")))
    )

    def delta(metric: str, n: int) -> Column:
        counts = k < b + n
        return (F.when(enters & counts, F.col(metric))
                .when((F.col("leaves") == n) & counts, -F.col(metric)))

    return _events(exploded, start=start, end=end, values={
        **{s.name: delta(s.metric, s.window_days) for s in WINDOW_SUMS},
        "active_days_30d": F.when(is_active & enters, 1)
        .when(is_active & (F.col("leaves") == ACTIVE_DAYS_WINDOW), -1),
        "last_settled_day": F.when(enters, F.col("last_settled_day")),
        "ontime_max_outflow": F.when(enters & on_time, F.col("max_outflow")),
    })


def _late_active_day_events(daily: DataFrame, start: dt.date, end: dt.date) -> DataFrame:
    """Booked days whose settled rows were all known late: active from the first of
    them to b + 29 (days with an on-time settled row are counted by the tiles)."""
    n = ACTIVE_DAYS_WINDOW
    b, k = F.col("booked_day"), F.col("known_day")
    items = (
        daily.filter((F.col("settled_count") > 0) & (b >= F.lit(day_index(start) - (n - 1))))
        .groupBy("member_id", "booked_day")
        .agg(F.min("known_day").alias("known_day"))
        .filter((k > b) & (k < b + n))
    )
    return _interval_events(items, k, b + n, "active_days_30d", start, end)


def _interval_events(items: DataFrame, enters: Column, leaves: Column, name: str,
                     start: dt.date, end: dt.date) -> DataFrame:
    """+1 on `enters`, -1 on `leaves` for each item."""
    marks = F.array(F.struct(enters.alias("day"), F.lit(1).alias("step")),
                    F.struct(leaves.alias("day"), F.lit(-1).alias("step")))
    exploded = items.select("member_id", F.explode(marks).alias("mark")).select(
        "member_id", F.col("mark.day").alias("day"), F.col("mark.step").alias("step"))
    return _events(exploded, {name: F.col("step")}, start, end)


def _late_max_outflow_events(daily: DataFrame, start: dt.date, end: dt.date) -> DataFrame:
    """Outflows known after their booked day, on each day they are visible (the
    on-time ones go to the trailing 30-day max)."""
    n = MAX_OUTFLOW_WINDOW
    b, k = F.col("booked_day"), F.col("known_day")
    from_day = F.greatest(k, F.lit(day_index(start)))
    to_day = F.least(b + (n - 1), F.lit(day_index(end)))
    late = (
        daily.filter(F.col("max_outflow").isNotNull() & (k > b) & (from_day <= to_day))
        .select("member_id", F.explode(F.sequence(from_day, to_day)).alias("day"),
                "max_outflow")
    )
    return _events(late, {"late_max_outflow": F.col("max_outflow")}, start, end)
