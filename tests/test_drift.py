"""Drift statistics (transforms/drift.py): PSI by hand, KS against the exact
two-sample statistic, statuses, empty bins, missing columns, the Spark counting and
the drift_metrics shape."""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from collections.abc import Sequence

import numpy as np
import pytest
from chispa import assert_df_equality
from pyspark.sql import SparkSession
from pyspark.sql import types as T
from scipy.stats import ks_2samp

from memberscore.models import baseline as bl
from memberscore.tables import DRIFT_METRICS_SCHEMA
from memberscore.transforms.drift import (
    COUNTS_SCHEMA,
    METRIC_ROWS_SCHEMA,
    PSI_EPSILON,
    BaselineColumn,
    ColumnProfile,
    Metric,
    Thresholds,
    column_metrics,
    column_psi,
    freshness_metric,
    judge,
    ks_statistic,
    late_rows_metric,
    prediction_drift_metric,
    psi,
    shape_drift_metrics,
    source_timeliness,
    threshold_counts,
    union_points,
    worst_first,
)

CONF = Thresholds(psi_warn=0.1, psi_alert=0.25, ks_warn=0.1, ks_alert=0.2)
UTC = dt.UTC


def baseline_of(values: Sequence[float], role: str = "feature") -> BaselineColumn:
    """A baseline column exactly as `train` builds it."""
    return BaselineColumn.from_document("x", bl.describe_column(np.asarray(values, float), role))


def numpy_profile(points: Sequence[float], values: Sequence[float]) -> ColumnProfile:
    """The reference for threshold_counts: numpy's searchsorted (side=left) = the number
    of points strictly below a value; non-finite values are null."""
    array = np.asarray(values, dtype=float)
    finite = np.isfinite(array)
    counts = Counter(int(i) for i in np.searchsorted(np.asarray(points), array[finite],
                                                      side="left"))
    counts[-1] = int((~finite).sum())
    return ColumnProfile.from_counts(points, counts)


def spark_profile(spark: SparkSession, column: BaselineColumn,
                  values: Sequence[float | None]) -> ColumnProfile:
    frame = spark.createDataFrame([(v,) for v in values], "x double")
    points = column.points()
    rows = threshold_counts(frame, {"x": points}).collect()
    return ColumnProfile.from_counts(points, {r["interval"]: r["rows"] for r in rows})


# --------------------------------------------------------------------------- PSI


def test_psi_by_hand_on_explicit_proportions() -> None:
    expected = [0.5, 0.3, 0.2, 0.0]
    actual = [0.4, 0.4, 0.1, 0.1]
    # (a - e) * ln(a / e), the empty expected bin floored at 1e-4
    by_hand = ((0.4 - 0.5) * math.log(0.4 / 0.5)      # 0.0223144
               + (0.4 - 0.3) * math.log(0.4 / 0.3)    # 0.0287682
               + (0.1 - 0.2) * math.log(0.1 / 0.2)    # 0.0693147
               + (0.1 - 1e-4) * math.log(0.1 / 1e-4))  # 0.6900848
    assert by_hand == pytest.approx(0.8104820, abs=1e-6)
    assert psi(expected, actual) == pytest.approx(by_hand, rel=1e-12)
    assert PSI_EPSILON == 1e-4
    assert psi([0.25] * 4, [0.25] * 4) == 0.0
    with pytest.raises(ValueError, match="3 expected shares, 2 actual"):
        psi([0.2, 0.3, 0.5], [0.5, 0.5])


