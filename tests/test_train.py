"""Training: the point-in-time join (no leakage, TTL), the time split, the baseline,
the alias rule, and the `train` job against real local Delta and MLflow."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from chispa import assert_df_equality
from modeldata import (
    MODEL_FEATURES,
    feature_frame,
    label_frame,
    model_settings,
    write_features,
    write_labels,
)
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from memberscore.config import Settings
from memberscore.context import JobResult, RunContext
from memberscore.errors import ModelError
from memberscore.jobs import train
from memberscore.models import baseline as bl
from memberscore.models.estimator import check_trainable, evaluate, time_split
from memberscore.models.promotion import calibration, decide
from memberscore.models.registry import ModelRegistry, ResolvedModel
from memberscore.models.tracking import configure_mlflow
from memberscore.transforms.training import (
    attach_snapshots,
    date_runs,
    format_runs,
    latest_labels,
    model_inputs,
    needed_snapshot_dates,
)

D = dt.date
L1, L2 = D(2026, 3, 10), D(2026, 3, 17)

# --------------------------------------------------------------------------- fixtures



def job_ctx(settings: Settings, spark: SparkSession, mlflow_home: Path, tmp_path: Path,
            name: str, lake: str = "lake", **models: object) -> RunContext:
    conf = model_settings(settings, home=mlflow_home, lake_root=tmp_path / lake,
                          names=(name,), **models)
    return RunContext(conf, run_id=f"test-{name}-{lake}", spark=spark)


def train_args(run_date: dt.date, no_backfill: bool = True) -> argparse.Namespace:
    return argparse.Namespace(run_date=run_date, no_backfill=no_backfill)


# --------------------------------------------------------------------------- the join

SNAP = T.StructType([
    T.StructField("member_id", T.StringType()),
    T.StructField("label_date", T.DateType()),
    T.StructField("churned", T.BooleanType()),
    T.StructField("snapshot_date", T.DateType()),
    T.StructField("has_snapshot", T.BooleanType(), False),
    T.StructField("txn_count_30d", T.LongType()),
])


def test_each_label_gets_the_latest_snapshot_before_its_date_and_never_a_later_one(
        spark: SparkSession) -> None:
    labels = spark.createDataFrame(
        [("m1", L1, True), ("m1", L2, False), ("m2", L1, False), ("m3", L1, True),
         ("m4", L1, None), ("m5", L1, False)],
        "member_id string, label_date date, churned boolean")
    leak_on, leak_after = 1000, 2000  # values that would give the outcome away
    snapshots = spark.createDataFrame(
        [("m1", D(2026, 3, 7), 7), ("m1", D(2026, 3, 9), 9),
         ("m1", L1, leak_on), ("m1", D(2026, 3, 11), leak_after),  # on / after L1
         ("m2", D(2026, 3, 3), 3), ("m2", L1, leak_on),             # L1 - 7: inside TTL
         ("m3", D(2026, 3, 2), 2), ("m3", L1, leak_on), ("m3", D(2026, 3, 12), leak_after),
         ("m4", D(2026, 3, 9), None)],
        "member_id string, as_of_date date, txn_count_30d bigint")

    result = attach_snapshots(labels, snapshots, ["txn_count_30d"], ttl_days=7)

    expected = spark.createDataFrame([
        ("m1", L1, True, D(2026, 3, 9), True, 9),
        # the snapshot after L1 is legitimate history for the next label of m1
        ("m1", L2, False, D(2026, 3, 11), True, leak_after),
        ("m2", L1, False, D(2026, 3, 3), True, 3),
        ("m3", L1, True, None, False, None),   # only L1 - 8 (too old) and later ones
        ("m4", L1, None, D(2026, 3, 9), True, None),  # a null value is kept as null
        ("m5", L1, False, None, False, None),  # no snapshot at all
    ], SNAP)
    assert_df_equality(result, expected, ignore_row_order=True, ignore_nullable=True)


def test_no_joined_snapshot_is_on_or_after_its_label_date_nor_older_than_the_ttl(
        spark: SparkSession) -> None:
    days = [D(2026, 3, 1) + dt.timedelta(days=i) for i in range(20)]
    labels = spark.createDataFrame([(f"m{i}", day, i % 2 == 0)
                                    for i in range(4) for day in days[5::3]],
                                   "member_id string, label_date date, churned boolean")
    snapshots = spark.createDataFrame([(f"m{i}", day, (day - days[0]).days)
                                       for i in range(4) for day in days[::2]],
                                      "member_id string, as_of_date date, txn_count_30d bigint")
    ttls = (1, 2, 7)
    joined = [attach_snapshots(labels, snapshots, ["txn_count_30d"], ttl)
              .withColumn("ttl", F.lit(ttl)) for ttl in ttls]
    rows = joined[0].unionByName(joined[1]).unionByName(joined[2]).collect()
    assert len(rows) == len(ttls) * 4 * len(days[5::3])  # one row per label, none doubled
    for row in rows:
        if row.has_snapshot:
            assert row.label_date - dt.timedelta(days=row.ttl) <= row.snapshot_date \
                < row.label_date
        else:  # nothing at all in the window
            window = {row.label_date - dt.timedelta(days=k) for k in range(1, row.ttl + 1)}
            assert not window & set(days[::2])
    assert {(r.ttl, r.has_snapshot) for r in rows} == {(1, True), (1, False), (2, True),
                                                       (7, True)}


def test_ttl_must_be_positive(spark: SparkSession) -> None:
    frame = spark.createDataFrame([("m1", L1, True)],
                                  "member_id string, label_date date, churned boolean")
    with pytest.raises(ValueError, match="at least 1"):
        attach_snapshots(frame, frame.withColumnRenamed("label_date", "as_of_date"), [], 0)


def test_latest_landing_of_a_label_wins_and_superseded_rows_are_counted(
        spark: SparkSession) -> None:
    first, later = D(2026, 3, 10), D(2026, 3, 12)
    bronze = (
        label_frame(spark, [("m1", L1, False), ("m2", L1, True), ("m3", L2, True)],
                    landing_date=first, source_file="a.csv")
        .unionByName(label_frame(spark, [("m1", L1, True)], landing_date=later,
                                 source_file="a.csv"))
        .unionByName(label_frame(spark, [("m2", L1, False)], landing_date=first,
                                 source_file="b.csv"))
    )
    result = latest_labels(bronze, up_to=F.col("label_date") <= L1)
    expected = spark.createDataFrame(
        [("m1", L1, True, later, 1), ("m2", L1, False, first, 1)],
        "member_id string, label_date date, churned boolean, landing_date date, "
        "superseded_label_rows int")
    assert_df_equality(result, expected, ignore_row_order=True, ignore_nullable=True)


def test_model_inputs_are_doubles_with_nulls_kept(spark: SparkSession) -> None:
    frame = feature_frame(spark, [
        {"member_id": "m1", "as_of_date": L1, "inflow_sum_30d": "12.34", "txn_count_7d": 3},
        {"member_id": "m2", "as_of_date": L1, "days_since_last_txn": None},
    ])
    result = model_inputs(frame, ["inflow_sum_30d", "txn_count_7d", "days_since_last_txn"],
                          keep=["member_id"])
    expected = spark.createDataFrame([("m1", 12.34, 3.0, None), ("m2", 0.0, 0.0, None)],
                                     "member_id string, inflow_sum_30d double, "
                                     "txn_count_7d double, days_since_last_txn double")
    assert_df_equality(result, expected, ignore_row_order=True, ignore_nullable=True)


def test_snapshot_days_needed_and_grouped_into_runs() -> None:
    needed = needed_snapshot_dates([D(2026, 3, 2), D(2026, 3, 3), D(2026, 3, 3),
                                    D(2026, 3, 4), D(2026, 3, 9)])
    assert needed == [D(2026, 3, 1), D(2026, 3, 2), D(2026, 3, 3), D(2026, 3, 8)]
    runs = date_runs(needed)
    assert runs == [(D(2026, 3, 1), D(2026, 3, 3)), (D(2026, 3, 8), D(2026, 3, 8))]
    assert format_runs(runs) == "2026-03-01..2026-03-03, 2026-03-08"
    assert date_runs([]) == []


# --------------------------------------------------------------------------- estimator


def test_holdout_is_the_last_weeks_of_label_dates() -> None:
    dates = [D(2026, 3, 1) + dt.timedelta(days=7 * k) for k in range(5)]  # Mar 1..29
    frame = pd.DataFrame({"label_date": dates, "churned": [True, False] * 2 + [True]})
    split = time_split(frame, holdout_weeks=2)
    assert split.last_label_date == D(2026, 3, 29)
    assert split.holdout_start == D(2026, 3, 16)  # 14 days: Mar 16..29
    assert list(split.holdout["label_date"]) == [D(2026, 3, 22), D(2026, 3, 29)]
    assert list(split.train["label_date"]) == dates[:3]


def test_one_class_or_too_few_rows_is_a_clear_error() -> None:
    dates = [D(2026, 3, 1), D(2026, 3, 2), D(2026, 3, 30), D(2026, 3, 31)]
    one_class = time_split(pd.DataFrame({"label_date": dates, "churned": [False] * 4}), 1)
    with pytest.raises(ModelError, match="training part has only churned=False") as err:
        check_trainable(one_class, min_rows=1)
    assert "holdout part has only churned=False" in str(err.value)
    mixed = time_split(pd.DataFrame({"label_date": dates,
                                     "churned": [True, False, True, False]}), 1)
    check_trainable(mixed, min_rows=4)
    with pytest.raises(ModelError, match=r"only 4 labelled rows .*min_training_rows = 5"):
        check_trainable(mixed, min_rows=5)


# --------------------------------------------------------------------------- baseline


def test_baseline_deciles_bins_and_nulls_are_hand_checkable() -> None:
    column = bl.describe_column(np.array([*range(1, 11), np.nan]), "feature")
    assert column["count"] == 10 and column["null_count"] == 1
    assert column["null_share"] == pytest.approx(1 / 11)
    assert column["bin_edges"] == pytest.approx([1.9, 2.8, 3.7, 4.6, 5.5, 6.4, 7.3, 8.2, 9.1])
    assert column["bin_proportions"] == pytest.approx([0.1] * 10)
    assert column["mean"] == 5.5 and column["min"] == 1.0 and column["max"] == 10.0
    assert len(column["percentiles"]) == 101 and column["percentiles"][50] == 5.5

    # 9 zeros and a 5: deciles 1-8 are 0, the 9th is 0 + 0.1 * 5 (linear interpolation)
    ties = bl.describe_column(np.array([0.0] * 9 + [5.0]), "feature")
    assert ties["bin_edges"] == pytest.approx([0.0, 0.5])
    assert ties["bin_proportions"] == pytest.approx([0.9, 0.0, 0.1])  # <=0, (0,.5], >.5
    assert bl.assign_bins([0.0, 0.5], np.array([-1.0, 0.0, 0.1, 0.5, 9.0])).tolist() == \
        [0, 0, 1, 1, 2]

    empty = bl.describe_column(np.array([np.nan, np.nan]), "score")
    assert empty["count"] == 0 and empty["null_share"] == 1.0 and empty["bin_edges"] == []
    json.loads(bl.dumps({"columns": {"x": empty}}))  # strict JSON: no NaN anywhere


# --------------------------------------------------------------------------- alias rule


def test_alias_rule_needs_a_strictly_better_auc() -> None:
    champion = ResolvedModel("m", "1", "run", "champion")
    assert decide(0.7, None, None, "champion", "challenger").alias == "champion"
    assert decide(0.71, champion, 0.70, "champion", "challenger").alias == "champion"
    assert decide(0.70, champion, 0.70, "champion", "challenger").alias == "challenger"
    assert decide(0.60, champion, 0.70, "champion", "challenger").alias == "challenger"
    unusable = decide(0.6, champion, None, "champion", "challenger", "inputs missing")
    assert unusable.alias == "champion" and "inputs missing" in unusable.reason


@pytest.mark.parametrize(("mean", "rate", "positives", "checked", "ok"), [
    (0.037, 0.037, 184, True, True),
    (0.0296, 0.037, 100, True, True),     # ratio 0.8: the lower bound is in
    (0.0295, 0.037, 100, True, False),
    (0.04625, 0.037, 150, True, True),    # ratio 1.25: the upper bound is in
    (0.0463, 0.037, 150, True, False),
    (0.018, 0.037, 99, False, True),      # 0.49, but too few positives to tell
])
def test_calibration_decides_whether_a_version_may_be_champion(
        mean: float, rate: float, positives: int, checked: bool, ok: bool) -> None:
    metrics = evaluate_like(mean, rate, positives)
    calibrated = calibration(metrics)
    assert (calibrated.checked, calibrated.ok) == (checked, ok)
    assert calibrated.ratio == pytest.approx(mean / rate)
    decision = decide(0.9, None, None, "champion", "challenger", None, calibrated)
    assert decision.alias == ("champion" if ok else "challenger")
    if not ok:
        assert decision.reason.startswith("not calibrated: calibration ratio")
        assert "outside [0.8, 1.25]" in decision.reason
    if not checked:
        assert "not checked: the holdout has 99 churned member(s), fewer than 100" \
            in calibrated.note


def evaluate_like(mean: float, rate: float, positives: int) -> dict[str, float]:
    """The calibration part of `evaluate`'s holdout metrics."""
    return {"mean_prediction": mean, "churn_rate": rate, "calibration_ratio": mean / rate,
            "positives": float(positives)}


