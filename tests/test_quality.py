"""The expectation suites, run by Great Expectations on each of its engines (Spark,
and pandas on the collected rows; `validation.engine`).

Each suite passes on hand-written good rows and fails on hand-made bad ones: every
critical expectation has a case below (a bad row, or a bad frame for the table-level
checks) and a test that it catches exactly the rows made for it.

Every test that runs a suite runs once per engine, with the same assertions: the
counts, the example values and the observed values must not depend on the engine.

To keep GX runs few (each costs a second or more on Spark), the bad rows of all
cases of a table are validated together, next to the good rows, in one frame: since
each expectation must report exactly the rows of its own cases (count and values),
a bad row that tripped any other expectation would show up as an extra unexpected
row there.  Where one defect necessarily breaks two rules (a negative 30-day count
also breaks "the 30-day window contains the 7-day one"), the case names both.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from memberscore.config import load_settings
from memberscore.feature_registry import FEATURES as REGISTRY
from memberscore.feature_registry import column_names as feature_columns
from memberscore.quality import gx
from memberscore.quality.outcome import outcomes_from_result
from memberscore.quality.suites import (
    BRONZE_TRANSACTIONS,
    FEATURES,
    SCORES,
    VALIDATED_TABLES,
    ValidatedTable,
    critical_labels,
    expectation_labels,
    label,
    load_suite,
    row_count_window,
    suite_json,
    suite_parameters,
)
from memberscore.schemas import CHANNELS, STATUSES, bronze_schema
from memberscore.tables import MEMBER_SCORES_SCHEMA

D = dt.date(2026, 1, 5)
BEFORE = dt.date(2026, 1, 4)
TS = dt.datetime(2026, 1, 5, 10, 0)
CUTOFF = dt.datetime(2026, 1, 6, 6, 0)

NOT_NULL = "expect_column_values_to_not_be_null({})"
COLUMNS_MATCH = "expect_table_columns_to_match_set(column_set=[{} values])"
NON_EMPTY = "expect_table_row_count_to_be_between(min_value=1)"
ROW_COUNT_WINDOW = ("expect_table_row_count_to_be_between(min_value=$min_row_count, "
                    "max_value=$max_row_count)")
AS_OF_IS_RUN_DATE = "expect_column_values_to_be_in_set(as_of_date, value_set=$run_date)"


def at_least_zero(column: str) -> str:
    return f"expect_column_values_to_be_between({column}, min_value=0)"


def contains(a: str, b: str) -> str:
    return f"expect_column_pair_values_a_to_be_greater_than_b({a}, {b}, or_equal=true)"


# --------------------------------------------------------------------------- cases


@dataclasses.dataclass(frozen=True)
class Case:
    """Bad rows for one critical expectation: `rows(template)` returns them (each a
    changed copy of a good row); `breaks` are the expectations that must report
    exactly these rows, with `values` the unexpected values GX must show."""

    name: str
    breaks: tuple[str, ...]
    rows: Callable[[dict[str, Any]], list[dict[str, Any]]]
    values: tuple[Any, ...] | None = None


def changed(**values: Any) -> Callable[[dict[str, Any]], list[dict[str, Any]]]:
    return lambda template: [{**template, **values}]


def twice(**values: Any) -> Callable[[dict[str, Any]], list[dict[str, Any]]]:
    return lambda template: [{**template, **values}, {**template, **values}]


def not_null_cases(schema: T.StructType, nullable: set[str]) -> list[Case]:
    return [Case(f"null {f.name}", (NOT_NULL.format(f.name),), changed(**{f.name: None}),
                 (None,))
            for f in schema.fields if f.name not in nullable]


def money(text: str) -> Decimal:
    return Decimal(text)


# ---- bronze_transactions: the day's landed transactions

BRONZE_GOOD = [
    dict(transaction_id="T1", member_id="M1", booked_at=TS, amount=money("12.50"),
         currency="GBP", channel="card", counterparty_id="C1", status="settled",
         ingested_at=TS + dt.timedelta(hours=1), landing_date=D,
         source_file="transactions/2026-01-05/part-0.csv", run_id="ingest-1"),
    dict(transaction_id="T2", member_id="M1", booked_at=TS, amount=money("-40.00"),
         currency="GBP", channel="faster_payment", counterparty_id=None, status="failed",
         ingested_at=TS + dt.timedelta(minutes=5), landing_date=D,
         source_file="transactions/2026-01-05/part-0.csv", run_id="ingest-1"),
    # booked_at == ingested_at is allowed (or_equal)
    dict(transaction_id="T3", member_id="M2", booked_at=TS, amount=money("0.01"),
         currency="GBP", channel="bacs", counterparty_id="C2", status="reversed",
         ingested_at=TS, landing_date=D,
         source_file="transactions/2026-01-05/part-1.jsonl", run_id="ingest-1"),
]

BRONZE_CASES = [
    *not_null_cases(bronze_schema("transactions"), {"counterparty_id"}),
    Case("duplicated transaction_id",
         ("expect_column_values_to_be_unique(transaction_id)",),
         twice(transaction_id="TDUP"), ("TDUP", "TDUP")),
    Case("currency EUR", ("expect_column_values_to_be_in_set(currency, value_set=[GBP])",),
         changed(currency="EUR"), ("EUR",)),
    Case("unknown channel",
         (f"expect_column_values_to_be_in_set(channel, value_set=[{', '.join(CHANNELS)}])",),
         changed(channel="cheque"), ("cheque",)),
    Case("unknown status",
         (f"expect_column_values_to_be_in_set(status, value_set=[{', '.join(STATUSES)}])",),
         changed(status="pending"), ("pending",)),
    Case("row of another landing day",
         ("expect_column_values_to_be_in_set(landing_date, value_set=$run_date)",),
         changed(landing_date=BEFORE), (BEFORE.isoformat(),)),
    Case("booked after it was ingested", (contains("ingested_at", "booked_at"),),
         changed(booked_at=TS + dt.timedelta(hours=2))),
]

# ---- member_features_daily: the day's feature snapshot

FEATURES_GOOD = [
    dict(member_id="M1", as_of_date=D, txn_count_7d=1, txn_count_30d=3, txn_count_90d=5,
         inflow_sum_30d=money("100.00"), inflow_sum_90d=money("300.00"),
         outflow_sum_30d=money("50.00"), outflow_sum_90d=money("80.00"),
         net_flow_30d=money("50.00"), max_outflow_30d=money("20.00"),
         distinct_counterparties_30d=2, failed_payment_count_30d=0,
         card_spend_share_30d=0.5, active_days_30d=2, days_since_last_txn=1,
         tenure_days=400, history_days=90, feature_cutoff_at=CUTOFF, run_id="features-1",
         computed_at=TS),
    # a member with no transactions: zeros, and nulls where the registry allows them
    dict(member_id="M2", as_of_date=D, txn_count_7d=0, txn_count_30d=0, txn_count_90d=0,
         inflow_sum_30d=money("0.00"), inflow_sum_90d=money("0.00"),
         outflow_sum_30d=money("0.00"), outflow_sum_90d=money("0.00"),
         net_flow_30d=money("0.00"), max_outflow_30d=money("0.00"),
         distinct_counterparties_30d=0, failed_payment_count_30d=0,
         card_spend_share_30d=None, active_days_30d=0, days_since_last_txn=None,
         tenure_days=0, history_days=0, feature_cutoff_at=CUTOFF, run_id="features-1",
         computed_at=TS),
    # upper boundaries: active every day, all outflow on card, equal windows
    dict(member_id="M3", as_of_date=D, txn_count_7d=30, txn_count_30d=30, txn_count_90d=30,
         inflow_sum_30d=money("0.00"), inflow_sum_90d=money("0.00"),
         outflow_sum_30d=money("900.00"), outflow_sum_90d=money("900.00"),
         net_flow_30d=money("-900.00"), max_outflow_30d=money("900.00"),
         distinct_counterparties_30d=1, failed_payment_count_30d=3,
         card_spend_share_30d=1.0, active_days_30d=30, days_since_last_txn=0,
         tenure_days=30, history_days=30, feature_cutoff_at=CUTOFF, run_id="features-1",
         computed_at=TS),
]

_FEATURE_SCHEMA = FEATURES.schema()
FEATURES_CASES = [
    *not_null_cases(_FEATURE_SCHEMA, {f.name for f in REGISTRY if f.nullable}),
    Case("duplicated member and day", ("expect_compound_columns_to_be_unique(member_id, "
                                       "as_of_date)",), twice(member_id="MDUP")),
    Case("row of another day", (AS_OF_IS_RUN_DATE,), changed(as_of_date=BEFORE),
         (BEFORE.isoformat(),)),
    Case("negative 7-day count", (at_least_zero("txn_count_7d"),), changed(txn_count_7d=-1),
         (-1,)),
    # a negative count cannot be contained in a longer window of the same member
    Case("negative 30-day count", (at_least_zero("txn_count_30d"),
                                   contains("txn_count_30d", "txn_count_7d"),
                                   contains("txn_count_30d", "active_days_30d")),
         changed(txn_count_30d=-1)),
    Case("negative 90-day count", (at_least_zero("txn_count_90d"),
                                   contains("txn_count_90d", "txn_count_30d")),
         changed(txn_count_90d=-1)),
    Case("negative 30-day inflow", (at_least_zero("inflow_sum_30d"),),
         changed(inflow_sum_30d=money("-0.01"))),
    Case("negative 90-day inflow", (at_least_zero("inflow_sum_90d"),
                                    contains("inflow_sum_90d", "inflow_sum_30d")),
         changed(inflow_sum_90d=money("-1.00"))),
    Case("negative 30-day outflow", (at_least_zero("outflow_sum_30d"),
                                     contains("outflow_sum_30d", "max_outflow_30d")),
         changed(outflow_sum_30d=money("-5.00"))),
    Case("negative 90-day outflow", (at_least_zero("outflow_sum_90d"),
                                     contains("outflow_sum_90d", "outflow_sum_30d")),
         changed(outflow_sum_90d=money("-5.00"))),
    Case("negative largest outflow", (at_least_zero("max_outflow_30d"),),
         changed(max_outflow_30d=money("-20.00"))),
    Case("negative counterparties", (at_least_zero("distinct_counterparties_30d"),),
         changed(distinct_counterparties_30d=-2), (-2,)),
    Case("negative failed payments", (at_least_zero("failed_payment_count_30d"),),
         changed(failed_payment_count_30d=-1), (-1,)),
    Case("negative days since last", (at_least_zero("days_since_last_txn"),),
         changed(days_since_last_txn=-1), (-1,)),
    Case("negative tenure", (at_least_zero("tenure_days"),), changed(tenure_days=-3), (-3,)),
    Case("history beyond the longest window",
         ("expect_column_values_to_be_between(history_days, min_value=0, max_value=90)",),
         changed(history_days=91), (91,)),
    Case("31 active days in 30",
         ("expect_column_values_to_be_between(active_days_30d, min_value=0, max_value=30)",),
         changed(active_days_30d=31, txn_count_30d=40, txn_count_90d=40), (31,)),
    Case("card share above 1",
         ("expect_column_values_to_be_between(card_spend_share_30d, min_value=0, "
          "max_value=1)",), changed(card_spend_share_30d=1.5), (1.5,)),
    Case("7 days hold more than 30", (contains("txn_count_30d", "txn_count_7d"),),
         changed(txn_count_7d=4)),
    Case("30 days hold more than 90", (contains("txn_count_90d", "txn_count_30d"),),
         changed(txn_count_90d=2)),
    Case("inflow 30 > inflow 90", (contains("inflow_sum_90d", "inflow_sum_30d"),),
         changed(inflow_sum_90d=money("99.99"))),
    Case("outflow 30 > outflow 90", (contains("outflow_sum_90d", "outflow_sum_30d"),),
         changed(outflow_sum_90d=money("40.00"))),
    Case("largest outflow above the sum", (contains("outflow_sum_30d", "max_outflow_30d"),),
         changed(max_outflow_30d=money("60.00"))),
    Case("more active days than transactions", (contains("txn_count_30d", "active_days_30d"),),
         changed(active_days_30d=4)),
]

# ---- member_scores: the day's scores

SCORES_GOOD = [
    dict(member_id="M1", as_of_date=D, model_name="member_churn", model_version="3",
         score=0.0, score_band="low", run_id="score-1", scored_at=TS),
    dict(member_id="M2", as_of_date=D, model_name="member_churn", model_version="3",
         score=0.5, score_band="high", run_id="score-1", scored_at=TS),
    dict(member_id="M3", as_of_date=D, model_name="member_churn", model_version="3",
         score=1.0, score_band="high", run_id="score-1", scored_at=TS),
]

SCORES_CASES = [
    *not_null_cases(MEMBER_SCORES_SCHEMA, set()),
    Case("duplicated member, day and model",
         ("expect_compound_columns_to_be_unique(member_id, as_of_date, model_name)",),
         twice(member_id="MDUP")),
    Case("row of another day", (AS_OF_IS_RUN_DATE,), changed(as_of_date=BEFORE),
         (BEFORE.isoformat(),)),
    Case("score above 1",
         ("expect_column_values_to_be_between(score, min_value=0, max_value=1)",),
         changed(score=1.01), (1.01,)),
    Case("unknown band", ("expect_column_values_to_be_in_set(score_band, "
                          "value_set=$score_bands)",), changed(score_band="extreme"),
         ("extreme",)),
    Case("unknown model", ("expect_column_values_to_be_in_set(model_name, "
                           "value_set=$model_names)",), changed(model_name="other_model"),
         ("other_model",)),
]

GOOD: dict[str, list[dict[str, Any]]] = {
    BRONZE_TRANSACTIONS.name: BRONZE_GOOD, FEATURES.name: FEATURES_GOOD,
    SCORES.name: SCORES_GOOD,
}
CASES: dict[str, list[Case]] = {
    BRONZE_TRANSACTIONS.name: BRONZE_CASES, FEATURES.name: FEATURES_CASES,
    SCORES.name: SCORES_CASES,
}
# Table-level checks have a whole bad frame each (see the tests below).
FRAME_LEVEL = {NON_EMPTY, "expect_table_columns_to_match_set"}


# --------------------------------------------------------------------------- helpers


def nullable(schema: T.StructType) -> T.StructType:
    """Lake tables hold nullable columns; the not-null rules are the suite's job."""
    return T.StructType([T.StructField(f.name, f.dataType, True) for f in schema.fields])