def test_column_psi_by_hand_from_spark_counts_with_a_null(spark: SparkSession) -> None:
    # baseline: edges (1, 2] -> bins (-inf,1], (1,2], (2,inf) with 50/25/25% of the
    # non-null values, and 20% nulls overall
    column = BaselineColumn("x", "feature", 8, 2, 0.2, (0.0, 1.0, 2.0, 3.0), (1.0, 2.0),
                            (0.5, 0.25, 0.25))
    # the day: 1.0 (bin 0, edges are right-closed), 1.5, 2.0 (bin 1), 7.0 (bin 2), null
    profile = spark_profile(spark, column, [1.0, 1.5, 2.0, 7.0, None])
    assert (profile.non_null, profile.null_rows) == (4, 1)
    assert profile.shares(column.bin_edges) == pytest.approx([0.2, 0.4, 0.2, 0.2])
    expected = [0.5 * 0.8, 0.25 * 0.8, 0.25 * 0.8, 0.2]  # 0.4, 0.2, 0.2, 0.2
    by_hand = (0.2 - 0.4) * math.log(0.2 / 0.4) + (0.4 - 0.2) * math.log(0.4 / 0.2)
    assert column_psi(column, profile) == pytest.approx(by_hand, rel=1e-12)
    assert column.expected_shares() == pytest.approx(expected)


def test_same_distribution_has_no_drift(spark: SparkSession) -> None:
    values = [float(v) for v in np.random.default_rng(3).gamma(2.0, 10.0, 400)]
    column = baseline_of(values)
    profile = spark_profile(spark, column, values)
    metrics = column_metrics("m", "x", column, profile, numeric=True, conf=CONF)
    by_metric = {m.metric: m for m in metrics}
    assert by_metric["psi"].value == pytest.approx(0.0, abs=1e-12)
    assert by_metric["ks"].value is not None and by_metric["ks"].value <= 0.01 + 1 / 400
    assert [m.status for m in metrics] == ["ok", "ok"]
    assert by_metric["psi"].threshold == 0.1  # ok rows carry the warn threshold


def test_shifted_distribution_alerts(spark: SparkSession) -> None:
    rng = np.random.default_rng(4)
    train = rng.normal(50.0, 10.0, 500)
    shifted = rng.normal(62.0, 10.0, 300)  # 1.2 standard deviations up
    column = baseline_of(train)
    metrics = {m.metric: m for m in column_metrics(
        "m", "x", column, spark_profile(spark, column, [float(v) for v in shifted]),
        numeric=True, conf=CONF)}
    assert metrics["psi"].value is not None and metrics["psi"].value > 0.25
    assert metrics["psi"].status == "alert" and metrics["psi"].threshold == 0.25
    exact = ks_2samp(train, shifted).statistic
    assert metrics["ks"].value == pytest.approx(exact, abs=0.02 + 1 / 500)
    assert metrics["ks"].status == "alert" and metrics["ks"].threshold == 0.2


def test_empty_bins_give_finite_values(spark: SparkSession) -> None:
    # baseline with an empty bin: 9 zeros and a 5 -> edges [0, 0.5], shares 0.9/0/0.1
    ties = baseline_of([0.0] * 9 + [5.0])
    assert ties.bin_proportions == pytest.approx((0.9, 0.0, 0.1))
    # the day puts everything into the bin the baseline left empty, and a null
    profile = spark_profile(spark, ties, [0.3, 0.3, 0.4, None])
    value = column_psi(ties, profile)
    shares = [1e-4, 0.75, 1e-4, 0.25]             # day: bins then null, floored
    expected = [0.9, 1e-4, 0.1, 1e-4]             # baseline (no nulls), floored
    by_hand = sum((a - e) * math.log(a / e) for a, e in zip(shares, expected, strict=True))
    assert value is not None and math.isfinite(value)
    assert value == pytest.approx(by_hand, rel=1e-9)
    # a day whose values are all null: PSI from the null bin, KS not computable
    all_null = spark_profile(spark, ties, [None, None])
    metrics = {m.metric: m for m in column_metrics("m", "x", ties, all_null, True, CONF)}
    assert metrics["psi"].value is not None and math.isfinite(metrics["psi"].value)
    assert metrics["psi"].status == "alert"
    assert metrics["ks"].value is None and metrics["ks"].status == "warn"
    # both sides entirely null (a nullable feature nobody has): nothing changed
    nothing = BaselineColumn.from_document("x", bl.describe_column(np.array([np.nan]), "feature"))
    metrics = {m.metric: m for m in column_metrics(
        "m", "x", nothing, spark_profile(spark, nothing, [None, None, None]), True, CONF)}
    assert metrics["psi"].value == pytest.approx(0.0) and metrics["psi"].status == "ok"
    assert metrics["ks"].value is None and metrics["ks"].status == "ok"


