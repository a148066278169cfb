"""The data quality gate on the pipeline's critical path, end to end: `memberscore
pipeline` over hand-written landing files, with the real jobs, the real lake, MLflow
registry and local Snowflake-compatible warehouse.

- A critical failure in the `features` step's own validation stops the pipeline
  before `score` and `publish`: nothing is scored, and the warehouse is never touched.
- A warning (the snapshot's row count far from the previous day's) is recorded and
  shown, and stops nothing: the day is scored and published.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

import pytest
from modeldata import feature_frame, write_features
from pipelinedata import D, land, register_champion

from memberscore.cli import main
from memberscore.context import RunContext
from memberscore.errors import QualityGateError
from memberscore.quality import require_passed
from memberscore.warehouse import open_warehouse

ROW_COUNT_WINDOW = ("expect_table_row_count_to_be_between(min_value=$min_row_count, "
                    "max_value=$max_row_count)")


@pytest.mark.slow
def test_a_critical_failure_in_features_stops_the_pipeline_before_score_and_publish(
        ctx: RunContext, home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # the members feed knows nobody on D: the snapshot is empty, a critical failure
    land(home, [("M9", "2026-03-21T08:00:00Z")])
    assert main(["pipeline", "--run-date", D.isoformat()]) == QualityGateError.exit_code
    captured = capsys.readouterr()
    summary = {line.split()[0]: line.split()[1] for line in captured.out.splitlines()[2:9]}
    assert summary == {"ingest": "ok", "features": "FAILED", "validate": "skipped",
                       "score": "skipped", "publish": "skipped", "monitor": "skipped",
                       "publish_drift_metrics": "skipped"}
    (error,) = [line for line in captured.err.splitlines() if line.startswith("memberscore: ")]
    assert error.startswith(
        "memberscore: pipeline failed: stopped at features: data quality gate failed for "
        "member_features_daily on 2026-03-20: critical expectation "
        "expect_table_row_count_to_be_between(min_value=1) failed, observed 0 (expected at "
        "least 1); full result: ")
    result = Path(error.split("full result: ")[1].split(";")[0])
    assert json.loads(result.read_text())["success"] is False

    # the features step failed after writing: the (empty) day, its build-log row and
    # the validation results are kept for inspection, and score and publish refuse
    # the day until it passes
    assert ctx.lake.exists("member_features_daily")
    assert [r["as_of_date"] for r in ctx.lake.read("feature_build_log").collect()] == [D]
    with pytest.raises(QualityGateError, match=r"critical expectation expect_table_row_count"
                                               r"_to_be_between\(min_value=1\) failed"):
        require_passed(ctx, "member_features_daily", D)
    # nothing scored, nothing published: the warehouse was never even started
    assert not ctx.lake.exists("member_scores")
    assert not ctx.paths.warehouse.exists()


@pytest.mark.slow
def test_a_warning_is_shown_and_the_pipeline_scores_and_publishes(
        ctx: RunContext, home: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    register_champion(ctx)
    # yesterday's snapshot had 5 members; today's has 3: outside [4, 6], a warning
    yesterday = D - dt.timedelta(days=1)
    write_features(ctx, feature_frame(ctx.spark, [{"member_id": f"P{i}", "as_of_date": yesterday}
                                                  for i in range(5)]))
    land(home, [("M1", "2025-01-10T09:00:00Z"), ("M2", "2025-06-01T09:00:00Z"),
                ("M3", "2026-03-01T09:00:00Z")])
    monkeypatch.setenv("MEMBERSCORE__MONITOR__WARN_ONLY", "true")  # drift is not the subject

    with caplog.at_level(logging.INFO, logger="memberscore.reporting"):
        assert main(["pipeline", "--run-date", D.isoformat()]) == 0
    out = capsys.readouterr().out.splitlines()
    steps = {line.split()[0]: line.split() for line in out[2:9]}
    assert {step: cells[1] for step, cells in steps.items()} == {
        "ingest": "ok", "features": "ok", "validate": "ok", "score": "ok", "publish": "ok",
        "monitor": "ok", "publish_drift_metrics": "ok"}
    assert steps["features"][-2:] == ["1", "warning(s)"]
    # one run report, the pipeline's (with its steps): monitor under it builds none
    built = [r.getMessage() for r in caplog.records if r.name == "memberscore.reporting"
             and r.getMessage().startswith(f"run report {D}:")]
    assert len(built) == 1, built
    (report,) = [line for line in out if line.startswith("run report: ")]
    page = Path(report.split(": ", 1)[1]).read_text(encoding="utf-8")
    assert "steps-table" in page and "not run through pipeline" not in page
    warning = (f"WARNING member_features_daily 2026-03-20: {ROW_COUNT_WINDOW} not met, "
               "observed 3 (expected between 4 and 6)")
    assert out[9] == warning  # shown once, under the summary

    # the validate step reused the features step's validation instead of repeating it:
    # one GX result for the snapshot
    results = home / "reports" / "validation" / "member_features_daily" / D.isoformat()
    assert len(list(results.rglob("*.json"))) == 1
    assert require_passed(ctx, "member_features_daily", D) == [
        f"{warning} (validated by run {_run_id(out)})"]
    assert require_passed(ctx, "member_scores", D) == []
    with open_warehouse(ctx.settings, ctx.paths.warehouse, purpose="test") as conn:
        published = conn.execute(
            "SELECT TABLE_NAME, ROW_COUNT FROM PUBLISH_LOG WHERE AS_OF_DATE = ? "
            "ORDER BY TABLE_NAME", [D], what="test read")
        scores = conn.execute("SELECT MEMBER_ID FROM MEMBER_SCORES ORDER BY MEMBER_ID",
                              what="test read")
    counts = dict(tuple(r) for r in published)
    assert (counts["MEMBER_FEATURES_DAILY"], counts["MEMBER_SCORES"]) == (3, 3)
    assert set(counts) == {"MEMBER_FEATURES_DAILY", "MEMBER_SCORES", "DRIFT_METRICS"}
    assert [r[0] for r in scores] == ["M1", "M2", "M3"]


def _run_id(out: list[str]) -> str:
    (line,) = [x for x in out if x.startswith("pipeline for 2026-03-20 finished: run_id ")]
    return line.rsplit(" ", 1)[1]


# --------------------------------------------------------------------------- reruns

# columns that say which run wrote a row and when: a rerun changes them by design
RUN_COLUMNS = {"run_id", "computed_at", "scored_at", "quarantined_at", "published_at"}
LAKE_DAYS = {"bronze_members": "landing_date", "bronze_transactions": "landing_date",
             "quarantine_transactions": "landing_date",
             "member_features_daily": "as_of_date", "member_scores": "as_of_date",
             "drift_metrics": "as_of_date"}
TARGETS = ("MEMBER_FEATURES_DAILY", "MEMBER_SCORES", "DRIFT_METRICS")


def lake_day(ctx: RunContext) -> dict[str, list[tuple[object, ...]]]:
    """D's rows of every table the pipeline writes, without the run columns, sorted."""
    from pyspark.sql import functions as F

    state = {}
    for table, day_column in LAKE_DAYS.items():
        frame = ctx.lake.read(table).where(F.col(day_column) == F.lit(D))
        frame = frame.drop(*[c for c in frame.columns if c in RUN_COLUMNS])
        state[table] = sorted((tuple(r) for r in frame.collect()), key=repr)
    return state


