"""Scoring: scores equal the model's own predict, lineage on every row, one set of
rows per model, signature and alias refusals, the quality gate, idempotent re-runs,
and the score bands."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from chispa import assert_df_equality
from modeldata import MODEL_FEATURES, feature_frame, model_settings, write_features
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from qualitydata import record_passed

from memberscore.cli import main
from memberscore.config import ScoreBand, Settings, check_score_bands, load_settings
from memberscore.context import RunContext
from memberscore.errors import ConfigError, InputError, ModelError, QualityGateError
from memberscore.jobs import score
from memberscore.models.estimator import fit, time_split
from memberscore.models.registry import ModelRegistry
from memberscore.models.tracking import configure_mlflow
from memberscore.models.training_run import log_training_run
from memberscore.quality import require_passed
from memberscore.transforms.scoring import score_band
from memberscore.transforms.training import model_inputs

D1, D2 = dt.date(2026, 3, 31), dt.date(2026, 4, 1)
MEMBERS = 30
SCORES = "member_scores"

# --------------------------------------------------------------------------- fixtures



@pytest.fixture(scope="module")
def registered(mlflow_home: Path, spark: SparkSession) -> dict[str, str]:
    """Registered models for the whole module, from two logged runs (A and B):
    `churn_a` v1 = A @champion and v2 = B @challenger, `churn_b` v1 = B @champion,
    `churn_c` v1 = A with only @challenger."""
    conf = model_settings(load_settings("local"), home=mlflow_home,
                          lake_root=mlflow_home / "unused", names=("churn_a",))
    setup = configure_mlflow(RunContext(conf, run_id="register", spark=spark))
    registry = ModelRegistry(setup)
    runs = {}
    for run, seed in (("A", 1), ("B", 2)):
        trained = fit(time_split(training_frame(seed), 1), MODEL_FEATURES, conf.models)
        runs[run] = log_training_run(setup, trained=trained, example=training_frame(seed),
                                     baseline={}, params={}, counts={}, tags={},
                                     run_name=f"model-{run}")
    versions = {}
    for name, run, alias in (("churn_a", "A", "champion"), ("churn_a", "B", "challenger"),
                             ("churn_b", "B", "champion"), ("churn_c", "A", "challenger")):
        version = registry.register(runs[run].model_uri, name, runs[run].run_id, tags={})
        registry.set_alias(version, alias)
        versions[f"{name}@{alias}"] = version.version
    return versions


def training_frame(seed: int, rows: int = 300) -> pd.DataFrame:
    """Model inputs (doubles, some NaN) and a churn label that depends on two of them."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({f: rng.integers(0, 50, rows).astype("float64")
                          for f in MODEL_FEATURES})
    frame.loc[rng.random(rows) < 0.2, "days_since_last_txn"] = np.nan
    frame["churned"] = (frame["txn_count_30d"] + rng.normal(0, 10, rows)
                        < frame["active_days_30d"] + 5)
    frame["label_date"] = [dt.date(2026, 1, 1) + dt.timedelta(days=int(d))
                           for d in rng.integers(0, 60, rows)]
    return frame


def snapshot_records(day: dt.date, members: int = MEMBERS, seed: int = 0) -> list[dict]:
    """A feature day: varied values, decimals with cents, nulls where allowed."""
    rng = np.random.default_rng(seed)
    records = []
    for i in range(members):
        record: dict = {"member_id": f"m{i:03d}", "as_of_date": day}
        for name in MODEL_FEATURES:
            record[name] = int(rng.integers(0, 50))
        # in the training range (0-50): a linear model extrapolates far outside it
        record["inflow_sum_30d"] = f"{rng.integers(0, 50)}.{rng.integers(0, 100):02d}"
        record["card_spend_share_30d"] = None if i % 4 == 0 else float(rng.random())
        record["days_since_last_txn"] = None if i % 5 == 0 else int(rng.integers(0, 40))
        records.append(record)
    return records


