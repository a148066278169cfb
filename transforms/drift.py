"""Drift of one scored day against the model's training baseline, and the freshness of
the sources it was computed from, as rows of `drift_metrics`.

The baseline (`memberscore.models.baseline`, logged by `train`) describes every model
feature and the score over the training set: decile bin edges with the share of
non-null values in each bin, the null share, and the 101 percentiles p0..p100.

How the current day is measured (`threshold_counts`): for every column, Spark counts
the day's values falling between consecutive fixed points, the union of the
baseline's bin edges, its percentiles and the largest double below p0.  Intervals
are right-closed like the baseline's bins: interval i holds the finite values v with
points[i-1] < v <= points[i]; null, NaN and +-inf go to interval -1.  The result is a
few hundred rows whatever the data size; PSI and KS are then computed from those
counts in plain Python (`psi`, `ks_statistic`), so no column is ever collected.

PSI (population stability index) over the baseline's bins plus one null bin:

    expected_b = bin_proportions[b] * (1 - null_share)   expected_null = null_share
    actual_b   = rows in bin b / all rows of the day     actual_null   = null rows / all rows
    PSI = sum over bins of (actual - expected) * ln(actual / expected)

with both shares floored at PSI_EPSILON (1e-4) first, so an empty bin on either side
adds a large but finite term instead of infinity (no renormalisation after the
floor).  The null bin makes a column that suddenly turns null count as drift; when
neither side has nulls it adds exactly 0.

KS is the largest distance between the baseline's and the day's CDF of the non-null
values, evaluated at the baseline's distinct percentiles and just below p0.  The
baseline's CDF at a percentile value x is k/100 for the largest k with p_k <= x (so
ties, e.g. 40% zeros, are handled); the day's CDF is exact.  It is therefore not the
exact two-sample KS statistic (which needs the whole training sample): it agrees with
it to within about 0.02 + 1/n_baseline (the baseline's CDF is known to 0.01 at the
points and moves by at most 0.01 between them).  A column with no non-null value on
either side has no KS (value null).

Statuses (`judge`): ok below the warn threshold, warn from it, alert from the alert
threshold (conf `monitor.psi_warn/psi_alert`, `ks_warn/ks_alert`).  The row's
`threshold` is the one the status was decided against: the warn threshold for ok and
warn rows, the alert threshold for alert rows.  A value that cannot be computed (a
column missing from the baseline or from the day) is `value` null, status warn.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from memberscore.tables import DRIFT_METRICS_SCHEMA

PSI_EPSILON = 1e-4
NULL_INTERVAL = -1

OK, WARN, ALERT = "ok", "warn", "alert"
STATUSES = (OK, WARN, ALERT)
SEVERITY = {OK: 0, WARN: 1, ALERT: 2}

PSI, KS = "psi", "ks"


@dataclass(frozen=True)
class Thresholds:
    """Where PSI and KS turn a column's status to warn and to alert (conf `monitor`)."""

    psi_warn: float
    psi_alert: float
    ks_warn: float
    ks_alert: float

FRESHNESS_HOURS, LATE_ROWS = "freshness_hours", "late_rows"
# prediction drift: the day's mean score / the training set's churn rate
MEAN_SCORE_RATIO = "mean_score_vs_base_rate"
PREDICTION_DRIFT_FACTOR = 2.0
SCORE_COLUMN = "score"

MISSING_IN_BASELINE = "missing from the baseline"
MISSING_IN_CURRENT = "missing from the day's data"

COUNTS_SCHEMA = T.StructType([
    T.StructField("group", T.StringType(), True),
    T.StructField("column_name", T.StringType(), False),
    T.StructField("interval", T.IntegerType(), False),
    T.StructField("rows", T.LongType(), False),
])

METRIC_ROWS_SCHEMA = T.StructType([f for f in DRIFT_METRICS_SCHEMA.fields
                                   if f.name not in ("as_of_date", "run_id")])
"""The per-metric part of a drift_metrics row (`shape_drift_metrics` adds the rest)."""


# --------------------------------------------------------------------------- baseline


