"""The quality gate end to end: `validate_table` with the real lake, GX results and
`validation_results`; `require_passed`; and the `memberscore validate` command."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from memberscore.cli import main
from memberscore.config import Settings
from memberscore.context import RunContext
from memberscore.errors import QualityGateError
from memberscore.quality import (
    RESULTS_TABLE,
    RUNS_TABLE,
    VALIDATION_RESULTS_SCHEMA,
    VALIDATION_RUNS_SCHEMA,
    DayData,
    load_suite,
    previous_row_count,
    recorded_validation,
    require_passed,
    validate_table,
)
from memberscore.quality.lineage import day_data, to_micros
from memberscore.quality.suites import BRONZE_TRANSACTIONS, FEATURES, SCORES
from tests.test_quality import (
    BRONZE_GOOD,
    FEATURES_GOOD,
    ROW_COUNT_WINDOW,
    SCORES_GOOD,
    TS,
    frame,
)

D = dt.date(2026, 1, 5)
BEFORE = dt.date(2026, 1, 4)
SCORE_RANGE = "expect_column_values_to_be_between(score, min_value=0, max_value=1)"
SCORES_EXPECTATIONS = len(load_suite(SCORES.name).expectations)


def without_docs(settings: Settings) -> Settings:
    """Data Docs cost a second per validation; only the CLI tests build them."""
    return dataclasses.replace(
        settings, validation=dataclasses.replace(settings.validation, build_data_docs=False))


@pytest.fixture
def gate_ctx(settings: Settings, spark: SparkSession) -> RunContext:
    return RunContext(without_docs(settings), run_id="run-1", spark=spark)


def rerun(ctx: RunContext, run_id: str) -> RunContext:
    return RunContext(ctx.settings, run_id=run_id, spark=ctx.spark)


def scores(spark: SparkSession, day: dt.date, count: int, bad_score: float | None = None,
           ) -> DataFrame:
    rows = [{**SCORES_GOOD[i % len(SCORES_GOOD)], "member_id": f"M{i}", "as_of_date": day}
            for i in range(count)]
    if bad_score is not None:
        rows[-1]["score"] = bad_score
    return frame(spark, SCORES, rows)


def recorded(ctx: RunContext, table: str, day: dt.date) -> list[dict[str, Any]]:
    return [row.asDict() for row in ctx.lake.read(RESULTS_TABLE)
            .where((F.col("run_date") == F.lit(day)) & (F.col("table_name") == table))
            .collect()]


def write_scores(ctx: RunContext, rows: DataFrame, day: dt.date = D) -> None:
    ctx.lake.replace_where(SCORES.name, rows, {"as_of_date": day}, partition_by=["as_of_date"])


def test_critical_failure_is_kept_then_raised_and_a_passing_rerun_replaces_it(
        gate_ctx: RunContext, spark: SparkSession) -> None:
    write_scores(gate_ctx, scores(spark, D, 4, bad_score=1.7))
    with pytest.raises(QualityGateError) as raised:
        validate_table(gate_ctx, SCORES.name, D)
    message = str(raised.value)
    assert raised.value.exit_code == 7
    assert "member_scores on 2026-01-05" in message
    assert f"critical expectation {SCORE_RANGE} failed" in message
    assert ("observed 1 of 4 rows unexpected (25.00%), e.g. [1.7] (expected between 0 and 1)"
            in message)
    assert "memberscore score --run-date 2026-01-05" in message
    path = Path(message.split("full result: ")[1].split(";")[0])
    assert path.is_file()
    assert path.is_relative_to(gate_ctx.paths.reports / "validation" / "member_scores"
                               / "2026-01-05")
    stored = json.loads(path.read_text())
    assert stored["success"] is False
    (failure,) = [r for r in stored["results"] if not r["success"]]
    assert failure["expectation_config"]["kwargs"]["column"] == "score"
    assert failure["expectation_config"]["severity"] == "critical"
    assert failure["result"]["partial_unexpected_list"] == [1.7]

    rows = recorded(gate_ctx, SCORES.name, D)
    assert len(rows) == SCORES_EXPECTATIONS
    assert [(r["expectation"], r["severity"], r["observed_value"], r["expected"])
            for r in rows if not r["success"]] == [
        (SCORE_RANGE, "critical", "1 of 4 rows unexpected (25.00%), e.g. [1.7]",
         "between 0 and 1")]
    assert {(r["run_id"], r["suite"], r["result_path"]) for r in rows} == \
        {("run-1", "member_scores", str(path))}
    assert [(f.name, f.dataType) for f in gate_ctx.lake.read(RESULTS_TABLE).schema] == \
        [(f.name, f.dataType) for f in VALIDATION_RESULTS_SCHEMA]

    # score and publish refuse the day, pointing at the same result
    with pytest.raises(QualityGateError) as refused:
        require_passed(gate_ctx, SCORES.name, D)
    assert SCORE_RANGE in str(refused.value) and str(path) in str(refused.value)

    # fixed data, validated again by another run: the day's rows are replaced
    second = rerun(gate_ctx, "run-2")
    write_scores(second, scores(spark, D, 4).withColumn("run_id", F.lit("score-2")))
    outcome = validate_table(second, SCORES.name, D)
    assert outcome.passed and outcome.row_count == 4
    rows = recorded(second, SCORES.name, D)
    assert len(rows) == SCORES_EXPECTATIONS
    assert {r["run_id"] for r in rows} == {"run-2"}
    assert all(r["success"] for r in rows)
    assert require_passed(second, SCORES.name, D) == []
    # the JSON history keeps both validations
    assert path.is_file() and outcome.result_path.is_file() and outcome.result_path != path


@pytest.mark.parametrize(("engine", "pandas_max_rows", "used"), [
    ("auto", 4, "pandas"),    # the day's 4 rows fit
    ("auto", 3, "spark"),     # one row too many for the driver
    ("spark", 1_000_000, "spark"),
    ("pandas", 0, "pandas"),
])
def test_the_engine_follows_conf_and_the_day_size_and_records_the_same_outcome(
        gate_ctx: RunContext, spark: SparkSession, engine: str, pandas_max_rows: int,
        used: str) -> None:
    validation = dataclasses.replace(gate_ctx.settings.validation, engine=engine,
                                     pandas_max_rows=pandas_max_rows)
    ctx = RunContext(dataclasses.replace(gate_ctx.settings, validation=validation),
                     run_id="run-1", spark=spark)
    write_scores(ctx, scores(spark, D, 4, bad_score=1.7))
    outcome = validate_table(ctx, SCORES.name, D, raise_on_critical=False)
    stored = json.loads(outcome.result_path.read_text())
    assert stored["meta"]["memberscore"]["engine"] == used
    assert stored["meta"]["batch_spec"]["batch_data"] == \
        {"spark": "SparkDataFrame", "pandas": "PandasDataFrame"}[used]
    rows = recorded(ctx, SCORES.name, D)
    assert len(rows) == SCORES_EXPECTATIONS
    assert [(r["expectation"], r["observed_value"]) for r in rows if not r["success"]] == \
        [(SCORE_RANGE, "1 of 4 rows unexpected (25.00%), e.g. [1.7]")]
    assert outcome.row_count == 4 and not outcome.passed


def test_row_count_drop_is_a_recorded_warning_that_stops_nothing(
        gate_ctx: RunContext, spark: SparkSession) -> None:
    lake = gate_ctx.lake
    lake.replace_where(SCORES.name, scores(spark, BEFORE, 5), {"as_of_date": BEFORE},
                       partition_by=["as_of_date"])
    lake.replace_where(SCORES.name, scores(spark, D, 3), {"as_of_date": D})
    assert previous_row_count(gate_ctx, SCORES, D) == 5
    assert previous_row_count(gate_ctx, SCORES, BEFORE) is None
    # the reference is the latest day of the 31 before: older days are not read
    assert previous_row_count(gate_ctx, SCORES, D + dt.timedelta(days=31)) == 3
    assert previous_row_count(gate_ctx, SCORES, D + dt.timedelta(days=32)) is None

    outcome = validate_table(gate_ctx, SCORES.name, D)  # reads D's rows from the lake

    assert outcome.passed and outcome.row_count == 3
    assert [(w.expectation, w.severity, w.observed_value) for w in outcome.warnings] == \
        [(ROW_COUNT_WINDOW, "warning", "3")]
    assert outcome.warning_lines() == [
        f"WARNING member_scores 2026-01-05: {ROW_COUNT_WINDOW} not met, observed 3 "
        "(expected between 4 and 6)"]
    assert "passed" in outcome.summary_line() and "1 warning(s)" in outcome.summary_line()
    stored = json.loads(outcome.result_path.read_text())
    assert stored["meta"]["memberscore"]["previous_row_count"] == 5
    (window,) = [r for r in stored["results"]
                 if r["expectation_config"]["severity"] == "warning"]
    assert window["expectation_config"]["kwargs"]["min_value"] == 4  # ceil(5 * 0.8)
    assert window["expectation_config"]["kwargs"]["max_value"] == 6  # floor(5 * 1.2)
    rows = recorded(gate_ctx, SCORES.name, D)
    assert [(r["severity"], r["success"]) for r in rows if not r["success"]] == \
        [("warning", False)]
    assert require_passed(gate_ctx, SCORES.name, D) == [
        f"WARNING member_scores 2026-01-05: {ROW_COUNT_WINDOW} not met, observed 3 "
        "(expected between 4 and 6) (validated by run run-1)"]


def test_stale_and_incompletely_recorded_validations_are_refused_until_validated_again(
        gate_ctx: RunContext, spark: SparkSession) -> None:
    write_scores(gate_ctx, scores(spark, D, 3))
    first = validate_table(gate_ctx, SCORES.name, D)
    assert require_passed(gate_ctx, SCORES.name, D) == []

    # the same rows written again by a retried task that reuses the run id (Databricks
    # tasks of one job run share it): only the write time differs, and that is enough
    later = scores(spark, D, 3).withColumn("scored_at", F.lit(TS + dt.timedelta(seconds=1)))
    write_scores(gate_ctx, later)
    with pytest.raises(QualityGateError) as stale:
        require_passed(gate_ctx, SCORES.name, D)
    message = str(stale.value)
    assert message.startswith("the validation of member_scores for 2026-01-05 is stale: the "
                              "day was rewritten after run run-1 validated it (")
    assert message.endswith(
        "it validated 3 rows written by run score-1 at 2026-01-05T10:00:00.000000Z, the "
        "table now holds 3 rows written by run score-1 at 2026-01-05T10:00:01.000000Z. "
        "Refusing rows that were never validated: run `memberscore validate --run-date "
        "2026-01-05`")

    # What a validation recorded before `validation_runs` existed (or one interrupted
    # between the two tables) looks like: expectations without the record of which
    # rows they saw.  It is never trusted.
    gate_ctx.lake.replace_where(RUNS_TABLE, spark.createDataFrame([], VALIDATION_RUNS_SCHEMA),
                                {"run_date": D, "table_name": SCORES.name})
    with pytest.raises(QualityGateError) as refused:
        require_passed(gate_ctx, SCORES.name, D)
    assert str(refused.value) == (
        f"member_scores for 2026-01-05: the validation by run run-1 "
        f"({first.validated_at:%Y-%m-%dT%H:%M:%SZ}) has no record in validation_runs of "
        "which rows it saw (it was made by an older memberscore, or interrupted while it "
        "was being recorded), so it cannot vouch for the rows now in the lake; refusing "
        "the day: run `memberscore validate --run-date 2026-01-05`")

    # validating again repairs both
    validate_table(rerun(gate_ctx, "run-2"), SCORES.name, D)
    assert require_passed(gate_ctx, SCORES.name, D) == []
    recorded = recorded_validation(gate_ctx, SCORES.name, D)
    assert recorded is not None and recorded.run is not None
    assert (recorded.outcome.run_id, recorded.run.run_id) == ("run-2", "run-2")
    content = day_data(later, SCORES).content
    assert content is not None and content > 0
    assert recorded.run.data == DayData(
        rows=3, run_ids=1, first_run_id="score-1", last_run_id="score-1",
        written_at_micros=to_micros(TS.replace(tzinfo=dt.UTC) + dt.timedelta(seconds=1)),
        content=content)
    assert recorded.run.table_version == gate_ctx.lake.version(SCORES.name)


def test_values_edited_after_validation_are_refused(gate_ctx: RunContext,
                                                    spark: SparkSession) -> None:
    """An edit in place keeps the row count, run ids and write time: a Delta UPDATE,
    and an overwrite of the partition with the same lineage.  Both are refused until
    the day is validated again."""
    write_scores(gate_ctx, scores(spark, D, 3))
    validate_table(gate_ctx, SCORES.name, D)
    assert require_passed(gate_ctx, SCORES.name, D) == []
    validated = recorded_validation(gate_ctx, SCORES.name, D)
    assert validated is not None and validated.run is not None

    location = gate_ctx.lake.location(SCORES.name)
    spark.sql(f"UPDATE delta.`{location}` SET score = 0.999 WHERE member_id = 'M1'")
    with pytest.raises(QualityGateError) as edited:
        require_passed(gate_ctx, SCORES.name, D)
    when = f"{validated.outcome.validated_at:%Y-%m-%dT%H:%M:%SZ}"
    assert str(edited.value) == (
        "member_scores for 2026-01-05 changed after it was validated: the values of its "
        f"3 rows are not those run run-1 validated ({when}), though their row count, run "
        "ids and write time are (an edit in place: a Delta UPDATE, MERGE or partition "
        "overwrite). Refusing rows that were never validated: run `memberscore validate "
        "--run-date 2026-01-05`")

    # the original values back, by an overwrite with the same lineage: the same rows
    write_scores(gate_ctx, scores(spark, D, 3))
    assert require_passed(gate_ctx, SCORES.name, D) == []
    # one value changed by an overwrite that keeps every lineage column
    edited_rows = scores(spark, D, 3).withColumn(
        "score", F.when(F.col("member_id") == "M2", F.lit(0.75)).otherwise(F.col("score")))
    write_scores(gate_ctx, edited_rows)
    with pytest.raises(QualityGateError, match="changed after it was validated"):
        require_passed(gate_ctx, SCORES.name, D)
    validate_table(rerun(gate_ctx, "run-2"), SCORES.name, D)
    assert require_passed(gate_ctx, SCORES.name, D) == []

    # a validation recorded before content was fingerprinted vouches for no values
    runs = gate_ctx.lake.location(RUNS_TABLE)
    spark.sql(f"UPDATE delta.`{runs}` SET data_content = NULL")
    with pytest.raises(QualityGateError, match=r"recorded without a fingerprint of the "
                       r"rows' values \(by an older memberscore\)"):
        require_passed(gate_ctx, SCORES.name, D)


def test_a_day_never_validated_is_refused(gate_ctx: RunContext) -> None:
    with pytest.raises(QualityGateError) as refused:
        require_passed(gate_ctx, FEATURES.name, D)
    message = str(refused.value)
    assert "member_features_daily for 2026-01-05 has no validation results" in message
    assert "run `memberscore validate --run-date 2026-01-05` first" in message


def test_unknown_table_has_no_suite(gate_ctx: RunContext) -> None:
    from memberscore.errors import ConfigError

    with pytest.raises(ConfigError, match="no expectation suite for table 'drift_metrics'"):
        validate_table(gate_ctx, "drift_metrics", D)


def test_bronze_row_count_is_compared_with_the_same_weekday_of_recent_weeks(
        gate_ctx: RunContext, spark: SparkSession) -> None:
    """Transactions follow the week: a quiet Sunday before a busy Monday is not the
    Monday's reference, the median of the last four Mondays is (one month-end Monday
    among them does not move it); features and scores keep the previous day."""
    def bronze_day(day: dt.date, rows: int) -> None:
        copies = [{**BRONZE_GOOD[0], "transaction_id": f"T{day:%m%d}-{i}", "landing_date": day}
                  for i in range(rows)]
        gate_ctx.lake.replace_where(BRONZE_TRANSACTIONS.name,
                                    frame(spark, BRONZE_TRANSACTIONS, copies),
                                    {"landing_date": day}, partition_by=["landing_date"])

    monday = D  # 2026-01-05
    assert monday.weekday() == 0

    def weeks_before(n: int) -> dt.date:
        return monday - dt.timedelta(weeks=n)

    bronze_day(monday - dt.timedelta(days=1), 2)  # the quiet Sunday before
    assert previous_row_count(gate_ctx, BRONZE_TRANSACTIONS, monday) is None  # no Monday yet
    bronze_day(weeks_before(1), 10)
    assert previous_row_count(gate_ctx, BRONZE_TRANSACTIONS, monday) == 10
    bronze_day(weeks_before(2), 4)
    assert previous_row_count(gate_ctx, BRONZE_TRANSACTIONS, monday) == 7  # median of 2
    bronze_day(weeks_before(3), 30)  # a month-end Monday
    bronze_day(weeks_before(4), 10)
    bronze_day(weeks_before(5), 90)  # five weeks back: not among the last four
    assert previous_row_count(gate_ctx, BRONZE_TRANSACTIONS, monday) == 10  # 4, 10, 10, 30
    assert previous_row_count(gate_ctx, BRONZE_TRANSACTIONS, weeks_before(2)) == 30  # 10, 30, 90
    # eight weeks back at most: eight weeks on, the Mondays above are out of reach
    assert previous_row_count(gate_ctx, BRONZE_TRANSACTIONS, weeks_before(-7)) == 10
    assert previous_row_count(gate_ctx, BRONZE_TRANSACTIONS, weeks_before(-8)) is None
    assert FEATURES.row_count_reference == SCORES.row_count_reference == "previous_day"


# --------------------------------------------------------------------------- the command


def land(ctx: RunContext, features_rows: list[dict[str, Any]]) -> None:
    """Write the day's bronze transactions and feature snapshot to the lake."""
    spark = ctx.spark
    ctx.lake.replace_where(BRONZE_TRANSACTIONS.name, frame(spark, BRONZE_TRANSACTIONS,
                                                           BRONZE_GOOD),
                           {"landing_date": D}, partition_by=["landing_date"])
    ctx.lake.replace_where(FEATURES.name, frame(spark, FEATURES, features_rows),
                           {"as_of_date": D}, partition_by=["as_of_date"])