def warehouse_day(ctx: RunContext) -> dict[str, list[tuple[object, ...]]]:
    """D's rows of every published Snowflake table (without the run columns), and the
    PUBLISH_LOG rows of D."""
    state = {}
    with open_warehouse(ctx.settings, ctx.paths.warehouse, purpose="test") as conn:
        for target in TARGETS:
            columns = [r[0] for r in conn.execute(
                "SELECT COLUMN_NAME FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_NAME = ? "
                "ORDER BY ORDINAL_POSITION", [target], what="test columns")
                if str(r[0]).lower() not in RUN_COLUMNS]
            rows = conn.execute(f"SELECT {', '.join(columns)} FROM {target} "
                                "WHERE AS_OF_DATE = ?", [D], what="test read")
            state[target] = sorted((tuple(r) for r in rows), key=repr)
        state["PUBLISH_LOG"] = conn.execute(
            "SELECT TABLE_NAME, ROW_COUNT, CHECKSUM, RUN_ID FROM PUBLISH_LOG "
            "WHERE AS_OF_DATE = ? ORDER BY TABLE_NAME", [D], what="test read")
        state["RUN_IDS"] = conn.execute(
            "SELECT DISTINCT RUN_ID FROM MEMBER_SCORES WHERE AS_OF_DATE = ?", [D],
            what="test read")
    return state


@pytest.mark.slow
def test_running_the_pipeline_twice_leaves_identical_delta_and_snowflake(
        ctx: RunContext, home: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    register_champion(ctx)
    land(home, [("M1", "2025-01-10T09:00:00Z"), ("M2", "2025-06-01T09:00:00Z"),
                ("M3", "2026-03-01T09:00:00Z"), ("M4", "2024-11-30T09:00:00Z")])
    monkeypatch.setenv("MEMBERSCORE__MONITOR__WARN_ONLY", "true")  # drift is not the subject

    assert main(["pipeline", "--run-date", D.isoformat()]) == 0
    first_run = _run_id(capsys.readouterr().out.splitlines())
    lake_once, warehouse_once = lake_day(ctx), warehouse_day(ctx)
    assert main(["pipeline", "--run-date", D.isoformat()]) == 0
    second_run = _run_id(capsys.readouterr().out.splitlines())
    lake_twice, warehouse_twice = lake_day(ctx), warehouse_day(ctx)

    assert first_run != second_run
    assert lake_twice == lake_once
    assert [len(lake_once[t]) for t in ("bronze_transactions", "member_features_daily",
                                        "member_scores")] == [4, 4, 4]
    assert len(lake_once["drift_metrics"]) > 0
    for target in TARGETS:
        assert warehouse_twice[target] == warehouse_once[target], target
    assert len(warehouse_twice["MEMBER_SCORES"]) == 4  # replaced, never doubled
    # lineage: the day is the second run's, one PUBLISH_LOG row per table-day
    log_once, log_twice = warehouse_once["PUBLISH_LOG"], warehouse_twice["PUBLISH_LOG"]
    assert [r[:3] for r in log_twice] == [r[:3] for r in log_once]
    assert [r[0] for r in log_twice] == sorted(TARGETS)
    assert {r[3] for r in log_once} == {first_run} and {r[3] for r in log_twice} == {second_run}
    assert warehouse_twice["RUN_IDS"] == [(second_run,)]