@dataclass(frozen=True)
class BaselineColumn:
    """One column of a training baseline (see memberscore.models.baseline)."""

    name: str
    role: str
    count: int
    null_count: int
    null_share: float
    percentiles: tuple[float, ...]
    bin_edges: tuple[float, ...]
    bin_proportions: tuple[float, ...]

    @classmethod
    def from_document(cls, name: str, doc: Mapping[str, Any]) -> BaselineColumn:
        """Parse and check one entry of the baseline's `columns`; ValueError says what
        is wrong with it."""
        try:
            percentiles = tuple(float(v) for v in doc.get("percentiles") or ())
            edges = tuple(float(v) for v in doc.get("bin_edges") or ())
            proportions = tuple(float(v) for v in doc.get("bin_proportions") or ())
            count = int(doc.get("count") or 0)
            null_count = int(doc.get("null_count") or 0)
            null_share = float(doc.get("null_share") or 0.0)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"column {name!r}: a value is not a number ({exc})") from None
        problems = []
        if percentiles and len(percentiles) < 2:
            problems.append(f"{len(percentiles)} percentile(s), expected 101")
        if any(b < a for a, b in itertools.pairwise(percentiles)):
            problems.append("percentiles are not sorted")
        if any(b <= a for a, b in itertools.pairwise(edges)):
            problems.append("bin_edges are not strictly increasing")
        if proportions and len(proportions) != len(edges) + 1:
            problems.append(f"{len(proportions)} bin_proportions for {len(edges)} bin_edges "
                            f"(expected {len(edges) + 1})")
        if not all(math.isfinite(v) for v in (*percentiles, *edges, *proportions, null_share)):
            problems.append("a value is not finite")
        if count > 0 and not percentiles:
            problems.append(f"count is {count} but there are no percentiles")
        if problems:
            raise ValueError(f"column {name!r}: {'; '.join(problems)}")
        return cls(name, str(doc.get("role", "feature")), count, null_count, null_share,
                   percentiles, edges, proportions)

    @property
    def rows(self) -> int:
        """Rows the baseline describes for this column (null or not)."""
        return self.count + self.null_count

    def points(self) -> tuple[float, ...]:
        """Where the day's values must be counted to compare them with this column:
        the bin edges, the percentiles, and the largest double below p0."""
        values = set(self.bin_edges) | set(self.percentiles)
        if self.percentiles:
            values.add(math.nextafter(self.percentiles[0], -math.inf))
        return tuple(sorted(values))

    def expected_shares(self) -> list[float]:
        """The baseline's share of rows in each bin, then the null share."""
        proportions = self.bin_proportions or (0.0,) * (len(self.bin_edges) + 1)
        value_share = 1.0 - self.null_share
        return [p * value_share for p in proportions] + [self.null_share]


def union_points(columns: Iterable[BaselineColumn]) -> tuple[float, ...]:
    """The points of several baselines of one column (several models), merged."""
    merged: set[float] = set()
    for column in columns:
        merged.update(column.points())
    return tuple(sorted(merged))


# --------------------------------------------------------------------------- the day


def threshold_counts(frame: DataFrame, points: Mapping[str, Sequence[float]],
                     group_by: str | None = None) -> DataFrame:
    """Rows of each column (optionally per value of `group_by`) in each interval
    between that column's points: (group, column_name, interval, rows), COUNTS_SCHEMA.

    One scan and one small aggregation; intervals with no rows are absent.  Every
    column named in `points` must exist in `frame`.

    The interval is found by binary search with Spark ML's `Bucketizer` (a compiled
    function per column; the same search written as SQL outgrows Spark's 64 KB
    code-generation limit with a hundred points per column).  Bucketizer's buckets
    are left-closed, [s_k, s_k+1), and ours right-closed, so it buckets -value over the
    negated points: -v in [-p_j+1, -p_j) exactly when p_j < v <= p_j+1, and the
    interval is n - bucket.  Zeros are made positive (`+ 0.0`) on both sides, so that
    -0.0 and 0.0, which the JVM's binary search orders, compare equal as in SQL.
    """
    from pyspark.ml.feature import Bucketizer

    missing = [c for c in points if c not in frame.columns]
    if missing:
        raise ValueError(f"threshold_counts: frame lacks the columns {missing}")
    if not points:
        return frame.sparkSession.createDataFrame([], COUNTS_SCHEMA)
    names = list(points)
    for name in names:
        check_points(points[name])
    group = F.col(group_by).cast(T.StringType()) if group_by else F.lit(None).cast("string")
    values = frame.select(group.alias("group"), *[
        F.col(name).cast(T.DoubleType()).alias(f"value_{i}") for i, name in enumerate(names)])
    searched = [i for i, name in enumerate(names) if points[name]]
    if searched:
        negated = values.select("*", *[
            (-F.col(f"value_{i}") + F.lit(0.0)).alias(f"negated_{i}") for i in searched])
        values = Bucketizer(
            inputCols=[f"negated_{i}" for i in searched],
            outputCols=[f"bucket_{i}" for i in searched],
            splitsArray=[[-math.inf, *[-p + 0.0 for p in reversed(points[names[i]])],
                          math.inf] for i in searched],
            handleInvalid="keep",
        ).transform(negated)

    def interval(i: int) -> Column:
        value = F.col(f"value_{i}")
        is_finite = value.isNotNull() & ~F.isnan(value) & (F.abs(value) != F.lit(math.inf))
        n = len(points[names[i]])
        found = (F.lit(n) - F.col(f"bucket_{i}")).cast(T.IntegerType()) if n else F.lit(0)
        return F.when(is_finite, found).otherwise(F.lit(NULL_INTERVAL))

    cells = F.array(*[
        F.struct(F.lit(name).alias("column_name"), interval(i).alias("interval"))
        for i, name in enumerate(names)
    ])
    return (
        values
        .select("group", F.explode(cells).alias("cell"))
        .groupBy("group", F.col("cell.column_name").alias("column_name"),
                 F.col("cell.interval").alias("interval"))
        .agg(F.count(F.lit(1)).alias("rows"))
        .select(*[F.col(f.name).cast(f.dataType).alias(f.name) for f in COUNTS_SCHEMA.fields])
    )


