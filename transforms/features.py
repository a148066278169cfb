"""The member feature snapshot as of day D, exactly as the contract defines it.

Reading order:
1. `member_days` — which members are in the snapshot of each day, point-in-time:
   the latest members row (by updated_at) known by the day's cutoff, kept when the
   member was onboarded on or before D and not closed before D.
2. `snapshot_aggregates` — one pass over the transactions booked on or before D:
   a single `groupBy(member_id)` whose aggregates are all conditional
   (`sum(when(...))`), one per feature and window, so the 7/30/90-day windows, the
   cutoff and the status rules cost one scan and one shuffle, not one per window.
3. `assemble_features` — joins the members once, turns the aggregates into the
   registry's columns (0 instead of null for counts and sums, the documented nulls
   for card share and days since last transaction) and adds lineage.

`transforms/tiles.py` produces the same aggregates for a range of days from per-day
tiles; both feed `assemble_features`, so a snapshot differs only in how its
aggregates were summed.

Time is handled as UTC instants and whole UTC days counted from 1970-01-01 (`day`
columns, ints), computed from epoch microseconds, so nothing depends on the Spark
session time zone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from memberscore.feature_registry import FEATURES, MAX_WINDOW_DAYS, column_names, feature

DAY_MICROS = 86_400_000_000
EPOCH = dt.date(1970, 1, 1)

# The aggregate columns both paths (direct and tiled) produce, keyed by
# (member_id, day); `assemble_features` turns them into features.
AGGREGATE_COLUMNS = (
    "txn_count_7d", "txn_count_30d", "txn_count_90d",
    "inflow_sum_30d", "inflow_sum_90d", "outflow_sum_30d", "outflow_sum_90d",
    "card_outflow_sum_30d", "failed_payment_count_30d",
    "max_outflow_30d", "distinct_counterparties_30d", "active_days_30d",
    "last_settled_day",
)


# --------------------------------------------------------------------------- time


def day_index(day: dt.date) -> int:
    """Whole days since 1970-01-01 (the integer form of a UTC date)."""
    return (day - EPOCH).days


def utc_midnight(day: dt.date) -> dt.datetime:
    """00:00 UTC at the start of `day`."""
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def feature_cutoff(as_of_date: dt.date, allowed_lateness_hours: float) -> dt.datetime:
    """D + 1 day 00:00 UTC + allowed lateness: the last ingested_at snapshot D sees."""
    return utc_midnight(as_of_date + dt.timedelta(days=1)) + lateness(allowed_lateness_hours)


def lateness(allowed_lateness_hours: float) -> dt.timedelta:
    """The allowed lateness as a timedelta, rounded to whole microseconds."""
    return dt.timedelta(microseconds=lateness_micros(allowed_lateness_hours))


def lateness_micros(allowed_lateness_hours: float) -> int:
    """The allowed lateness in microseconds (the precision of Spark timestamps)."""
    return round(allowed_lateness_hours * 3_600_000_000)


def _floor_days(micros: Column) -> Column:
    """floor(micros / 1 day) as int, exact (the division is of an exact multiple)."""
    whole = micros - F.pmod(micros, F.lit(DAY_MICROS))
    return (whole / F.lit(DAY_MICROS)).cast("int")


def utc_day(ts: Column) -> Column:
    """The UTC day (days since 1970-01-01) a timestamp falls on."""
    return _floor_days(F.unix_micros(ts))


def known_day(ingested_at: Column, allowed_lateness_hours: float) -> Column:
    """The first snapshot day whose cutoff includes a row ingested at `ingested_at`.

    Row known by D  <=>  ingested_at <= (D + 1) 00:00 + L  <=>  D >= ceil((t - L) / day) - 1
    = floor((t - L - 1µs) / day), with t and L in microseconds.
    """
    shifted = F.unix_micros(ingested_at) - F.lit(lateness_micros(allowed_lateness_hours) + 1)
    return _floor_days(shifted)


def day_date(day: Column) -> Column:
    """A day index back to a DATE."""
    return F.date_from_unix_date(day)


def cutoff_at(day: Column, allowed_lateness_hours: float) -> Column:
    """The feature cutoff timestamp of snapshot day `day` (index)."""
    micros = (day.cast("long") + F.lit(1)) * F.lit(DAY_MICROS) \
        + F.lit(lateness_micros(allowed_lateness_hours))
    return F.timestamp_micros(micros)


# --------------------------------------------------------------------------- row rules


def is_settled() -> Column:
    return F.col("status") == F.lit("settled")


def is_failed() -> Column:
    return F.col("status") == F.lit("failed")


def is_inflow() -> Column:
    return F.col("amount") > F.lit(0)


def is_outflow() -> Column:
    return F.col("amount") < F.lit(0)


def is_card() -> Column:
    return F.col("channel") == F.lit("card")


def amount_cents() -> Column:
    """The amount in whole pence, as a long: sums of longs are exact and far cheaper
    than decimal(28,2) sums, and the pence go back to decimal(18,2) at the end."""
    return (F.col("amount") * F.lit(100)).cast("long")


def with_row_values(transactions: DataFrame) -> DataFrame:
    """The transactions with `amount_cents`, which ROW_METRICS read."""
    return transactions.withColumn("amount_cents", amount_cents())


# Per-transaction values the additive features sum (null contributes nothing); money
# in pence.  Both the direct pass and the tiles use these, so they cannot disagree on
# a rule.
ROW_METRICS: dict[str, Callable[[], Column]] = {
    "settled_count": lambda: F.when(is_settled(), F.lit(1)),
    "inflow": lambda: F.when(is_settled() & is_inflow(), F.col("amount_cents")),
    "outflow": lambda: F.when(is_settled() & is_outflow(), -F.col("amount_cents")),
    "card_outflow": lambda: F.when(is_settled() & is_outflow() & is_card(),
                                   -F.col("amount_cents")),
    "failed_payment_count": lambda: F.when(is_failed() & is_outflow(), F.lit(1)),
}


@dataclass(frozen=True)
class WindowSum:
    """An additive aggregate: the sum of a row metric over the trailing window the
    registry declares for `feature_name` (the feature of the same name unless the sum
    is an intermediate, such as the card outflow behind card_spend_share_30d)."""

    name: str
    metric: str
    feature_name: str | None = None

    @property
    def window_days(self) -> int:
        return _window(self.feature_name or self.name)


def _window(name: str) -> int:
    """The registry's window of feature `name` (a windowed feature)."""
    days = feature(name).window_days
    if days is None:  # pragma: no cover - a wiring error
        raise RuntimeError(f"feature {name!r} has no window in the registry")
    return days