def test_a_column_missing_on_either_side_is_reported_not_crashed_on() -> None:
    column = baseline_of([1.0, 2.0, 3.0])
    no_baseline = column_metrics("m", "new_feature", None,
                                 numpy_profile(column.points(), [1.0]), True, CONF)
    assert [(m.column_name, m.metric, m.value, m.threshold, m.status, m.note)
            for m in no_baseline] == [
        ("new_feature", "psi", None, None, "warn", "missing from the baseline"),
        ("new_feature", "ks", None, None, "warn", "missing from the baseline")]
    no_current = column_metrics("m", "old_feature", column, None, False, CONF)
    assert [(m.metric, m.value, m.status, m.note) for m in no_current] == [
        ("psi", None, "warn", "missing from the day's data")]  # not numeric: no KS


# --------------------------------------------------------------------------- KS


@pytest.mark.parametrize("case", ["continuous", "ties_and_values_below_the_minimum",
                                  "disjoint", "identical"])
def test_ks_is_within_the_documented_bound_of_the_exact_statistic(case: str) -> None:
    rng = np.random.default_rng(11)
    if case == "continuous":
        base, cur = rng.normal(0, 1, 3000), rng.normal(0.15, 1.2, 2000)
    elif case == "ties_and_values_below_the_minimum":
        # 40% zeros in training; the day has 30% negative values and 10% zeros
        base = np.concatenate([np.zeros(400), rng.integers(1, 20, 600)]).astype(float)
        cur = np.concatenate([-rng.integers(1, 5, 300), np.zeros(100),
                              rng.integers(1, 20, 600)]).astype(float)
    elif case == "disjoint":
        base, cur = rng.uniform(0, 1, 1000), rng.uniform(5, 6, 500)
    else:
        base = rng.exponential(3.0, 1500)
        cur = base.copy()
    column = baseline_of(base)
    value = ks_statistic(column, numpy_profile(column.points(), cur))
    exact = ks_2samp(base, cur).statistic
    assert value is not None
    assert abs(value - exact) <= 0.02 + 1 / len(base), (value, exact)
    if case == "ties_and_values_below_the_minimum":
        assert value >= 0.3  # seen just below the baseline minimum
    if case == "disjoint":
        assert value == 1.0


def test_threshold_counts_match_numpy_and_put_nulls_nan_and_inf_apart(
        spark: SparkSession) -> None:
    points = (-1.0, 0.0, 2.5)
    values = [-3.0, -1.0, -0.5, 0.0, -0.0, 2.5, 2.6, None, float("nan"), float("inf"),
              float("-inf")]
    frame = spark.createDataFrame([("a", v, 1) for v in values], "g string, x double, y int")
    result = threshold_counts(frame, {"x": points, "y": (0.0, 1.0)}, group_by="g")
    assert [(f.name, f.dataType) for f in result.schema.fields] == \
        [(f.name, f.dataType) for f in COUNTS_SCHEMA.fields]
    rows = [
        ("a", "x", 0, 2),   # -3, -1 (right-closed: -1 is in the first interval)
        ("a", "x", 1, 3),   # -0.5, 0.0, -0.0 (equal to 0.0, as in SQL)
        ("a", "x", 2, 1),   # 2.5
        ("a", "x", 3, 1),   # 2.6
        ("a", "x", -1, 4),  # null, NaN, +inf, -inf
        ("a", "y", 1, 11),  # every y is 1 -> (0, 1]
    ]
    assert_df_equality(result, spark.createDataFrame(rows, COUNTS_SCHEMA),
                       ignore_row_order=True, ignore_nullable=True)
    reference = numpy_profile(points, [v if v is not None else math.nan for v in values])
    counted = {interval: n for _, column, interval, n in rows if column == "x"}
    assert ColumnProfile.from_counts(points, counted) == reference
    with pytest.raises(ValueError, match="lacks the columns"):
        threshold_counts(frame, {"missing": points})
    with pytest.raises(ValueError, match="strictly increasing"):
        threshold_counts(frame, {"x": (1.0, 1.0)})