def check_points(points: Sequence[float]) -> None:
    """Points must be finite and strictly increasing (ValueError otherwise)."""
    if not all(math.isfinite(p) for p in points):
        raise ValueError(f"points must be finite: {list(points)[:5]}...")
    if any(b <= a for a, b in itertools.pairwise(points)):
        raise ValueError("points must be strictly increasing")


@dataclass(frozen=True)
class ColumnProfile:
    """The day's values of one column, counted between fixed points."""

    points: tuple[float, ...]
    interval_rows: tuple[int, ...]  # len(points) + 1 intervals
    null_rows: int

    @classmethod
    def from_counts(cls, points: Sequence[float], counts: Mapping[int, int]) -> ColumnProfile:
        """From `threshold_counts` rows of one column: interval -> rows."""
        bad = [i for i in counts if not NULL_INTERVAL <= i <= len(points)]
        if bad:
            raise ValueError(f"intervals {bad} do not exist for {len(points)} points")
        rows = tuple(int(counts.get(i, 0)) for i in range(len(points) + 1))
        return cls(tuple(points), rows, int(counts.get(NULL_INTERVAL, 0)))

    @property
    def non_null(self) -> int:
        return sum(self.interval_rows)

    @property
    def total(self) -> int:
        return self.non_null + self.null_rows

    def at_most(self, x: float) -> int:
        """Non-null rows with value <= x; x must be one of the points."""
        k = bisect.bisect_left(self.points, x)
        if k == len(self.points) or self.points[k] != x:
            raise ValueError(f"{x!r} is not one of the points this column was counted at")
        return sum(self.interval_rows[:k + 1])

    def shares(self, edges: Sequence[float]) -> list[float]:
        """The day's share of rows in each bin of `edges` (right-closed), then the
        null share; all zeros for a day without rows."""
        if self.total == 0:
            return [0.0] * (len(edges) + 2)
        cumulative = [self.at_most(e) for e in edges]
        bins = [b - a for a, b in zip([0, *cumulative], [*cumulative, self.non_null],
                                      strict=True)]
        return [b / self.total for b in bins] + [self.null_rows / self.total]


# --------------------------------------------------------------------------- statistics


def psi(expected: Sequence[float], actual: Sequence[float],
        epsilon: float = PSI_EPSILON) -> float:
    """Population stability index of two share vectors over the same bins, each share
    floored at `epsilon` (no renormalisation): sum((a - e) * ln(a / e))."""
    if len(expected) != len(actual):
        raise ValueError(f"psi: {len(expected)} expected shares, {len(actual)} actual")
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        e, a = max(e, epsilon), max(a, epsilon)
        total += (a - e) * math.log(a / e)
    return total


def column_psi(baseline: BaselineColumn, profile: ColumnProfile) -> float | None:
    """PSI of the day against the baseline column (bins + null bin); None when either
    side has no rows."""
    if baseline.rows == 0 or profile.total == 0:
        return None
    return psi(baseline.expected_shares(), profile.shares(baseline.bin_edges))