WINDOW_SUMS: tuple[WindowSum, ...] = (
    WindowSum("txn_count_7d", "settled_count"),
    WindowSum("txn_count_30d", "settled_count"),
    WindowSum("txn_count_90d", "settled_count"),
    WindowSum("inflow_sum_30d", "inflow"),
    WindowSum("inflow_sum_90d", "inflow"),
    WindowSum("outflow_sum_30d", "outflow"),
    WindowSum("outflow_sum_90d", "outflow"),
    WindowSum("card_outflow_sum_30d", "card_outflow", "card_spend_share_30d"),
    WindowSum("failed_payment_count_30d", "failed_payment_count"),
)

# Windows of the features that are not plain sums, from the registry.
MAX_OUTFLOW_WINDOW = _window("max_outflow_30d")
COUNTERPARTY_WINDOW = _window("distinct_counterparties_30d")
ACTIVE_DAYS_WINDOW = _window("active_days_30d")


def outflow_value() -> Column:
    """A settled outflow as a positive number of pence (null for anything else)."""
    return ROW_METRICS["outflow"]()


def settled_counterparty() -> Column:
    """The counterparty of a settled transaction (null otherwise or when unknown)."""
    return F.when(is_settled(), F.col("counterparty_id"))


def row_hash() -> Column:
    """A 64-bit hash of the columns of a transaction that feature values depend on,
    for input fingerprints (transaction_id and currency, always GBP in bronze, change
    no feature, and reading them would make every pass wider)."""
    return F.xxhash64(
        "member_id", "booked_at", "amount", "channel", "counterparty_id",
        F.isnull("counterparty_id"), "status", "ingested_at",
    )