def test_points_cover_edges_percentiles_and_just_below_the_minimum() -> None:
    a = BaselineColumn("x", "feature", 3, 0, 0.0, (1.0, 2.0, 3.0), (2.0,), (0.5, 0.5))
    b = BaselineColumn("x", "feature", 2, 0, 0.0, (0.0, 2.0), (1.5,), (0.5, 0.5))
    assert a.points() == (math.nextafter(1.0, -math.inf), 1.0, 2.0, 3.0)
    assert union_points([a, b]) == (math.nextafter(0.0, -math.inf), 0.0,
                                    math.nextafter(1.0, -math.inf), 1.0, 1.5, 2.0, 3.0)


# --------------------------------------------------------------------------- statuses


def test_status_boundaries_and_thresholds() -> None:
    assert judge(0.0999, 0.1, 0.25) == ("ok", 0.1)
    assert judge(0.1, 0.1, 0.25) == ("warn", 0.1)
    assert judge(0.2499, 0.1, 0.25) == ("warn", 0.1)
    assert judge(0.25, 0.1, 0.25) == ("alert", 0.25)
    assert judge(None, 0.1, 0.25) == ("warn", None)
    assert freshness_metric("m", "transactions.ingested_at", 36.0, 36.0).status == "ok"
    assert freshness_metric("m", "transactions.ingested_at", 36.01, 36.0).status == "alert"
    stale = freshness_metric("m", "members.updated_at", None, 36.0)
    assert (stale.value, stale.threshold, stale.status) == (None, 36.0, "alert")
    assert late_rows_metric("m", "t", 0).status == "ok"
    assert (late_rows_metric("m", "t", 3).value, late_rows_metric("m", "t", 3).status) == \
        (3.0, "warn")
    with pytest.raises(ValueError, match="status must be one of"):
        Metric("m", "c", "psi", 1.0, 0.25, "critical")
    ordered = worst_first([Metric("m", "a", "psi", 0.05, 0.1, "ok"),
                           Metric("m", "b", "psi", 0.3, 0.25, "alert"),
                           Metric("m", "c", "psi", None, None, "warn"),
                           Metric("m", "d", "psi", 0.12, 0.1, "warn")])
    assert [m.column_name for m in ordered] == ["b", "c", "d", "a"]
    assert ordered[0].describe() == "b psi 0.300 (alert >= 0.25)"


def test_malformed_baseline_columns_are_refused_with_the_reason() -> None:
    good = bl.describe_column(np.arange(10.0), "feature")
    assert BaselineColumn.from_document("x", good).count == 10
    with pytest.raises(ValueError, match="3 bin_proportions for 1 bin_edges"):
        BaselineColumn.from_document("x", {**good, "bin_edges": [1.0],
                                           "bin_proportions": [0.2, 0.3, 0.5]})
    with pytest.raises(ValueError, match="not strictly increasing"):
        BaselineColumn.from_document("x", {**good, "bin_edges": [2.0, 1.0]})
    with pytest.raises(ValueError, match="column 'x': a value is not a number"):
        BaselineColumn.from_document("x", {**good, "percentiles": ["a"]})


# --------------------------------------------------------------------------- sources