def frame(spark: SparkSession, spec: ValidatedTable, rows: list[dict[str, Any]]) -> DataFrame:
    schema = spec.schema()
    return spark.createDataFrame([tuple(r[name] for name in schema.names) for r in rows],
                                 nullable(schema))


def case_rows(table: str) -> list[dict[str, Any]]:
    """One changed copy of the first good row per case row, each with its own key."""
    template = GOOD[table][0]
    key = VALIDATED_TABLES[table].keys[0]
    rows = []
    for number, case in enumerate(CASES[table]):
        for row in case.rows(template):
            fresh = {**row}
            if template[key] == row[key]:  # keep each case's rows apart from the others
                fresh[key] = f"B{number:02d}"
            rows.append(fresh)
    return rows


PARAMETERS = suite_parameters(load_settings("local"), D, None)


def validate(workspace: gx.GxWorkspace, table: str, df: DataFrame, engine: str,
             parameters: dict[str, Any] = PARAMETERS) -> dict[str, Any]:
    """label -> (success, result dict) for every expectation of the table's suite."""
    result = gx.run_suite(workspace, table, df, load_suite(table), parameters, engine=engine)
    labels = expectation_labels(table)
    by_label = {labels[str(r.expectation_config.id)]: r for r in result.results}
    assert len(by_label) == len(labels)
    return by_label