@pytest.fixture
def scoring_ctx(settings: Settings, spark: SparkSession, mlflow_home: Path, tmp_path: Path,
                registered: dict[str, str]) -> Iterator[RunContext]:
    conf = model_settings(settings, home=mlflow_home, lake_root=tmp_path / "lake",
                          names=("churn_a",))
    yield RunContext(conf, run_id="score-run-1", spark=spark)


def with_names(ctx: RunContext, *names: str, run_id: str | None = None) -> RunContext:
    conf = dataclasses.replace(ctx.settings, models=dataclasses.replace(
        ctx.settings.models, names=names))
    return RunContext(conf, run_id=run_id or ctx.run_id, spark=ctx.spark)


def read_scores(ctx: RunContext, day: dt.date) -> pd.DataFrame:
    return (ctx.lake.read(SCORES).filter(F.col("as_of_date") == day)
            .withColumn("scored_at_epoch", F.col("scored_at").cast("double"))
            .toPandas().sort_values(["model_name", "member_id"]).reset_index(drop=True))


# --------------------------------------------------------------------------- scoring


def test_scores_equal_the_models_own_predict_and_carry_their_lineage(
        scoring_ctx: RunContext, registered: dict[str, str]) -> None:
    ctx = scoring_ctx
    write_features(ctx, feature_frame(ctx.spark, snapshot_records(D1)))
    result = score.score_day(ctx, D1)
    assert result.rows == {SCORES: MEMBERS}

    scores = read_scores(ctx, D1)
    version = registered["churn_a@champion"]
    model = mlflow.sklearn.load_model(f"models:/churn_a/{version}")
    inputs = (model_inputs(ctx.lake.read("member_features_daily"), MODEL_FEATURES,
                           keep=["member_id"]).toPandas().sort_values("member_id"))
    expected = model.predict_proba(inputs[list(MODEL_FEATURES)])[:, 1]
    assert list(scores["member_id"]) == list(inputs["member_id"])
    assert np.max(np.abs(scores["score"].to_numpy() - expected)) <= 1e-9
    assert scores["score"].std() > 0.05  # the model separates members (not a constant)

    bands = ["low" if s < 0.2 else "medium" if s < 0.5 else "high" for s in expected]
    assert list(scores["score_band"]) == bands
    assert set(scores["model_name"]) == {"churn_a"}
    assert set(scores["model_version"]) == {version}      # the resolved version, not "@"
    assert version != registered["churn_a@challenger"]
    assert set(scores["run_id"]) == {"score-run-1"}
    assert set(scores["scored_at_epoch"]) == {ctx.started_at.timestamp()}
    assert f"churn_a @champion -> version {version}" in result.messages[0]


def test_every_configured_model_gets_its_own_rows(
        scoring_ctx: RunContext, registered: dict[str, str]) -> None:
    ctx = with_names(scoring_ctx, "churn_a", "churn_b")
    write_features(ctx, feature_frame(ctx.spark, snapshot_records(D1)))
    assert score.score_day(ctx, D1).rows == {SCORES: 2 * MEMBERS}
    scores = read_scores(ctx, D1)
    per_model = scores.groupby("model_name")
    assert per_model.size().to_dict() == {"churn_a": MEMBERS, "churn_b": MEMBERS}
    assert per_model["model_version"].unique().map(list).to_dict() == {
        "churn_a": [registered["churn_a@champion"]], "churn_b": [registered["churn_b@champion"]]}
    a, b = (scores[scores.model_name == n]["score"].to_numpy() for n in ("churn_a", "churn_b"))
    assert not np.allclose(a, b)
    assert not scores.duplicated(["member_id", "as_of_date", "model_name"]).any()


def test_a_rerun_replaces_the_day_and_leaves_other_days_alone(
        scoring_ctx: RunContext) -> None:
    ctx = scoring_ctx
    write_features(ctx, feature_frame(ctx.spark, snapshot_records(D1) + snapshot_records(D2)))
    score.score_day(ctx, D2)
    score.score_day(ctx, D1)
    first = read_scores(ctx, D1)
    other_day = read_scores(ctx, D2)

    again = with_names(ctx, "churn_a", run_id="score-run-2")
    assert score.score_day(again, D1).rows == {SCORES: MEMBERS}
    second = read_scores(ctx, D1)
    assert len(second) == MEMBERS
    assert not second.duplicated(["member_id", "as_of_date", "model_name"]).any()
    assert set(second["run_id"]) == {"score-run-2"}
    columns = ["member_id", "model_name", "model_version", "score", "score_band"]
    pd.testing.assert_frame_equal(first[columns], second[columns])
    pd.testing.assert_frame_equal(read_scores(ctx, D2), other_day)