def test_source_timeliness_measures_freshness_and_late_rows_at_the_cutoff(
        spark: SparkSession) -> None:
    cutoff = dt.datetime(2026, 3, 11, 6, 0, tzinfo=UTC)  # D = 2026-03-10, lateness 6 h
    window = (dt.datetime(2025, 12, 11, tzinfo=UTC), dt.datetime(2026, 3, 11, tzinfo=UTC))
    rows = [
        (dt.datetime(2026, 3, 10, 9, 0, tzinfo=UTC), dt.datetime(2026, 3, 10, 9, 5, tzinfo=UTC)),
        # the latest row known by the cutoff: ingested 2026-03-10 22:30 -> 7.5 h
        (dt.datetime(2026, 3, 10, 22, 0, tzinfo=UTC),
         dt.datetime(2026, 3, 10, 22, 30, tzinfo=UTC)),
        # late: booked on D, known after the cutoff
        (dt.datetime(2026, 3, 10, 23, 0, tzinfo=UTC),
         dt.datetime(2026, 3, 11, 6, 0, 1, tzinfo=UTC)),
        # booked after D: not late for D (and not known by the cutoff)
        (dt.datetime(2026, 3, 11, 1, 0, tzinfo=UTC), dt.datetime(2026, 3, 11, 7, 0, tzinfo=UTC)),
        # booked before the window: not late for D
        (dt.datetime(2025, 12, 10, 23, 0, tzinfo=UTC), dt.datetime(2026, 3, 12, tzinfo=UTC)),
        (None, None),
    ]
    frame = spark.createDataFrame(rows, "booked_at timestamp, ingested_at timestamp")
    result = source_timeliness(frame, "ingested_at", cutoff, window)
    latest = dt.datetime(2026, 3, 10, 22, 30, tzinfo=UTC)
    shape = "latest_micros long, late_rows long, freshness_hours double"
    expected = spark.createDataFrame([(int(latest.timestamp() * 1_000_000), 1, 7.5)], shape)
    assert_df_equality(result.select(*expected.columns), expected, ignore_nullable=True)
    nothing = source_timeliness(frame.where("booked_at > '2030-01-01'"), "ingested_at", cutoff)
    assert_df_equality(nothing.select(*expected.columns),
                       spark.createDataFrame([(None, 0, None)], shape), ignore_nullable=True)


# --------------------------------------------------------------------------- shape


def test_metric_rows_are_shaped_to_the_declared_drift_metrics_schema(
        spark: SparkSession) -> None:
    day = dt.date(2026, 3, 10)
    metrics = [Metric("member_churn", "txn_count_30d", "psi", 0.31, 0.25, "alert"),
               Metric("member_churn", "new_feature", "psi", None, None, "warn", "missing")]
    frame = spark.createDataFrame([m.as_row() for m in metrics], METRIC_ROWS_SCHEMA)
    result = shape_drift_metrics(frame, day, "run-1")
    assert [(f.name, f.dataType) for f in result.schema.fields] == \
        [(f.name, f.dataType) for f in DRIFT_METRICS_SCHEMA.fields]
    expected = spark.createDataFrame([
        (day, "member_churn", "txn_count_30d", "psi", 0.31, 0.25, "alert", "run-1"),
        (day, "member_churn", "new_feature", "psi", None, None, "warn", "run-1"),
    ], DRIFT_METRICS_SCHEMA)
    assert_df_equality(result, expected, ignore_row_order=True, ignore_nullable=True)
    assert isinstance(result.schema["value"].dataType, T.DoubleType)


@pytest.mark.parametrize(("mean", "rate", "value", "status"), [
    (0.036, 0.036, 1.0, "ok"),
    (0.072, 0.036, 2.0, "ok"),        # exactly 2x: still within
    (0.0721, 0.036, 0.0721 / 0.036, "warn"),
    (0.018, 0.036, 0.5, "ok"),
    (0.0179, 0.036, 0.0179 / 0.036, "warn"),
    (0.0, 0.036, 0.0, "warn"),        # a model scoring everyone 0
])
def test_mean_score_against_the_training_churn_rate(mean: float, rate: float, value: float,
                                                    status: str) -> None:
    metric = prediction_drift_metric("m", mean, rate)
    assert (metric.column_name, metric.metric) == ("score", "mean_score_vs_base_rate")
    assert metric.value == pytest.approx(value)
    assert (metric.threshold, metric.status) == (2.0, status)
    assert metric.describe().endswith(
        f"({status}: {'within' if status == 'ok' else 'outside'} [0.5, 2])")