def member_row_hash() -> Column:
    """A 64-bit hash of a members row: its contract columns and the landing columns
    that break ties between rows with the same updated_at."""
    return F.xxhash64(
        "member_id", "legal_form", "industry_code", "region", "onboarded_at",
        "closed_at", F.isnull("closed_at"), "updated_at", "landing_date", "source_file",
    )


def hash_parts(hashed: Column) -> tuple[Column, Column]:
    """A signed 64-bit hash split into high and low 32-bit halves: sums of them never
    overflow a long and together determine the sum of the hashes modulo 2^64."""
    return F.shiftright(hashed, 32), hashed.bitwiseAND(F.lit(0xFFFFFFFF))


# --------------------------------------------------------------------------- members


def member_days(members: DataFrame, start: dt.date, end: dt.date,
                allowed_lateness_hours: float) -> DataFrame:
    """(member_id, day, onboarded_day) for every member in the snapshot of each day in
    [start, end].

    Point in time: a members row is known to snapshot D when its updated_at is on or
    before D's feature cutoff (the same rule as transactions, with updated_at as the
    time the row became true).  Of the rows known to D the latest by updated_at wins
    (ties broken by landing_date, source_file, then the row's values, so the choice
    is deterministic).  The member is in snapshot D when onboarded on or before D
    and not closed before D (`closed_at` null or `>= D 00:00`).
    """
    first, last = day_index(start), day_index(end)
    order = ["updated_at", "landing_date", "source_file", "closed_at", "onboarded_at",
             "legal_form", "industry_code", "region"]
    by_member = Window.partitionBy("member_id").orderBy(*[F.col(c).asc_nulls_first()
                                                          for c in order])
    versions = (
        members
        .withColumn("valid_from", known_day(F.col("updated_at"), allowed_lateness_hours))
        .withColumn("next_valid_from", F.lead("valid_from").over(by_member))
        .withColumn("first_day", F.greatest(F.col("valid_from"), F.lit(first)))
        .withColumn("last_day", F.least(F.coalesce(F.col("next_valid_from") - 1,
                                                   F.lit(last)), F.lit(last)))
        .filter(F.col("first_day") <= F.col("last_day"))
    )
    onboarded_day = utc_day(F.col("onboarded_at"))
    closed_day = utc_day(F.col("closed_at"))
    per_day = versions.select(
        "member_id",
        F.explode(F.sequence(F.col("first_day"), F.col("last_day"))).alias("day"),
        onboarded_day.alias("onboarded_day"),
        closed_day.alias("closed_day"),
    )
    is_onboarded = F.col("onboarded_day") <= F.col("day")
    is_open = F.col("closed_day").isNull() | (F.col("closed_day") >= F.col("day"))
    return per_day.filter(is_onboarded & is_open).select("member_id", "day", "onboarded_day")


def member_fingerprints(members: DataFrame, start: dt.date, end: dt.date,
                        allowed_lateness_hours: float) -> DataFrame:
    """Per first-known day (rows known before `start` lumped on start - 1): the
    number of members rows and their hash sums; cumulated up to D they fingerprint
    the members rows snapshot D can see."""
    first, last = day_index(start), day_index(end)
    valid_from = known_day(F.col("updated_at"), allowed_lateness_hours)
    hi, lo = hash_parts(member_row_hash())
    return (
        members
        .filter(valid_from <= F.lit(last))
        .withColumn("day", F.greatest(valid_from, F.lit(first - 1)))
        .groupBy("day")
        .agg(F.count(F.lit(1)).alias("rows"), F.sum(hi).alias("hash_hi"),
             F.sum(lo).alias("hash_lo"))
    )


# --------------------------------------------------------------------------- one day