def ks_statistic(baseline: BaselineColumn, profile: ColumnProfile) -> float | None:
    """The largest CDF distance at the baseline's percentile points (module
    docstring); None when either side has no non-null value."""
    p = baseline.percentiles
    n = profile.non_null
    if not p or n == 0:
        return None
    last = len(p) - 1
    worst = profile.at_most(math.nextafter(p[0], -math.inf)) / n  # baseline CDF is 0 there
    for x in sorted(set(p)):
        k = bisect.bisect_right(p, x) - 1
        worst = max(worst, abs(k / last - profile.at_most(x) / n))
    return worst


def judge(value: float | None, warn: float, alert: float) -> tuple[str, float | None]:
    """(status, the threshold it was decided against); null value -> warn, no threshold."""
    if value is None:
        return WARN, None
    if value >= alert:
        return ALERT, alert
    if value >= warn:
        return WARN, warn
    return OK, warn


# --------------------------------------------------------------------------- rows


@dataclass(frozen=True)
class Metric:
    """One drift_metrics row before lineage, with a note for people (not stored)."""

    model_name: str
    column_name: str
    metric: str
    value: float | None
    threshold: float | None
    status: str
    note: str = ""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, found {self.status!r}")

    def as_row(self) -> tuple[Any, ...]:
        return (self.model_name, self.column_name, self.metric, self.value, self.threshold,
                self.status)

    def describe(self) -> str:
        """`txn_count_30d psi 0.412 (alert >= 0.25)`."""
        if self.value is None:
            return f"{self.column_name} {self.metric} n/a ({self.status}: {self.note})"
        if self.metric == MEAN_SCORE_RATIO:
            band = f"[{1 / PREDICTION_DRIFT_FACTOR:g}, {PREDICTION_DRIFT_FACTOR:g}]"
            where = "within" if self.status == OK else "outside"
            return (f"{self.column_name} {self.metric} {self.value:.3f} "
                    f"({self.status}: {where} {band})")
        if self.metric in (PSI, KS):
            sign = ">=" if self.status != OK else "<"
        else:
            sign = ">" if self.status != OK else "<="
        limit = "" if self.threshold is None else f" {sign} {self.threshold:g}"
        return f"{self.column_name} {self.metric} {self.value:.3f} ({self.status}{limit})"


def column_metrics(model_name: str, column: str, baseline: BaselineColumn | None,
                   profile: ColumnProfile | None, numeric: bool,
                   conf: Thresholds) -> list[Metric]:
    """PSI (and KS for numeric columns) of one model column.

    A column missing on one side gets value-null, warn rows naming the side: the
    metric cannot be computed, which someone must look at, but is not drift.
    """
    missing = (MISSING_IN_BASELINE if baseline is None
               else MISSING_IN_CURRENT if profile is None else "")
    if missing:
        rows = [Metric(model_name, column, PSI, None, None, WARN, missing)]
        if numeric:
            rows.append(Metric(model_name, column, KS, None, None, WARN, missing))
        return rows
    assert baseline is not None and profile is not None
    value = column_psi(baseline, profile)
    status, threshold = judge(value, conf.psi_warn, conf.psi_alert)
    note = "" if value is not None else "no rows on one side"
    rows = [Metric(model_name, column, PSI, value, threshold, status, note)]
    if numeric:
        ks = ks_statistic(baseline, profile)
        if ks is None:
            # No non-null value on one side.  Both sides empty is no change at all.
            both_empty = baseline.count == 0 and profile.non_null == 0
            rows.append(Metric(model_name, column, KS, None, None, OK if both_empty else WARN,
                               "no non-null values on either side" if both_empty
                               else "no non-null values on one side"))
        else:
            status, threshold = judge(ks, conf.ks_warn, conf.ks_alert)
            rows.append(Metric(model_name, column, KS, ks, threshold, status))
    return rows


def freshness_metric(model_name: str, column: str, hours: float | None,
                     max_hours: float) -> Metric:
    """Hours between the run date's feature cutoff and the latest row known by it;
    alert above `max_hours`, and alert (value null) when no row is known at all."""
    if hours is None:
        return Metric(model_name, column, FRESHNESS_HOURS, None, max_hours, ALERT,
                      "no rows known by the cutoff")
    return Metric(model_name, column, FRESHNESS_HOURS, hours, max_hours,
                  ALERT if hours > max_hours else OK)