def test_mean_score_without_a_base_rate_or_scores_is_a_warn_without_value() -> None:
    for metric, why in ((prediction_drift_metric("m", 0.03, None), "retrain the model"),
                        (prediction_drift_metric("m", 0.03, 0.0), "retrain the model"),
                        (prediction_drift_metric("m", None, 0.03), "no scores")):
        assert (metric.value, metric.status) == (None, "warn")
        assert why in metric.note


def test_a_day_is_compared_with_the_reference_days_of_its_own_weekday() -> None:
    """Quiet weekends: as of a Monday many members last transacted on Friday (3 days),
    as of a Tuesday on Monday (1 day).  Against the Tuesday-only training set a
    stationary Monday alerts; against the reference weeks' Mondays it does not.  A
    weekday the weeks lack, and a baseline logged without them, fall back to the
    training set."""
    import pandas as pd

    from memberscore.monitoring.baselines import weekday_columns

    rng = np.random.default_rng(7)
    column = "days_since_last_txn"

    def tuesday() -> np.ndarray:
        return rng.choice([0.0, 1.0, 2.0, 4.0], size=500, p=[0.7, 0.2, 0.05, 0.05])

    def monday() -> np.ndarray:
        return rng.choice([0.0, 1.0, 3.0, 4.0], size=500, p=[0.75, 0.03, 0.17, 0.05])

    def frame(values: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame({column: values})

    mondays = [dt.date(2026, 11, 16) + dt.timedelta(weeks=k) for k in range(4)]
    tuesdays = [d + dt.timedelta(days=1) for d in mondays]
    week = {d: (frame(values), np.full(500, 0.1))
            for days, draw in ((mondays, monday), (tuesdays, tuesday))
            for d, values in ((day, draw()) for day in days)}
    training = np.concatenate([tuesday() for _ in range(4)])
    document = bl.build_baseline(frame(training), np.full(len(training), 0.1),
                                 feature_columns=(column,),
                                 label_dates=pd.Series([dt.date(2026, 12, 9)] * len(training)),
                                 feature_table="member_features_daily",
                                 feature_table_version=3, reference_weeks=week)
    by_weekday = document["by_weekday"]
    assert [k for k in by_weekday if k != "population"] == ["monday", "tuesday"]
    assert by_weekday["monday"]["rows"] == 2000
    assert by_weekday["monday"]["as_of_dates"] == [d.isoformat() for d in mondays]
    assert by_weekday["tuesday"]["columns"]["score"]["count"] == 2000

    a_monday, later_monday = dt.date(2026, 12, 14), monday()
    columns, reference = weekday_columns(document, a_monday, "test baseline")
    assert reference == ("the Mondays of the reference weeks "
                         "(4 days, 2026-11-16..2026-12-07)")
    same_weekday = column_psi(columns[column],
                              numpy_profile(union_points([columns[column]]), later_monday))
    pooled, fallback = weekday_columns(document, dt.date(2026, 12, 16), "test baseline")
    assert fallback == "training set"  # no Wednesday in the weeks
    against_training = column_psi(pooled[column],
                                  numpy_profile(union_points([pooled[column]]), later_monday))
    assert same_weekday is not None and against_training is not None
    assert same_weekday < 0.05 < 0.25 < against_training  # ok against Mondays, alert else

    legacy = {k: v for k, v in document.items() if k != "by_weekday"}
    columns, reference = weekday_columns(legacy, a_monday, "test baseline")
    assert reference == "training set"
    assert columns[column].bin_edges == pooled[column].bin_edges