# --------------------------------------------------------------------------- refusals


def test_a_snapshot_that_does_not_fit_the_signature_is_refused_listing_every_problem(
        scoring_ctx: RunContext) -> None:
    ctx = scoring_ctx
    frame = (feature_frame(ctx.spark, snapshot_records(D1))
             .drop("txn_count_7d", "tenure_days")
             .withColumn("inflow_sum_30d", F.col("inflow_sum_30d").cast("string"))
             .withColumn("card_spend_share_30d", F.lit(True)))
    write_features(ctx, frame)
    with pytest.raises(ModelError) as err:
        score.score_day(ctx, D1)
    message = str(err.value)
    for problem in ("txn_count_7d: missing (model expects double)",
                    "tenure_days: missing (model expects double)",
                    "inflow_sum_30d: model expects double, snapshot has string",
                    "card_spend_share_30d: model expects double, snapshot has boolean"):
        assert problem in message
    assert "churn_a @champion -> version" in message and "nothing was scored" in message
    assert not ctx.lake.exists(SCORES)


def test_a_model_without_the_champion_alias_is_refused(scoring_ctx: RunContext) -> None:
    write_features(scoring_ctx, feature_frame(scoring_ctx.spark, snapshot_records(D1)))
    with pytest.raises(ModelError) as err:
        score.score_day(with_names(scoring_ctx, "churn_a", "churn_c"), D1)
    message = str(err.value)
    assert "registered model 'churn_c' has no 'champion' alias" in message
    assert "@challenger -> v1" in message and "run `memberscore train" in message
    with pytest.raises(ModelError, match=r"no registered model named 'nobody'.*memberscore train"):
        score.score_day(with_names(scoring_ctx, "nobody"), D1)
    assert not scoring_ctx.lake.exists(SCORES)