def snapshot_aggregates(transactions: DataFrame, as_of_date: dt.date,
                        allowed_lateness_hours: float) -> DataFrame:
    """Per member with transactions booked on or before D: every aggregate of
    AGGREGATE_COLUMNS for snapshot D, plus `late_txn_count` (rows booked in the
    90-day window that became known after the cutoff) and the fingerprint of the
    rows the snapshot sees (`fp_rows`, `fp_hash_hi`, `fp_hash_lo`).

    One scan, one shuffle: the window, cutoff and status rules are conditions inside
    the aggregates.  Rows booked before the 90-day window are read only for
    days_since_last_txn (which has no window) and the fingerprint; rows known after
    the cutoff only for the late count.
    """
    d = day_index(as_of_date)
    window_end = utc_midnight(as_of_date + dt.timedelta(days=1))
    cutoff = feature_cutoff(as_of_date, allowed_lateness_hours)

    is_known = F.col("ingested_at") <= F.lit(cutoff)

    def in_window(days: int) -> Column:
        start = utc_midnight(as_of_date - dt.timedelta(days=days - 1))
        return F.col("booked_at") >= F.lit(start)

    def counted(days: int) -> Column:
        return is_known & in_window(days)

    booked_day = utc_day(F.col("booked_at"))
    hi, lo = hash_parts(row_hash())
    one_bit_per_day = F.call_function("shiftleft", F.lit(1).cast("long"), F.lit(d) - booked_day)
    aggregates = [
        *[F.sum(F.when(counted(s.window_days), ROW_METRICS[s.metric]())).alias(s.name)
          for s in WINDOW_SUMS],
        F.max(F.when(counted(MAX_OUTFLOW_WINDOW), outflow_value())).alias("max_outflow_30d"),
        F.count_distinct(F.when(counted(COUNTERPARTY_WINDOW), settled_counterparty()))
        .alias("distinct_counterparties_30d"),
        # one bit per booked day of the window: distinct days without a second shuffle
        F.bit_count(F.bit_or(F.when(counted(ACTIVE_DAYS_WINDOW) & is_settled(),
                                    one_bit_per_day)))
        .alias("active_days_30d"),
        F.max(F.when(is_known & is_settled(), booked_day)).alias("last_settled_day"),
        F.count(F.when(~is_known & in_window(MAX_WINDOW_DAYS), F.lit(1)))
        .alias("late_txn_count"),
        F.count(F.when(is_known, F.lit(1))).alias("fp_rows"),
        F.min(F.when(is_known, booked_day)).alias("first_booked_day"),
        F.sum(F.when(is_known, hi)).alias("fp_hash_hi"),
        F.sum(F.when(is_known, lo)).alias("fp_hash_lo"),
    ]
    return (
        transactions
        .filter(F.col("booked_at") < F.lit(window_end))
        .transform(with_row_values)
        .groupBy("member_id")
        .agg(*aggregates)
        .withColumn("day", F.lit(d))
    )


def input_totals(aggregates: DataFrame) -> DataFrame:
    """One row: the late count, the first booked day known (`first_booked_day`,
    null when none; for `history_days`) and the transaction fingerprint over all
    members of `snapshot_aggregates` (members outside the snapshot included)."""
    return aggregates.agg(
        F.coalesce(F.sum("late_txn_count"), F.lit(0)).alias("late_txn_count"),
        F.min("first_booked_day").alias("first_booked_day"),
        F.coalesce(F.sum("fp_rows"), F.lit(0)).alias("fp_rows"),
        F.coalesce(F.sum("fp_hash_hi"), F.lit(0)).alias("fp_hash_hi"),
        F.coalesce(F.sum("fp_hash_lo"), F.lit(0)).alias("fp_hash_lo"),
    )


# --------------------------------------------------------------------------- assemble


def history_days(day: int, first_booked_day: int | None) -> int:
    """The registry's `history_days` of snapshot day `day` (a day index) whose known
    transactions start on `first_booked_day` (None when none is known)."""
    if first_booked_day is None:
        return 0
    return max(0, min(day - first_booked_day + 1, MAX_WINDOW_DAYS))