def prediction_drift_metric(model_name: str, mean_score: float | None,
                            base_rate: float | None) -> Metric:
    """The day's mean score over the churn rate of the model's training set: warn
    when they differ by more than PREDICTION_DRIFT_FACTOR either way (never alert: a
    changed bank can be real); value null, warn, when either is unknown."""
    if base_rate is None or base_rate <= 0:
        return Metric(model_name, SCORE_COLUMN, MEAN_SCORE_RATIO, None,
                      PREDICTION_DRIFT_FACTOR, WARN,
                      "the baseline has no training churn rate: retrain the model")
    if mean_score is None:
        return Metric(model_name, SCORE_COLUMN, MEAN_SCORE_RATIO, None,
                      PREDICTION_DRIFT_FACTOR, WARN, "no scores for the day")
    ratio = mean_score / base_rate
    off = not (1 / PREDICTION_DRIFT_FACTOR <= ratio <= PREDICTION_DRIFT_FACTOR)
    return Metric(model_name, SCORE_COLUMN, MEAN_SCORE_RATIO, ratio, PREDICTION_DRIFT_FACTOR,
                  WARN if off else OK)


def late_rows_metric(model_name: str, column: str, rows: int | None) -> Metric:
    """Rows booked in the day's feature windows but known only after its cutoff
    (left out of the snapshot): warn when there are any, never alert; value null,
    warn when the source table does not exist."""
    if rows is None:
        return Metric(model_name, column, LATE_ROWS, None, None, WARN, "no source table")
    return Metric(model_name, column, LATE_ROWS, float(rows), 0.0, WARN if rows > 0 else OK)


def worst_first_key(status: str, value: float | None, *names: str) -> tuple[Any, ...]:
    """The one "worst first" order of drift metrics (the monitor's lines, the run
    report's tables): alerts, then warns, then ok; within a status, a metric without
    a value first, then larger values first; then by `names`."""
    return (-SEVERITY.get(status, 0), value is not None,
            -(value if value is not None else 0.0), *names)


def worst_first(metrics: Iterable[Metric]) -> list[Metric]:
    """`metrics` in `worst_first_key` order."""
    return sorted(metrics, key=lambda m: worst_first_key(m.status, m.value, m.model_name,
                                                         m.column_name, m.metric))


# --------------------------------------------------------------------------- sources


def source_timeliness(frame: DataFrame, known_at: str, cutoff: dt.datetime,
                      late_window: tuple[dt.datetime, dt.datetime] | None = None,
                      booked_at: str = "booked_at") -> DataFrame:
    """One row about a source as seen by a snapshot's cutoff:

    - `latest_micros`: the latest `known_at` at or before `cutoff` (epoch microseconds,
      null when no row is known by then);
    - `freshness_hours`: cutoff - that, in hours (null with it);
    - `late_rows`: with `late_window` = (start, end), the rows whose `booked_at` lies
      in [start, end) but whose `known_at` is after the cutoff (0 without a window).
    """
    known = F.col(known_at) <= F.lit(cutoff)
    latest = F.max(F.when(known, F.unix_micros(F.col(known_at))))
    if late_window is not None:
        start, end = late_window
        in_window = (F.col(booked_at) >= F.lit(start)) & (F.col(booked_at) < F.lit(end))
        late = F.count(F.when(in_window & ~known, F.lit(1)))
    else:
        late = F.lit(0)
    cutoff_micros = F.unix_micros(F.lit(cutoff).cast(T.TimestampType()))
    return (
        frame
        .agg(latest.alias("latest_micros"), late.cast(T.LongType()).alias("late_rows"))
        .select(
            "latest_micros",
            ((cutoff_micros - F.col("latest_micros")) / F.lit(3_600_000_000.0))
            .alias("freshness_hours"),
            "late_rows",
        )
    )


# --------------------------------------------------------------------------- shaping


def shape_drift_metrics(metrics: DataFrame, as_of_date: dt.date, run_id: str) -> DataFrame:
    """Rows of METRIC_ROWS_SCHEMA -> rows of drift_metrics, in its declared column
    order and types, with the day and the run."""
    columns = {
        "as_of_date": F.lit(as_of_date),
        "model_name": F.col("model_name"),
        "column_name": F.col("column_name"),
        "metric": F.col("metric"),
        "value": F.col("value"),
        "threshold": F.col("threshold"),
        "status": F.col("status"),
        "run_id": F.lit(run_id),
    }
    return metrics.select(*[
        columns[field.name].cast(field.dataType).alias(field.name)
        for field in DRIFT_METRICS_SCHEMA.fields
    ])