def test_validate_command_reports_each_suite_and_builds_data_docs(
        ctx: RunContext, capsys: pytest.CaptureFixture[str]) -> None:
    land(ctx, FEATURES_GOOD)
    assert main(["validate", "--run-date", "2026-01-05"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == ("validate member_scores 2026-01-05: no scores for the day, "
                      "not validated")
    assert out[1].startswith("validate bronze_transactions 2026-01-05: passed, 20/20 "
                             "expectations met, 3 rows; result ")
    assert out[2].startswith("validate member_features_daily 2026-01-05: passed, 45/45 "
                             "expectations met, 3 rows; result ")
    docs = ctx.paths.reports / "data_docs" / "index.html"
    assert out[3] == f"Data Docs: {docs}"
    assert docs.is_file()
    pages = list((ctx.paths.reports / "data_docs" / "validations").rglob("*.html"))
    assert {p.relative_to(ctx.paths.reports / "data_docs" / "validations").parts[:2]
            for p in pages} == {("bronze_transactions", "2026-01-05"),
                                ("member_features_daily", "2026-01-05")}
    assert "member_features_daily" in docs.read_text()
    assert require_passed(ctx, FEATURES.name, D) == []
    assert require_passed(ctx, BRONZE_TRANSACTIONS.name, D) == []


def test_validate_command_fails_in_one_line_after_keeping_every_result(
        ctx: RunContext, capsys: pytest.CaptureFixture[str]) -> None:
    bad = [*FEATURES_GOOD[:2], {**FEATURES_GOOD[2], "tenure_days": -3}]
    land(ctx, bad)
    assert main(["validate", "--run-date", "2026-01-05"]) == 7
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.strip().splitlines()[-1:]
    assert line.startswith("memberscore: validate failed: data quality gate failed for "
                           "member_features_daily on 2026-01-05: critical expectation "
                           "expect_column_values_to_be_between(tenure_days, min_value=0) "
                           "failed, observed 1 of 3 rows unexpected (33.33%), e.g. [-3] "
                           "(expected at least 0)")
    assert "full result: " in line
    # both suites ran and were kept; only the failing day is refused
    assert require_passed(ctx, BRONZE_TRANSACTIONS.name, D) == []
    with pytest.raises(QualityGateError, match="tenure_days"):
        require_passed(ctx, FEATURES.name, D)