def history_column(history: Mapping[int, int]) -> Column:
    """`history_days` of the row's `day`, from {day index: history_days}."""
    if not history:
        return F.lit(0)
    pairs = [F.lit(x) for day, days in sorted(history.items()) for x in (day, days)]
    return F.coalesce(F.create_map(*pairs)[F.col("day")], F.lit(0))


def with_aggregates(days: DataFrame, aggregates: DataFrame) -> DataFrame:
    """`member_days` rows with the aggregates of that member and day (null when the
    member has no transactions that day sees)."""
    return days.join(aggregates.select("member_id", "day", *AGGREGATE_COLUMNS),
                     on=["member_id", "day"], how="left")


def assemble_features(joined: DataFrame, allowed_lateness_hours: float, run_id: str,
                      computed_at: dt.datetime, history: Mapping[int, int]) -> DataFrame:
    """The rows of member_features_daily from (member_id, day, onboarded_day,
    AGGREGATE_COLUMNS) rows (money in pence, nulls where nothing was seen), in the
    registry's column order and types; `history` gives each day's `history_days`
    ({day index: days}, see `history_days`)."""

    def pence(name: str) -> Column:
        whole = F.coalesce(F.col(name), F.lit(0)).cast("decimal(18,0)")
        return (whole * F.lit(Decimal("0.01"))).cast("decimal(18,2)")

    def count(name: str) -> Column:
        return F.coalesce(F.col(name), F.lit(0)).cast("long")

    outflow_30d = pence("outflow_sum_30d")
    has_outflow = outflow_30d > F.lit(0)
    columns: dict[str, Column] = {
        "member_id": F.col("member_id"),
        "as_of_date": day_date(F.col("day")),
        "txn_count_7d": count("txn_count_7d"),
        "txn_count_30d": count("txn_count_30d"),
        "txn_count_90d": count("txn_count_90d"),
        "inflow_sum_30d": pence("inflow_sum_30d"),
        "inflow_sum_90d": pence("inflow_sum_90d"),
        "outflow_sum_30d": outflow_30d,
        "outflow_sum_90d": pence("outflow_sum_90d"),
        "net_flow_30d": pence("inflow_sum_30d") - outflow_30d,
        "max_outflow_30d": pence("max_outflow_30d"),
        "distinct_counterparties_30d": count("distinct_counterparties_30d"),
        "failed_payment_count_30d": count("failed_payment_count_30d"),
        "card_spend_share_30d": F.when(
            has_outflow,
            pence("card_outflow_sum_30d").cast("double") / outflow_30d.cast("double"),
        ),
        "active_days_30d": F.coalesce(F.col("active_days_30d"), F.lit(0)),
        "days_since_last_txn": F.col("day") - F.col("last_settled_day"),
        "tenure_days": F.col("day") - F.col("onboarded_day"),
        "history_days": history_column(history),
        "feature_cutoff_at": cutoff_at(F.col("day"), allowed_lateness_hours),
        "run_id": F.lit(run_id),
        "computed_at": F.lit(computed_at),
    }
    missing = [name for name in column_names() if name not in columns]
    if missing or len(columns) != len(FEATURES):  # pragma: no cover - a wiring error
        raise RuntimeError(f"assemble_features does not build registry columns {missing}")
    return joined.select(*[columns[f.name].cast(f.dtype).alias(f.name) for f in FEATURES])


def member_features(members: DataFrame, transactions: DataFrame, as_of_date: dt.date,
                    allowed_lateness_hours: float, run_id: str,
                    computed_at: dt.datetime) -> DataFrame:
    """The snapshot of `as_of_date` from the bronze members and transactions."""
    aggregates = snapshot_aggregates(transactions, as_of_date, allowed_lateness_hours)
    first = input_totals(aggregates).first()
    assert first is not None  # a global aggregate always returns one row
    day = day_index(as_of_date)
    joined = with_aggregates(
        member_days(members, as_of_date, as_of_date, allowed_lateness_hours), aggregates)
    return assemble_features(joined, allowed_lateness_hours, run_id, computed_at,
                             {day: history_days(day, first["first_booked_day"])})