def test_evaluate_reports_the_calibration_of_predictions() -> None:
    labels = pd.Series([True, False, False, False])
    metrics = evaluate(labels, np.array([0.5, 0.1, 0.1, 0.1]))
    assert metrics["positives"] == 1.0
    assert metrics["churn_rate"] == 0.25
    assert metrics["mean_prediction"] == pytest.approx(0.2)
    assert metrics["calibration_ratio"] == pytest.approx(0.8)
    assert metrics["brier"] == pytest.approx((0.25 + 3 * 0.01) / 4)
    assert np.isnan(evaluate(pd.Series([False, False]), np.array([0.1, 0.2]))
                    ["calibration_ratio"])


# --------------------------------------------------------------------------- the job

MEMBERS = 80
LABEL_DATES = [D(2026, 2, 2) + dt.timedelta(days=7 * k) for k in range(6)]  # 2 in holdout


def signal_values(seed: int = 0) -> dict[tuple[int, dt.date], tuple[int, int]]:
    """(member, label date) -> (x, y): two independent features, fixed by the seed."""
    rng = np.random.default_rng(seed)
    return {(i, day): (int(rng.integers(0, 100)), int(rng.integers(0, 30)))
            for i in range(MEMBERS) for day in LABEL_DATES}


def write_dataset(ctx: RunContext, rule: str, holdout_rule: str | None = None,
                  leak: bool = False) -> None:
    """Day-before snapshots for every label, x in txn_count_30d, y in active_days_30d.

    `rule` decides churn from the snapshot: "x" (x < 40) or "y" (y < 12); the two
    holdout label dates may follow `holdout_rule` instead.  With `leak`, snapshots ON
    and AFTER each label date carry the outcome itself in txn_count_7d.
    """
    spark = ctx.spark
    values = signal_values()
    features, labels = [], []
    for (i, day), (x, y) in values.items():
        in_holdout = day >= LABEL_DATES[-2]
        which = holdout_rule if (in_holdout and holdout_rule) else rule
        churned = x < 40 if which == "x" else y < 12
        member = f"m{i:03d}"
        labels.append((member, day, churned))
        features.append({"member_id": member, "as_of_date": day - dt.timedelta(days=1),
                         "txn_count_30d": x, "active_days_30d": y,
                         "txn_count_7d": 5, "inflow_sum_30d": Decimal("10.00")})
        if leak:
            for offset in (0, 1):
                features.append({"member_id": member, "as_of_date": day + dt.timedelta(offset),
                                 "txn_count_30d": x, "active_days_30d": y,
                                 "txn_count_7d": 1000 if churned else 0})
    if leak:  # planted rows must be unique per (member, day): the next label is 7 days on
        assert len({(f["member_id"], f["as_of_date"]) for f in features}) == len(features)
    write_features(ctx, feature_frame(spark, features))
    write_labels(ctx, label_frame(spark, labels))