def failed(results: dict[str, Any]) -> set[str]:
    return {name for name, r in results.items() if not r.success}


@pytest.fixture(scope="module", params=gx.ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> gx.GxWorkspace:
    return gx.gx_workspace(tmp_path_factory.mktemp("reports"))


@pytest.fixture(scope="module")
def good_frames(spark: SparkSession) -> dict[str, DataFrame]:
    return {table: frame(spark, spec, GOOD[table]) for table, spec in VALIDATED_TABLES.items()}


@pytest.fixture(scope="module")
def good_results(workspace: gx.GxWorkspace, good_frames: dict[str, DataFrame],
                 engine: str) -> dict[str, Any]:
    """Each table's good rows, validated once per engine: GX's suite result."""
    return {table: gx.run_suite(workspace, table, df, load_suite(table), PARAMETERS,
                                engine=engine)
            for table, df in good_frames.items()}


@pytest.fixture(scope="module")
def bad_results(spark: SparkSession, workspace: gx.GxWorkspace,
                engine: str) -> dict[str, dict[str, Any]]:
    """Each table's good rows plus every case's bad rows, plus an unexpected column,
    validated once per engine."""
    out = {}
    for table, spec in VALIDATED_TABLES.items():
        rows = GOOD[table] + case_rows(table)
        df = frame(spark, spec, rows).withColumn("unexpected_column", F.lit(1))
        out[table] = validate(workspace, table, df, engine)
    return out


# --------------------------------------------------------------------------- suites as files


@pytest.mark.parametrize("table", sorted(VALIDATED_TABLES))
def test_suite_file_is_gx_json_named_after_its_table(table: str) -> None:
    data = suite_json(table)
    assert data["name"] == table
    assert {e["severity"] for e in data["expectations"]} <= {"critical", "warning", "info"}
    assert len(load_suite(table).expectations) == len(data["expectations"])


@pytest.mark.parametrize("table", sorted(VALIDATED_TABLES))
def test_suite_columns_and_not_nulls_follow_the_declared_schema(table: str) -> None:
    spec = VALIDATED_TABLES[table]
    schema = spec.schema()
    data = suite_json(table)
    (columns,) = [e for e in data["expectations"]
                  if e["type"] == "expect_table_columns_to_match_set"]
    assert columns["kwargs"]["column_set"] == schema.names
    not_null = {e["kwargs"]["column"] for e in data["expectations"]
                if e["type"] == "expect_column_values_to_not_be_null"}
    declared_required = {f.name for f in schema.fields if not f.nullable}
    if table == FEATURES.name:
        declared_required = {f.name for f in REGISTRY if not f.nullable}
        assert schema.names == feature_columns()
    assert not_null == declared_required


@pytest.mark.parametrize("table", sorted(VALIDATED_TABLES))
def test_keys_are_checked_unique_and_the_day_is_the_run_date(table: str) -> None:
    spec = VALIDATED_TABLES[table]
    labels = set(expectation_labels(table).values())
    if len(spec.keys) == 1:
        assert f"expect_column_values_to_be_unique({spec.keys[0]})" in labels
    else:
        assert f"expect_compound_columns_to_be_unique({', '.join(spec.keys)})" in labels
    assert (f"expect_column_values_to_be_in_set({spec.date_column}, value_set=$run_date)"
            in labels)
    assert ROW_COUNT_WINDOW in labels and NON_EMPTY in labels


@pytest.mark.parametrize("table", sorted(VALIDATED_TABLES))
def test_only_the_row_count_window_is_a_warning(table: str) -> None:
    severities = {e["severity"] for e in suite_json(table)["expectations"]}
    warnings = [label(e["type"], e["kwargs"]) for e in suite_json(table)["expectations"]
                if e["severity"] != "critical"]
    assert warnings == [ROW_COUNT_WINDOW]
    assert severities == {"critical", "warning"}


@pytest.mark.parametrize("table", sorted(VALIDATED_TABLES))
def test_every_critical_expectation_has_a_bad_case(table: str) -> None:
    covered = {name for case in CASES[table] for name in case.breaks}
    frame_level = {c for c in critical_labels(table)
                   if c == NON_EMPTY or c.startswith("expect_table_columns_to_match_set")}
    assert set(critical_labels(table)) - frame_level == covered
    assert len(frame_level) == 2


def test_labels_show_columns_arguments_and_parameters() -> None:
    assert label("expect_column_values_to_be_between",
                 {"column": "score", "min_value": 0.0, "max_value": 1.0}) == \
        "expect_column_values_to_be_between(score, min_value=0, max_value=1)"
    assert label("expect_column_pair_values_a_to_be_greater_than_b",
                 {"column_A": "a", "column_B": "b", "or_equal": True,
                  "ignore_row_if": "either_value_is_missing"}) == \
        "expect_column_pair_values_a_to_be_greater_than_b(a, b, or_equal=true)"
    assert label("expect_column_values_to_be_in_set",
                 {"column": "d", "value_set": {"$PARAMETER": "run_date"}}) == \
        "expect_column_values_to_be_in_set(d, value_set=$run_date)"
    assert label("expect_table_columns_to_match_set",
                 {"column_set": list("abcdefghi")}) == \
        "expect_table_columns_to_match_set(column_set=[9 values])"


@pytest.mark.parametrize(("previous", "tolerance", "window"), [
    (None, 0.2, (None, None)),
    (100, 0.2, (80, 120)),        # both ends included, no float drift (100 * 0.8)
    (5, 0.2, (4, 6)),
    (3, 0.2, (3, 3)),             # 2.4 -> 3, 3.6 -> 3
    (0, 0.2, (0, 0)),
    (10, 1.5, (0, 25)),           # never below zero
])
def test_row_count_window(previous: int | None, tolerance: float,
                          window: tuple[int | None, int | None]) -> None:
    assert row_count_window(previous, tolerance) == window


def test_suite_parameters_come_from_settings_and_the_run() -> None:
    settings = load_settings("local")
    params = suite_parameters(settings, D, 50)
    assert params == {
        "run_date": [D],
        "min_row_count": 40,
        "max_row_count": 60,
        "score_bands": ["low", "medium", "high"],
        "model_names": ["member_churn"],
    }


# --------------------------------------------------------------------------- suites on each engine


@pytest.mark.parametrize("table", sorted(VALIDATED_TABLES))
def test_suite_passes_on_good_rows(good_results: dict[str, Any],
                                   good_frames: dict[str, DataFrame], engine: str,
                                   table: str) -> None:
    result = good_results[table]
    labels = expectation_labels(table)
    assert [labels[str(r.expectation_config.id)] for r in result.results if not r.success] == []
    assert len(result.results) == len(labels)
    (non_empty,) = [r for r in result.results
                    if labels[str(r.expectation_config.id)] == NON_EMPTY]
    assert non_empty.result["observed_value"] == len(GOOD[table])
    # computed by the engine asked for; a frame cached for Spark is released again
    assert result.meta["batch_spec"]["batch_data"] == \
        {"spark": "SparkDataFrame", "pandas": "PandasDataFrame"}[engine]
    assert not good_frames[table].is_cached


def _case_params() -> list[Any]:
    return [pytest.param(table, case, id=f"{table}: {case.name}")
            for table in sorted(CASES) for case in CASES[table]]


@pytest.mark.parametrize(("table", "case"), _case_params())
def test_bad_rows_fail_exactly_their_expectations(bad_results: dict[str, dict[str, Any]],
                                                  table: str, case: Case) -> None:
    results = bad_results[table]
    for name in case.breaks:
        assert name in results, f"{name} is not in the {table} suite"
        result = results[name]
        assert not result.success
        # The rows of every case that names this expectation, and no other row.
        expected = sum(len(c.rows(GOOD[table][0])) for c in CASES[table] if name in c.breaks)
        assert result.result["unexpected_count"] == expected
        assert result.result["element_count"] == len(GOOD[table]) + len(case_rows(table))
        if case.values is not None and len(case.breaks) == 1:
            assert sorted(map(str, result.result["partial_unexpected_list"])) == \
                sorted(map(str, case.values))


@pytest.mark.parametrize("table", sorted(VALIDATED_TABLES))
def test_every_critical_expectation_fails_on_the_bad_rows_and_nothing_else(
        bad_results: dict[str, dict[str, Any]], table: str) -> None:
    expected = set(critical_labels(table)) - {NON_EMPTY}
    assert failed(bad_results[table]) == expected
    (columns,) = [r for name, r in bad_results[table].items()
                  if name.startswith("expect_table_columns_to_match_set")]
    assert columns.result["details"]["mismatched"] == {"unexpected": ["unexpected_column"]}


@pytest.mark.parametrize("table", sorted(VALIDATED_TABLES))
def test_empty_day_fails_only_the_row_count(spark: SparkSession, workspace: gx.GxWorkspace,
                                            engine: str, table: str) -> None:
    results = validate(workspace, table, frame(spark, VALIDATED_TABLES[table], []), engine)
    assert failed(results) == {NON_EMPTY}
    assert results[NON_EMPTY].result["observed_value"] == 0


def test_result_is_kept_as_gx_json_in_the_documented_layout(
        workspace: gx.GxWorkspace, good_results: dict[str, Any]) -> None:
    at = dt.datetime(2026, 1, 6, 7, 30, tzinfo=dt.UTC)
    _, path = gx.store_result(workspace, good_results[SCORES.name], SCORES.name, D,
                              "run/with odd:chars", at, {"run_id": "x"})
    assert path == (workspace.results_dir / "member_scores" / "2026-01-05"
                    / "20260106T073000.000000Z" / "run_with_odd_chars.json")
    stored = json.loads(Path(path).read_text())
    assert stored["success"] is True
    assert stored["suite_name"] == "member_scores"
    assert len(stored["results"]) == len(load_suite(SCORES.name).expectations)
    assert stored["meta"]["memberscore"] == {"run_id": "x"}
    assert stored["meta"]["run_id"]["run_name"] == "2026-01-05"


def test_outcomes_read_gx_results_in_suite_order_with_observed_values(
        bad_results: dict[str, dict[str, Any]]) -> None:
    table = SCORES.name
    results = SimpleNamespace(results=list(reversed(bad_results[table].values())))
    outcomes = outcomes_from_result(results, expectation_labels(table))  # type: ignore[arg-type]
    assert [o.expectation for o in outcomes] == list(expectation_labels(table).values())
    by_label = {o.expectation: o for o in outcomes}
    total = len(SCORES_GOOD) + len(case_rows(table))
    score = by_label["expect_column_values_to_be_between(score, min_value=0, max_value=1)"]
    assert (score.severity, score.success, score.columns) == ("critical", False, "score")
    assert (score.unexpected_count, score.element_count) == (1, total)
    assert score.observed_value == \
        f"1 of {total} rows unexpected ({100 / total:.2f}%), e.g. [1.01]"
    assert score.expected == "between 0 and 1"
    assert score.observed_text == f"observed {score.observed_value} (expected between 0 and 1)"
    assert score.is_critical_failure
    unique = by_label["expect_compound_columns_to_be_unique(member_id, as_of_date, model_name)"]
    assert unique.columns == "member_id,as_of_date,model_name"
    assert unique.unexpected_count == 2
    (columns,) = [o for o in outcomes if o.expectation_type ==
                  "expect_table_columns_to_match_set"]
    assert columns.columns is None
    assert columns.observed_value is not None
    assert columns.observed_value.endswith('mismatched {"unexpected": ["unexpected_column"]}')
    window = by_label[ROW_COUNT_WINDOW]
    assert (window.success, window.severity, window.observed_value, window.expected) == \
        (True, "warning", str(total), None)  # no previous snapshot: no bounds


def test_a_nan_score_fails_the_suite_critically_on_every_engine(
        spark: SparkSession, workspace: gx.GxWorkspace, engine: str) -> None:
    """NaN is not null to Spark but is to pandas, so the two engines name different
    expectations for a NaN score; each of them is critical, so the day fails on both."""
    nan = {**SCORES_GOOD[0], "member_id": "MNAN", "score": float("nan")}
    results = validate(workspace, SCORES.name,
                       frame(spark, SCORES, [*SCORES_GOOD, nan]), engine)
    expected = {
        "spark": "expect_column_values_to_be_between(score, min_value=0, max_value=1)",
        "pandas": NOT_NULL.format("score"),
    }[engine]
    assert failed(results) == {expected}
    assert expected in critical_labels(SCORES.name)
    assert results[expected].result["unexpected_count"] == 1