def test_a_missing_snapshot_is_refused_in_one_line(
        scoring_ctx: RunContext, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(InputError, match="table member_features_daily does not exist"):
        score.score_day(scoring_ctx, D1)
    write_features(scoring_ctx, feature_frame(scoring_ctx.spark, snapshot_records(D2)))
    with pytest.raises(InputError, match=r"has no snapshot for 2026-03-31.*memberscore "
                                         "features --run-date 2026-03-31"):
        score.score_day(scoring_ctx, D1)
    # the command line: exit status of InputError and one line on stderr
    assert main(["score", "--run-date", "2026-03-31"]) == InputError.exit_code
    failure = [line for line in capsys.readouterr().err.splitlines()
               if line.startswith("memberscore: ")]  # the rest are log lines
    assert len(failure) == 1
    assert failure[0].startswith("memberscore: score failed: there is no feature snapshot")


def test_the_job_refuses_a_day_that_was_never_validated(scoring_ctx: RunContext) -> None:
    # a snapshot written without validation, as `backfill` writes its days
    write_features(scoring_ctx, feature_frame(scoring_ctx.spark, snapshot_records(D1)))
    with pytest.raises(QualityGateError) as refused:
        score.run(scoring_ctx, argparse.Namespace(run_date=D1))
    assert str(refused.value) == (
        "member_features_daily for 2026-03-31 has no validation results in "
        "validation_results: refusing to use a day that was never validated; run "
        "`memberscore validate --run-date 2026-03-31` first")
    assert not scoring_ctx.lake.exists(SCORES)


def test_the_job_validates_the_scores_it_wrote(scoring_ctx: RunContext) -> None:
    """Warnings are shown with the job's output; a critical failure fails the job
    after the scores and the results are written.  The snapshots are recorded as
    validated (tests/qualitydata.py): here they are the input, not the subject."""
    ctx = RunContext(dataclasses.replace(scoring_ctx.settings, validation=dataclasses.replace(
        scoring_ctx.settings.validation, build_data_docs=False)),
        run_id=scoring_ctx.run_id, spark=scoring_ctx.spark)
    # the day before had 30 members' scores; D2 has 20: outside [24, 36], a warning
    write_features(ctx, feature_frame(ctx.spark, snapshot_records(D1)))
    score.score_day(ctx, D1)
    write_features(ctx, feature_frame(ctx.spark, snapshot_records(D2, members=20)))
    record_passed(ctx, "member_features_daily", D2)
    second = score.run(ctx, argparse.Namespace(run_date=D2))
    assert second.rows == {SCORES: 20}
    assert second.messages[1].startswith(
        "validate member_scores 2026-04-01: passed, 15/16 expectations met, 1 warning(s), "
        "20 rows; result ")
    assert second.messages[2:] == [
        "WARNING member_scores 2026-04-01: expect_table_row_count_to_be_between("
        "min_value=$min_row_count, max_value=$max_row_count) not met, observed 20 "
        "(expected between 24 and 36)"]
    assert second.details["validation_warnings"] == second.messages[2:]
    assert second.details["validation"]["passed"] is True
    assert require_passed(ctx, SCORES, D2) == [
        f"{second.messages[2]} (validated by run score-run-1)"]

    # the snapshot of D2 is rebuilt with a member twice: its scores have a duplicated
    # key, a critical failure, raised after the scores and the results are written
    twice = snapshot_records(D2, members=20) + snapshot_records(D2, members=1)
    ctx.lake.replace_where("member_features_daily", feature_frame(ctx.spark, twice),
                           {"as_of_date": D2})
    record_passed(ctx, "member_features_daily", D2)
    with pytest.raises(QualityGateError) as failed:
        score.run(ctx, argparse.Namespace(run_date=D2))
    message = str(failed.value)
    assert message.startswith(
        "data quality gate failed for member_scores on 2026-04-01: critical expectation "
        "expect_compound_columns_to_be_unique(member_id, as_of_date, model_name) failed, "
        "observed 2 of 21 rows unexpected (9.52%)")
    result_path = Path(message.split("full result: ")[1].split(";")[0])
    assert result_path.is_file()
    assert ctx.lake.read(SCORES).where(F.col("as_of_date") == D2).count() == 21
    with pytest.raises(QualityGateError, match=str(result_path)):
        require_passed(ctx, SCORES, D2)


# --------------------------------------------------------------------------- bands

BANDS = (ScoreBand("low", 0.0, 0.2), ScoreBand("medium", 0.2, 0.5),
         ScoreBand("high", 0.5, 1.000001))


def test_bands_are_lower_inclusive_upper_exclusive(spark: SparkSession) -> None:
    frame = spark.createDataFrame([(0.0,), (0.1999,), (0.2,), (0.4999,), (0.5,), (1.0,),
                                   (None,)], "score double")
    result = frame.select("score", score_band(F.col("score"), BANDS).alias("score_band"))
    expected = spark.createDataFrame(
        [(0.0, "low"), (0.1999, "low"), (0.2, "medium"), (0.4999, "medium"), (0.5, "high"),
         (1.0, "high"), (None, None)],
        T.StructType([T.StructField("score", T.DoubleType()),
                      T.StructField("score_band", T.StringType())]))
    assert_df_equality(result, expected, ignore_row_order=True, ignore_nullable=True)


def test_bands_with_gaps_overlaps_or_short_of_one_are_refused() -> None:
    check_score_bands(BANDS)
    bad = (ScoreBand("low", 0.0, 0.2), ScoreBand("mid", 0.3, 0.5), ScoreBand("high", 0.4, 1.0))
    with pytest.raises(ConfigError) as err:
        check_score_bands(bad)
    message = str(err.value)
    assert "'mid' starts at 0.3 but 'low' ends at 0.2" in message
    assert "'high' starts at 0.4 but 'mid' ends at 0.5" in message
    assert "the highest band ends at 1.0" in message
    with pytest.raises(ConfigError, match="no bands"):
        check_score_bands(())