def test_train_logs_everything_and_applies_the_alias_rule(
        settings: Settings, spark: SparkSession, mlflow_home: Path, tmp_path: Path) -> None:
    name = "churn_alias_rule"
    run_date = LABEL_DATES[-1] + dt.timedelta(days=3)  # labels after D would be ignored

    # A: churn follows y; the first version of a model is champion whatever its quality.
    ctx_a = job_ctx(settings, spark, mlflow_home, tmp_path, name, lake="a")
    write_dataset(ctx_a, rule="y")
    first = train.run(ctx_a, train_args(run_date))
    assert first.details["versions"][name]["alias"] == "champion"
    assert first.details["versions"][name]["reason"] == "there was no champion"

    # B: churn follows x; on B's holdout A scores ~0.5 and B ~1.0: B becomes champion.
    # Also 5 members labelled on the last date whose only snapshot is 8 days old (outside
    # the TTL of 7: dropped and counted) and labels unknown on the run date (ignored).
    ctx_b = job_ctx(settings, spark, mlflow_home, tmp_path, name, lake="b")
    write_dataset(ctx_b, rule="x")
    stale = [(f"x{i}", LABEL_DATES[-1], i % 2 == 0) for i in range(5)]
    write_features(ctx_b, feature_frame(spark, [
        {"member_id": m, "as_of_date": day - dt.timedelta(days=8)} for m, day, _ in stale]))
    write_labels(ctx_b, label_frame(spark, [*stale, ("m000", run_date + dt.timedelta(1), True)]))
    # and 3 whose snapshot saw only 45 days of history: incomplete windows, dropped
    short = [(f"h{i}", LABEL_DATES[-1], i == 0) for i in range(3)]
    write_features(ctx_b, feature_frame(spark, [
        {"member_id": m, "as_of_date": day - dt.timedelta(days=1), "history_days": 45,
         "txn_count_30d": 1} for m, day, _ in short]))
    write_labels(ctx_b, label_frame(spark, short))
    # and a label of the last date that landed only after the run date: not known yet
    write_labels(ctx_b, label_frame(spark, [("y0", LABEL_DATES[-1], True)],
                                    landing_date=run_date + dt.timedelta(1)))
    second = train.run(ctx_b, train_args(run_date))
    assert "5 dropped: no snapshot within 7 days" in second.messages[0]
    assert second.details["holdout_auc"] > 0.95
    assert second.details["versions"][name]["version"] == "2"
    assert second.details["versions"][name]["alias"] == "champion"
    assert "beats the champion" in second.details["versions"][name]["reason"]

    # C: trained where churn follows y, judged where it follows x: worse than B there.
    ctx_c = job_ctx(settings, spark, mlflow_home, tmp_path, name, lake="c")
    write_dataset(ctx_c, rule="y", holdout_rule="x")
    third = train.run(ctx_c, train_args(run_date))
    assert third.details["holdout_auc"] < 0.75
    assert third.details["versions"][name]["alias"] == "challenger"

    registry = ModelRegistry(configure_mlflow(ctx_c))
    assert registry.aliases(name) == {"champion": "2", "challenger": "3"}
    champion = registry.resolve(name, "champion")
    version = registry.client.get_model_version(name, "3")
    champion_auc_on_c = float(version.tags["champion_holdout_auc"])
    assert champion_auc_on_c > 0.95 > third.details["holdout_auc"]

    # What the run of B logged.
    run = registry.client.get_run(champion.run_id)
    counts = second.details["counts"]
    assert counts == {"labels_total": 488, "labels_dropped_no_snapshot": 5,
                      "labels_dropped_incomplete_window": 3,
                      "labels_dropped_null_outcome": 0, "labels_superseded": 0,
                      "training_set_rows": 480, "train_rows": 320, "holdout_rows": 160}
    assert run.data.metrics["training_set_rows"] == 480
    assert run.data.metrics["labels_dropped_no_snapshot"] == 5
    assert run.data.metrics["labels_dropped_incomplete_window"] == 3
    assert "3 dropped: their snapshot saw less than the 90 days" in second.messages[0]
    assert run.data.metrics["holdout_auc"] == pytest.approx(second.details["holdout_auc"])
    assert {"holdout_average_precision", "holdout_log_loss", "holdout_brier",
            "train_auc"} <= set(run.data.metrics)
    assert run.data.params["feature_table_version"] == str(ctx_b.lake.version(
        "member_features_daily"))
    assert run.data.params["holdout_start"] == "2026-02-24"  # 2026-03-09 - 13 days
    assert run.data.params["model_algorithm"] == "logistic_regression"
    assert run.data.params["model_max_iter"] == "50"
    features = json.loads(mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/features.json"))
    assert features == list(MODEL_FEATURES)

    signature = registry.signature(champion)
    assert [(c.name, c.type.name) for c in signature.inputs.inputs] == \
        [(f, "double") for f in MODEL_FEATURES]
    info = mlflow.models.get_model_info(champion.uri)
    assert info.saved_input_example_info is not None

    baseline = registry.baseline(champion)
    assert baseline["format"] == "memberscore.feature_baseline" and baseline["rows"] == 480
    assert set(baseline["columns"]) == {*MODEL_FEATURES, "score"}
    x = baseline["columns"]["txn_count_30d"]
    assert sum(x["bin_proportions"]) == pytest.approx(1.0) and x["null_count"] == 0
    assert baseline["columns"]["tenure_days"]["bin_edges"] == [0.0]  # constant column
    assert baseline["feature_table_version"] == ctx_b.lake.version("member_features_daily")
    assert 0.0 <= baseline["columns"]["score"]["min"] <= baseline["columns"]["score"]["max"] \
        <= 1.0
    # the reference weeks are the 28 days ending on the last training snapshot (Sunday
    # 2026-03-08); nothing was ingested, so only the days with snapshots count: four
    # Sundays, their 80 members each with complete windows, and the 5 stale members
    # of 03-01 (the 3 that saw 45 days are left out)
    week = baseline["by_weekday"]
    assert set(week) == {"population", "sunday"}
    assert week["sunday"]["as_of_dates"] == ["2026-02-15", "2026-02-22", "2026-03-01",
                                             "2026-03-08"]
    assert week["sunday"]["rows"] == 4 * 80 + 5
    assert set(week["sunday"]["columns"]) == {*MODEL_FEATURES, "score"}
    sunday_x = week["sunday"]["columns"]["txn_count_30d"]
    assert sunday_x["count"] == 4 * 80 + 5 and 0.0 <= sunday_x["min"] <= sunday_x["max"] < 100.0


def test_train_never_learns_from_snapshots_on_or_after_the_label_date(
        settings: Settings, spark: SparkSession, mlflow_home: Path, tmp_path: Path) -> None:
    """Snapshots on and after each label date hold the outcome itself; the labels are
    random with respect to the honest snapshots.  Any leak would give AUC 1.0."""
    ctx = job_ctx(settings, spark, mlflow_home, tmp_path, "churn_leakage")
    values = signal_values(seed=1)
    rng = np.random.default_rng(7)
    features, labels = [], []
    for (i, day), (x, y) in values.items():
        member, churned = f"m{i:03d}", bool(rng.random() < 0.3)
        labels.append((member, day, churned))
        features.append({"member_id": member, "as_of_date": day - dt.timedelta(days=1),
                         "txn_count_30d": x, "active_days_30d": y})
        for offset in (0, 1):
            features.append({"member_id": member, "as_of_date": day + dt.timedelta(offset),
                             "txn_count_30d": x, "active_days_30d": y,
                             "txn_count_7d": 1000 if churned else 0})
    write_features(ctx, feature_frame(spark, features))
    write_labels(ctx, label_frame(spark, labels))

    result = train.run(ctx, train_args(LABEL_DATES[-1]))
    assert result.details["holdout_auc"] < 0.75
    baseline = ModelRegistry(configure_mlflow(ctx)).baseline(
        ModelRegistry(configure_mlflow(ctx)).resolve("churn_leakage", "champion"))
    assert baseline["columns"]["txn_count_7d"]["max"] == 0.0  # the planted values never seen


def test_missing_snapshot_days_are_listed_when_backfill_is_off(
        settings: Settings, spark: SparkSession, mlflow_home: Path, tmp_path: Path) -> None:
    ctx = job_ctx(settings, spark, mlflow_home, tmp_path, "churn_missing")
    write_features(ctx, feature_frame(spark, [{"member_id": "m1", "as_of_date": D(2026, 3, 9)}]))
    write_labels(ctx, label_frame(spark, [("m1", L1, True), ("m1", D(2026, 3, 12), False),
                                          ("m1", D(2026, 3, 13), False),
                                          ("m1", D(2026, 3, 20), False)]))
    with pytest.raises(ModelError) as err:
        train.run(ctx, train_args(D(2026, 3, 31), no_backfill=True))
    message = str(err.value)
    assert "lacks the snapshots of 3 day(s)" in message
    assert "2026-03-11..2026-03-12, 2026-03-19" in message
    assert "memberscore backfill --start 2026-03-11 --end 2026-03-19" in message

    # by default train backfills them; here there is no bronze data to build them from
    with pytest.raises(ModelError) as err:
        train.run(ctx, train_args(D(2026, 3, 31), no_backfill=False))
    message = str(err.value)
    assert "backfilling the feature snapshots that the labels need failed" in message
    assert "the days still missing are 2026-03-11..2026-03-12, 2026-03-19" in message


def test_no_labels_or_one_class_is_a_clear_model_error(
        settings: Settings, spark: SparkSession, mlflow_home: Path, tmp_path: Path) -> None:
    ctx = job_ctx(settings, spark, mlflow_home, tmp_path, "churn_one_class", holdout_weeks=1)
    with pytest.raises(ModelError, match="bronze_member_outcomes does not exist"):
        train.run(ctx, train_args(L1))
    write_features(ctx, feature_frame(spark, [{"member_id": f"m{i}", "as_of_date": day}
                                              for i in range(40) for day in (D(2026, 3, 9),
                                                                             D(2026, 3, 16))]))
    write_labels(ctx, label_frame(spark, [(f"m{i}", day, False) for i in range(40)
                                          for day in (L1, L2)]))
    with pytest.raises(ModelError, match="no labels with label_date <= 2026-03-09"):
        train.run(ctx, train_args(D(2026, 3, 9)))
    with pytest.raises(ModelError, match="training part has only churned=False"):
        train.run(ctx, train_args(L2, no_backfill=True))
    assert ModelRegistry(configure_mlflow(ctx)).aliases("churn_one_class") is None


# --------------------------------------------------------------------------- end to end

@pytest.mark.slow
def generated_bank(ctx: RunContext, members: int, days: int) -> Callable[..., JobResult]:
    """generate -> ingest the history (one range); returns the job runner."""
    from memberscore.cli import build_parser
    from memberscore.runner import execute

    def job(*argv: str) -> JobResult:
        args = build_parser().parse_args(list(argv))
        return execute(ctx, args.command, args)

    shutil.rmtree(ctx.paths.landing, ignore_errors=True)  # the module shares one home
    job("generate", "--members", str(members), "--days", str(days), "--seed", "11",
        "--end-date", "2026-03-31", "--clean")  # dirty rows are ingest's business
    landed = sorted({p.name for p in ctx.paths.landing.glob("*/*") if p.is_dir()})
    assert landed, "generate wrote no landing days"
    job("ingest", "--start", landed[0], "--end", landed[-1])
    return job


def test_a_model_trained_on_generated_data_beats_auc_065(
        settings: Settings, spark: SparkSession, mlflow_home: Path, tmp_path: Path) -> None:
    """generate -> ingest -> train (which backfills the snapshots it needs), on a bank
    long enough for complete windows: 160 days, labels weekly from day 28."""
    ctx = job_ctx(settings, spark, mlflow_home, tmp_path, "churn_generated",
                  max_iter=100, min_training_rows=200, holdout_weeks=3)
    result = generated_bank(ctx, 400, 160)("train", "--run-date", "2026-03-31")
    assert result.details["holdout_auc"] > 0.65
    assert result.details["versions"]["churn_generated"]["alias"] == "champion"
    counts = result.details["counts"]
    # the first bank day is 2025-10-23: labels dated before 2026-01-21 have snapshots
    # with less than 90 days behind them; they are counted and never built
    assert counts["labels_dropped_incomplete_window"] > counts["training_set_rows"]
    assert counts["labels_dropped_no_snapshot"] < 5  # members outside a complete snapshot
    built = {d for a, b in result.details["backfilled"]
             for d in pd.date_range(a, b).date}
    assert built and min(built) >= dt.date(2026, 1, 20)
    snapshots = ctx.lake.read("member_features_daily")
    assert {r[0] for r in snapshots.select("history_days").distinct().collect()} == {90}
    run = mlflow.get_run(result.details["mlflow_run_id"])
    assert (run.data.metrics["labels_dropped_incomplete_window"]
            == counts["labels_dropped_incomplete_window"])
    for metric in ("holdout_brier", "holdout_mean_prediction", "holdout_calibration_ratio"):
        assert metric in run.data.metrics, metric


def test_train_on_too_short_a_history_fails_naming_the_history_needed(
        settings: Settings, spark: SparkSession, mlflow_home: Path, tmp_path: Path) -> None:
    """100 days of history: every label's snapshot comes before day 90."""
    ctx = job_ctx(settings, spark, mlflow_home, tmp_path, "churn_short",
                  max_iter=20, min_training_rows=10, holdout_weeks=1)
    job = generated_bank(ctx, 40, 100)
    with pytest.raises(ModelError) as raised:
        job("train", "--run-date", "2026-03-31")
    message = str(raised.value)
    assert "\n" not in message
    assert "need 90 days of transaction history behind a snapshot" in message
    assert "the lake has transactions from 2025-12-22 on" in message
    # the labels' first snapshot is 2026-01-18 (label 2026-01-19): 89 days before it
    assert "`memberscore ingest --start 2025-10-21 --end 2025-12-21`" in message
    assert not ctx.lake.exists("member_features_daily")  # nothing was backfilled


@pytest.fixture(autouse=True)
def _no_leftover_active_run() -> Iterator[None]:
    yield
    while mlflow.active_run() is not None:  # a failed test must not leak its run
        mlflow.end_run()

