"""Publishing lake days to Snowflake (the local fakesnow warehouse, over HTTP, with the
real snowflake connector): idempotent, atomic, reconciled, typed, and safe with secrets."""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
from pyspark.sql import types as T
from qualitydata import record_passed

from memberscore.cli import main
from memberscore.config import load_settings
from memberscore.context import JobResult, RunContext
from memberscore.errors import (
    ConfigError,
    InputError,
    PublishRunningError,
    QualityGateError,
    TableError,
    WarehouseError,
)
from memberscore.local.faults import InjectedFaultError
from memberscore.quality import VALIDATED_TABLES, validate_table
from memberscore.runner import execute
from memberscore.tables import DRIFT_METRICS_SCHEMA, MEMBER_SCORES_SCHEMA
from memberscore.warehouse import open_warehouse, publish_day
from memberscore.warehouse.checksum import DayChecksum, spark_aggregates, sql_checksum_query
from memberscore.warehouse.connection import WarehouseConnection
from memberscore.warehouse.identifiers import identifier, run_id_path_part
from memberscore.warehouse.publisher import FaultPoint
from memberscore.warehouse.typemap import (
    ExistingColumn,
    columns_for,
    plan_schema,
    snowflake_type,
)

DAY1 = dt.date(2026, 11, 19)
DAY2 = dt.date(2026, 11, 20)
UTC = dt.UTC
SCORED_AT = dt.datetime(2026, 11, 21, 4, 31, 7, 123456, tzinfo=UTC)

# A few columns of the member_features_daily contract, one of each published type.
FEATURES_SCHEMA = T.StructType([
    T.StructField("member_id", T.StringType(), False),
    T.StructField("as_of_date", T.DateType(), False),
    T.StructField("txn_count_30d", T.LongType(), False),
    T.StructField("inflow_sum_30d", T.DecimalType(18, 2), False),
    T.StructField("card_spend_share_30d", T.DoubleType(), True),
    T.StructField("days_since_last_txn", T.IntegerType(), True),
    T.StructField("last_booked_at", T.TimestampType(), True),
    T.StructField("region", T.StringType(), True),
    T.StructField("run_id", T.StringType(), False),
])


def feature_rows(day: dt.date, run: str = "r1") -> list[tuple]:
    return [
        ("m1", day, 12, Decimal("1234.56"), 0.25, 3,
         dt.datetime(2026, 11, 18, 23, 59, 59, 999999, tzinfo=UTC), "Zoë's Ltd, Wales", run),
        ("m2", day, 0, Decimal("0.00"), None, None, None, None, run),
        ("m3", day, 2**62, Decimal("-9999999999999999.99"), 1.0, 0,
         dt.datetime(2026, 1, 1, 0, 0, tzinfo=UTC), "", run),
    ]


def score_rows(day: dt.date, run: str = "r1", members: int = 4) -> list[tuple]:
    return [(f"m{i}", day, "member_churn", "3", round(i / 10, 2), "low", run, SCORED_AT)
            for i in range(1, members + 1)]


def write(ctx: RunContext, table: str, schema: T.StructType, rows: list[tuple],
          day: dt.date, *, validated: bool = True) -> None:
    """Replace the day's rows of `table`; for a table with a suite, also record that
    these rows passed it (publish refuses a day that did not, see
    tests/qualitydata.py), unless `validated` is False."""
    frame = ctx.spark.createDataFrame(rows, schema)
    ctx.lake.replace_where(table, frame, {"as_of_date": day}, ["as_of_date"])
    if validated and table in VALIDATED_TABLES:
        record_passed(ctx, table, day)


def publish(ctx: RunContext, day: dt.date, *tables: str) -> JobResult:
    args = argparse.Namespace(run_date=day, table=list(tables) or None)
    return execute(ctx, "publish", args)



def scores_in(conn: WarehouseConnection, day: dt.date) -> list[tuple]:
    return conn.execute(
        "SELECT MEMBER_ID, AS_OF_DATE, MODEL_NAME, SCORE, RUN_ID FROM MEMBER_SCORES "
        "WHERE AS_OF_DATE = ? ORDER BY MEMBER_ID", [day], what="test read")


def log_rows(conn: WarehouseConnection) -> list[tuple]:
    return conn.execute(
        "SELECT TABLE_NAME, AS_OF_DATE, RUN_ID, ROW_COUNT, CHECKSUM FROM PUBLISH_LOG "
        "ORDER BY TABLE_NAME, AS_OF_DATE", what="test read")


def expected_checksum(keys: list[tuple[str, ...]]) -> DayChecksum:
    """The reference computation, in plain Python, of what both engines must agree on."""
    total = sum(int(hashlib.md5("\x1f".join(k).encode()).hexdigest()[-14:], 16) for k in keys)
    return DayChecksum(len(keys), total)


# ------------------------------------------------------------------ unit: pure pieces


def test_type_mapping_keeps_meaning() -> None:
    assert snowflake_type(T.DecimalType(18, 2), "x").ddl == "NUMBER(18, 2)"
    assert snowflake_type(T.LongType(), "x").ddl == "NUMBER(19, 0)"
    assert snowflake_type(T.IntegerType(), "x").ddl == "NUMBER(10, 0)"
    assert snowflake_type(T.DoubleType(), "x").ddl == "FLOAT"
    assert snowflake_type(T.DateType(), "x").ddl == "DATE"
    assert snowflake_type(T.TimestampType(), "x").ddl == "TIMESTAMP_TZ"
    assert snowflake_type(T.TimestampNTZType(), "x").ddl == "TIMESTAMP_NTZ"
    assert snowflake_type(T.StringType(), "x").ddl == "VARCHAR"
    assert snowflake_type(T.BooleanType(), "x").ddl == "BOOLEAN"
    with pytest.raises(WarehouseError, match=r"column 'tags' of t has type array<string>"):
        snowflake_type(T.ArrayType(T.StringType()), "column 'tags' of t")


def test_schema_plan_adds_new_columns_and_refuses_changed_types() -> None:
    columns = columns_for(T.StructType([
        T.StructField("member_id", T.StringType()),
        T.StructField("amount", T.DecimalType(18, 2)),
        T.StructField("new_feature", T.DoubleType()),
    ]), "t")
    existing = {"MEMBER_ID": ExistingColumn("MEMBER_ID", "TEXT", None, None),
                "AMOUNT": ExistingColumn("AMOUNT", "NUMBER", 18, 2)}
    assert [c.name for c in plan_schema("T", columns, existing).to_add] == ["NEW_FEATURE"]
    changed = {**existing, "AMOUNT": ExistingColumn("AMOUNT", "FLOAT", None, None)}
    with pytest.raises(WarehouseError, match=r"AMOUNT is FLOAT in Snowflake but NUMBER\(18, 2\)"):
        plan_schema("T", columns, changed)
    extra = {**existing, "OLD": ExistingColumn("OLD", "TEXT", None, None)}
    with pytest.raises(WarehouseError, match="Snowflake has columns the lake table lacks: OLD"):
        plan_schema("T", columns, extra)


def test_identifiers_are_validated() -> None:
    assert identifier("member_scores", "table") == "MEMBER_SCORES"
    for bad in ("member scores", "x;drop table y", "1abc", 'a"b', "", "a-b"):
        with pytest.raises(WarehouseError, match="invalid Snowflake identifier"):
            identifier(bad, "table")
    assert run_id_path_part("20261121T101500Z-3fa9c1") == "20261121T101500Z-3fa9c1"
    with pytest.raises(WarehouseError, match="cannot name a stage path"):
        run_id_path_part("x'/../y")
    with pytest.raises(WarehouseError, match=r"column 'bad name' of t"):
        columns_for(T.StructType([T.StructField("bad name", T.StringType())]), "t")
    with pytest.raises(WarehouseError, match=r"'order' \(column 'order' of t\) is a reserved"):
        columns_for(T.StructType([T.StructField("order", T.StringType())]), "t")


def test_conf_identifiers_are_validated_at_load_before_connecting(
        ctx: RunContext, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMBERSCORE__SNOWFLAKE__SCHEMA", "MEMBER_SCORING; DROP TABLE X")
    with pytest.raises(ConfigError, match=r"conf key 'snowflake\.schema' must be a Snowflake "
                                          r"identifier"):
        load_settings("local")
    assert not (ctx.paths.warehouse / "server.json").exists()


def test_spark_checksum_matches_the_reference(spark) -> None:  # type: ignore[no-untyped-def]
    frame = spark.createDataFrame(
        [("m1", DAY1), ("m2", DAY1), ("m10", DAY1)],
        "member_id string, as_of_date date")
    row = frame.agg(*spark_aggregates(["member_id", "as_of_date"])).first()
    reference = expected_checksum([("m1", "2026-11-19"), ("m2", "2026-11-19"),
                                   ("m10", "2026-11-19")])
    assert DayChecksum(row["rows"], int(row["keysum"])) == reference
    empty = spark.createDataFrame([], "member_id string, as_of_date date")
    row = empty.agg(*spark_aggregates(["member_id", "as_of_date"])).first()
    assert (row["rows"], int(row["keysum"])) == (0, 0)


def test_snowflake_checksum_matches_the_reference(warehouse: WarehouseConnection) -> None:
    warehouse.execute("CREATE TABLE K (MEMBER_ID VARCHAR, AS_OF_DATE DATE, N NUMBER(10, 0))",
                      what="t")
    for member in ("m1", "m2", "m10"):
        warehouse.execute("INSERT INTO K VALUES (?, ?, 1)", [member, DAY1], what="t")
    warehouse.execute("INSERT INTO K VALUES (?, ?, 1)", ["other-day", DAY2], what="t")
    rows = warehouse.execute(sql_checksum_query("K", ["MEMBER_ID", "AS_OF_DATE"], "AS_OF_DATE"),
                             [DAY1], what="t")
    reference = expected_checksum([("m1", "2026-11-19"), ("m2", "2026-11-19"),
                                   ("m10", "2026-11-19")])
    assert (rows[0][0], int(rows[0][1])) == (reference.rows, reference.keysum)


# ------------------------------------------------------------------ publishing


def test_publish_twice_gives_the_same_rows_and_days_sit_side_by_side(
        ctx: RunContext, warehouse: WarehouseConnection) -> None:
    write(ctx, "member_scores", MEMBER_SCORES_SCHEMA, score_rows(DAY1), DAY1)
    first = publish(ctx, DAY1, "member_scores")
    after_first = scores_in(warehouse, DAY1)
    second = publish(ctx, DAY1, "member_scores")
    after_second = scores_in(warehouse, DAY1)

    assert after_first == after_second == [
        ("m1", DAY1, "member_churn", 0.1, "r1"), ("m2", DAY1, "member_churn", 0.2, "r1"),
        ("m3", DAY1, "member_churn", 0.3, "r1"), ("m4", DAY1, "member_churn", 0.4, "r1"),
    ]
    assert first.rows == second.rows == {"member_scores": 4}
    assert first.details["member_scores"]["replaced_rows"] == 0
    assert second.details["member_scores"]["replaced_rows"] == 4
    # the statements docs/publish.md lists: 15 for a day of an existing table; the first
    # publish also creates the table and PUBLISH_LOG; and 3 for the event's outbox (its
    # DDL, the PUBLISH_LOG read that finds the day incomplete: no features; an empty claim)
    assert (first.details["statements"], second.details["statements"]) == (20, 18)
    reference = expected_checksum([(f"m{i}", "2026-11-19", "member_churn") for i in range(1, 5)])
    assert first.details["member_scores"]["checksum"] == reference.text
    # One PUBLISH_LOG row per table and day, from the latest run.
    assert log_rows(warehouse) == [("MEMBER_SCORES", DAY1, "test-run", 4, reference.text)]
    # Staging dropped; nothing left in the stage or the spool.
    tables = {r[0] for r in warehouse.execute(
        "SELECT TABLE_NAME FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA = ?",
        ["MEMBER_SCORING"], what="t")}
    assert tables == {"MEMBER_SCORES", "PUBLISH_LOG", "EVENT_OUTBOX"}
    assert warehouse.execute("LIST @MEMBERSCORE_PUBLISH", what="t") == []
    assert list((ctx.paths.warehouse / "spool").iterdir()) == []

    # A second day next to it; then day 1 is recomputed with fewer members and
    # republished: day 2 is untouched.
    write(ctx, "member_scores", MEMBER_SCORES_SCHEMA, score_rows(DAY2, "r2", 2), DAY2)
    publish(ctx, DAY2, "member_scores")
    write(ctx, "member_scores", MEMBER_SCORES_SCHEMA, score_rows(DAY1, "r3", 1), DAY1)
    publish(ctx, DAY1, "member_scores")
    assert scores_in(warehouse, DAY1) == [("m1", DAY1, "member_churn", 0.1, "r3")]
    assert scores_in(warehouse, DAY2) == [("m1", DAY2, "member_churn", 0.1, "r2"),
                                          ("m2", DAY2, "member_churn", 0.2, "r2")]
    assert [(t, d, n) for t, d, _, n, _ in log_rows(warehouse)] == [
        ("MEMBER_SCORES", DAY1, 1), ("MEMBER_SCORES", DAY2, 2)]


def test_all_published_tables_by_default_and_types_round_trip(
        ctx: RunContext, warehouse: WarehouseConnection) -> None:
    write(ctx, "member_features_daily", FEATURES_SCHEMA, feature_rows(DAY1), DAY1)
    write(ctx, "member_scores", MEMBER_SCORES_SCHEMA, score_rows(DAY1), DAY1)
    drift = [(DAY1, "member_churn", "txn_count_30d", "psi", 0.02, 0.1, "ok", "r1"),
             (DAY1, "member_churn", "inflow_sum_30d", "psi", None, 0.1, "ok", "r1")]
    write(ctx, "drift_metrics", DRIFT_METRICS_SCHEMA, drift, DAY1)
    result = publish(ctx, DAY1)
    assert result.rows == {"member_features_daily": 3, "member_scores": 4, "drift_metrics": 2}
    assert [(t, n) for t, _, _, n, _ in log_rows(warehouse)] == [
        ("DRIFT_METRICS", 2), ("MEMBER_FEATURES_DAILY", 3), ("MEMBER_SCORES", 4)]
    assert warehouse.execute(
        "SELECT COLUMN_NAME, VALUE FROM DRIFT_METRICS ORDER BY COLUMN_NAME", what="t") == [
        ("inflow_sum_30d", None), ("txn_count_30d", 0.02)]

    # Types: decimals stay decimals, dates dates, timestamps UTC instants, nulls nulls.
    columns = warehouse.execute(
        "SELECT COLUMN_NAME, DATA_TYPE, NUMERIC_PRECISION, NUMERIC_SCALE, IS_NULLABLE "
        "FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_NAME = 'MEMBER_FEATURES_DAILY' "
        "ORDER BY ORDINAL_POSITION", what="t")
    assert columns == [
        ("MEMBER_ID", "TEXT", None, None, "NO"),
        ("AS_OF_DATE", "DATE", None, None, "NO"),
        ("TXN_COUNT_30D", "NUMBER", 19, 0, "YES"),
        ("INFLOW_SUM_30D", "NUMBER", 18, 2, "YES"),
        ("CARD_SPEND_SHARE_30D", "FLOAT", None, None, "YES"),
        ("DAYS_SINCE_LAST_TXN", "NUMBER", 10, 0, "YES"),
        ("LAST_BOOKED_AT", "TIMESTAMP_TZ", None, None, "YES"),
        ("REGION", "TEXT", None, None, "YES"),
        ("RUN_ID", "TEXT", None, None, "YES"),
    ]
    rows = warehouse.execute("SELECT * FROM MEMBER_FEATURES_DAILY ORDER BY MEMBER_ID",
                             what="t")
    assert rows == feature_rows(DAY1)
    assert isinstance(rows[0][3], Decimal) and rows[0][6].utcoffset() == dt.timedelta(0)
    # Nulls are nulls in Snowflake itself, not only on the way back.
    nulls = warehouse.execute(
        "SELECT COUNT(*) FROM MEMBER_FEATURES_DAILY WHERE LAST_BOOKED_AT IS NULL "
        "AND CARD_SPEND_SHARE_30D IS NULL AND REGION IS NULL AND DAYS_SINCE_LAST_TXN IS NULL",
        what="t")
    assert nulls == [(1,)]
    assert warehouse.execute(
        "SELECT TO_VARCHAR(LAST_BOOKED_AT) FROM MEMBER_FEATURES_DAILY WHERE MEMBER_ID = 'm1'",
        what="t")[0][0].startswith("2026-11-18 23:59:59.999999")


def test_new_lake_column_is_added_to_the_target(ctx: RunContext,
                                                warehouse: WarehouseConnection) -> None:
    # The Snowflake table predates the lake's run_id column.
    write(ctx, "drift_metrics", DRIFT_METRICS_SCHEMA,
          [(DAY1, "member_churn", "x", "psi", 0.5, 0.1, "warn", "r1")], DAY1)
    warehouse.execute("CREATE TABLE DRIFT_METRICS (AS_OF_DATE DATE, MODEL_NAME VARCHAR, "
                      "COLUMN_NAME VARCHAR, METRIC VARCHAR, VALUE FLOAT, THRESHOLD FLOAT, "
                      "STATUS VARCHAR)", what="t")
    result = publish(ctx, DAY1, "drift_metrics")
    assert result.details["drift_metrics"]["added_columns"] == ["RUN_ID"]
    assert warehouse.execute("SELECT STATUS, RUN_ID FROM DRIFT_METRICS", what="t") == [
        ("warn", "r1")]


def test_failure_between_copy_and_commit_leaves_the_target(
        ctx: RunContext, warehouse: WarehouseConnection,
        monkeypatch: pytest.MonkeyPatch) -> None:
    write(ctx, "member_scores", MEMBER_SCORES_SCHEMA, score_rows(DAY1), DAY1)
    publish(ctx, DAY1, "member_scores")
    before_rows, before_log = scores_in(warehouse, DAY1), log_rows(warehouse)
    write(ctx, "member_scores", MEMBER_SCORES_SCHEMA, score_rows(DAY1, "r9", 2), DAY1)

    for point in ("after_copy", "before_commit"):
        monkeypatch.setenv("MEMBERSCORE_FAULT", f"publish:{point}")
        with pytest.raises(InjectedFaultError, match=f"injected fault at publish:{point}"):
            publish(ctx, DAY1, "member_scores")
        assert scores_in(warehouse, DAY1) == before_rows
        assert log_rows(warehouse) == before_log

    monkeypatch.delenv("MEMBERSCORE_FAULT")
    publish(ctx, DAY1, "member_scores")
    assert [r[0] for r in scores_in(warehouse, DAY1)] == ["m1", "m2"]
    assert log_rows(warehouse)[0][3] == 2


def test_a_day_of_several_tables_is_published_in_one_transaction(
        ctx: RunContext, warehouse: WarehouseConnection) -> None:
    """A failure while the second table is swapped (its rows already replaced inside
    the transaction) leaves both tables and PUBLISH_LOG as they were: a reader never
    sees the day's features without its scores."""
    tables = ["member_features_daily", "member_scores"]
    write(ctx, "member_features_daily", FEATURES_SCHEMA, feature_rows(DAY1), DAY1)
    write(ctx, "member_scores", MEMBER_SCORES_SCHEMA, score_rows(DAY1), DAY1)
    publish_day(ctx.settings, ctx.lake, ctx.spark, warehouse_dir=ctx.paths.warehouse,
                run_id="first", tables=tables, day=DAY1)

    def features_of(conn: WarehouseConnection) -> list[tuple]:
        return conn.execute("SELECT MEMBER_ID, RUN_ID FROM MEMBER_FEATURES_DAILY "
                            "ORDER BY MEMBER_ID", what="t")

    before = (features_of(warehouse), scores_in(warehouse, DAY1), log_rows(warehouse))
    assert [r[2] for r in before[2]] == ["first", "first"]
    write(ctx, "member_features_daily", FEATURES_SCHEMA, feature_rows(DAY1, "r2")[:2], DAY1)
    write(ctx, "member_scores", MEMBER_SCORES_SCHEMA, score_rows(DAY1, "r2", 2), DAY1)
    swapped: list[str] = []

    def fail_on_scores(point: FaultPoint, table: str, conn: WarehouseConnection) -> None:
        if point is FaultPoint.BETWEEN_TABLES:
            swapped.append(f"then {table}")
        if point is FaultPoint.BEFORE_COMMIT:
            swapped.append(table)
            if table == "MEMBER_SCORES":
                raise InjectedFaultError("stop before the commit of the day")

    with pytest.raises(InjectedFaultError):
        publish_day(ctx.settings, ctx.lake, ctx.spark, warehouse_dir=ctx.paths.warehouse,
                    run_id="second", tables=tables, day=DAY1, fault_hook=fail_on_scores)
    assert swapped == ["MEMBER_FEATURES_DAILY", "then MEMBER_SCORES", "MEMBER_SCORES"]
    assert (features_of(warehouse), scores_in(warehouse, DAY1), log_rows(warehouse)) == before
    assert staging_tables(warehouse) == []

    publish_day(ctx.settings, ctx.lake, ctx.spark, warehouse_dir=ctx.paths.warehouse,
                run_id="third", tables=tables, day=DAY1)
    assert features_of(warehouse) == [("m1", "r2"), ("m2", "r2")]
    assert [r[4] for r in scores_in(warehouse, DAY1)] == ["r2", "r2"]
    assert [(r[0], r[2], r[3]) for r in log_rows(warehouse)] == [
        ("MEMBER_FEATURES_DAILY", "third", 2), ("MEMBER_SCORES", "third", 2)]


def test_fault_injection_is_refused_in_prod(monkeypatch: pytest.MonkeyPatch) -> None:
    from memberscore.local.faults import hook_from_environment

    monkeypatch.setenv("MEMBERSCORE_FAULT", "publish:before_commit")
    with pytest.raises(ConfigError, match="fault injection is for tests and drills only"):
        hook_from_environment("prod")
    monkeypatch.setenv("MEMBERSCORE_FAULT", "publish:sometime")
    with pytest.raises(ConfigError, match="unknown point 'sometime'"):
        hook_from_environment("local")


def test_reconciliation_mismatch_is_caught(ctx: RunContext,
                                           warehouse: WarehouseConnection) -> None:
    write(ctx, "member_scores", MEMBER_SCORES_SCHEMA, score_rows(DAY1), DAY1)

    def tamper(point: FaultPoint, table: str, conn: WarehouseConnection) -> None:
        if point is FaultPoint.AFTER_COMMIT:  # another writer deletes a row
            conn.execute("DELETE FROM MEMBER_SCORES WHERE MEMBER_ID = 'm2'", what="tamper")

    with pytest.raises(WarehouseError, match=r"reconciliation failed for MEMBER_SCORES "
                                             r"2026-11-19: Snowflake has 3 rows"):
        publish_day(ctx.settings, ctx.lake, ctx.spark, warehouse_dir=ctx.paths.warehouse,
                    run_id="tampered", tables=["member_scores"], day=DAY1, fault_hook=tamper)

    def swap_key(point: FaultPoint, table: str, conn: WarehouseConnection) -> None:
        if point is FaultPoint.AFTER_COMMIT:  # same count, different member
            conn.execute("UPDATE MEMBER_SCORES SET MEMBER_ID = 'm99' WHERE MEMBER_ID = 'm2'",
                         what="tamper")

    with pytest.raises(WarehouseError, match=r"Snowflake has 4 rows \(v1:\d+\), the lake's "
                                             r"member_scores version 0 has 4"):
        publish_day(ctx.settings, ctx.lake, ctx.spark, warehouse_dir=ctx.paths.warehouse,
                    run_id="swapped", tables=["member_scores"], day=DAY1, fault_hook=swap_key)


def test_missing_or_empty_lake_day_publishes_nothing(ctx: RunContext,
                                                     warehouse: WarehouseConnection) -> None:
    write(ctx, "member_scores", MEMBER_SCORES_SCHEMA, score_rows(DAY1), DAY1)
    # member_features_daily has never been written: the default set fails before Snowflake.
    with pytest.raises(TableError, match=r"lake table 'member_features_daily' does not exist"):
        publish(ctx, DAY1)
    assert log_rows_or_none(warehouse) is None
    with pytest.raises(TableError, match=r"has no rows for 2026-11-20; nothing was published"):
        publish(ctx, DAY2, "member_scores")
    with pytest.raises(InputError, match=r"--table 'member_score' is not a published table"):
        publish(ctx, DAY1, "member_score")
    # drift_metrics is optional by default (monitor runs after publish): skipped with a
    # message; named with --table it is required.
    write(ctx, "member_features_daily", FEATURES_SCHEMA, feature_rows(DAY1), DAY1)
    result = publish(ctx, DAY1)
    assert result.rows == {"member_features_daily": 3, "member_scores": 4}
    assert any(m.startswith("skipped drift_metrics 2026-11-19 (optional): lake table "
                            "'drift_metrics' does not exist") for m in result.messages)
    with pytest.raises(TableError, match=r"lake table 'drift_metrics' does not exist"):
        publish(ctx, DAY1, "drift_metrics")


# ------------------------------------------------------------------ the quality gate


def test_the_gate_and_the_export_read_the_same_pinned_version(
        ctx: RunContext, warehouse: WarehouseConnection) -> None:
    """publish pins each table's Delta version once: the gate checks those rows and the
    publisher exports exactly them, so a rewrite landing between the two cannot
    publish rows nobody validated."""
    from memberscore.quality import require_passed
    from memberscore.warehouse import publish_tables, published_tables

    write(ctx, "member_scores", MEMBER_SCORES_SCHEMA, score_rows(DAY1, "r1"), DAY1)
    validated = ctx.lake.version("member_scores")
    assert validated is not None
    # a rewrite after the gate looked (here: before, at a later version)
    write(ctx, "member_scores", MEMBER_SCORES_SCHEMA, score_rows(DAY1, "r2"), DAY1,
          validated=False)
    with pytest.raises(QualityGateError, match="is stale"):
        require_passed(ctx, "member_scores", DAY1)
    assert require_passed(ctx, "member_scores", DAY1, validated) == []

    outcome = publish_tables(
        ctx.settings, ctx.lake, ctx.spark, warehouse_dir=ctx.paths.warehouse,
        run_id="pinned", selection=published_tables(ctx.settings, ["member_scores"]),
        day=DAY1, versions={"member_scores": validated})
    assert [r.lake_version for r in outcome.published] == [validated]
    assert {r[4] for r in scores_in(warehouse, DAY1)} == {"r1"}


def test_publish_refuses_scores_never_validated_failed_or_stale(ctx: RunContext) -> None:
    """Each refusal comes before Snowflake is touched: the local warehouse is not even
    started.  The validations are the real ones (GX on the lake rows)."""
    day0 = DAY1 - dt.timedelta(days=1)
    write(ctx, "member_scores", MEMBER_SCORES_SCHEMA, score_rows(day0, "r0", 6), day0,
          validated=False)
    bad = [*score_rows(DAY1)[:3], ("m4", DAY1, "member_churn", "3", 1.7, "low", "r1",
                                    SCORED_AT)]
    write(ctx, "member_scores", MEMBER_SCORES_SCHEMA, bad, DAY1, validated=False)

    with pytest.raises(QualityGateError) as never:
        publish(ctx, DAY1, "member_scores")
    assert str(never.value) == (
        "member_scores for 2026-11-19 has no validation results in validation_results: "
        "refusing to use a day that was never validated; run `memberscore validate "
        "--run-date 2026-11-19` first")

    failed = validate_table(ctx, "member_scores", DAY1, raise_on_critical=False)
    assert not failed.passed
    with pytest.raises(QualityGateError) as refused:
        publish(ctx, DAY1, "member_scores")
    message = str(refused.value)
    assert message.startswith(
        "data quality gate failed for member_scores on 2026-11-19: critical expectation "
        "expect_column_values_to_be_between(score, min_value=0, max_value=1) failed, "
        "observed 1 of 4 rows unexpected (25.00%), e.g. [1.7] (expected between 0 and 1); "
        f"full result: {failed.result_path};")
    assert "re-run `memberscore score --run-date 2026-11-19`" in message

    # the day is rescored (good rows, new run): the failed validation is now stale
    write(ctx, "member_scores", MEMBER_SCORES_SCHEMA, score_rows(DAY1, "r2"), DAY1,
          validated=False)
    with pytest.raises(QualityGateError) as stale:
        publish(ctx, DAY1, "member_scores")
    assert str(stale.value).startswith(
        "the validation of member_scores for 2026-11-19 is stale: the day was rewritten "
        "after run test-run validated it (")
    assert ("it validated 4 rows written by run r1 at 2026-11-21T04:31:07.123456Z, the "
            "table now holds 4 rows written by run r2 at 2026-11-21T04:31:07.123456Z. "
            "Refusing rows that were never validated: run `memberscore validate "
            "--run-date 2026-11-19`") in str(stale.value)
    assert not ctx.paths.warehouse.exists()

    # validated again, it passes with a warning (4 rows against 6 the day before),
    # which publish shows with its own output
    assert validate_table(ctx, "member_scores", DAY1).passed
    result = publish(ctx, DAY1, "member_scores")
    assert result.rows == {"member_scores": 4}
    assert ("WARNING member_scores 2026-11-19: expect_table_row_count_to_be_between("
            "min_value=$min_row_count, max_value=$max_row_count) not met, observed 4 "
            "(expected between 5 and 7) (validated by run test-run)") in result.messages
    with open_warehouse(ctx.settings, ctx.paths.warehouse, purpose="test") as conn:
        assert [(t, d, n) for t, d, _, n, _ in log_rows(conn)] == [
            ("MEMBER_SCORES", DAY1, 4)]


def test_publish_checks_the_feature_snapshot_too(ctx: RunContext) -> None:
    write(ctx, "member_scores", MEMBER_SCORES_SCHEMA, score_rows(DAY1), DAY1)
    write(ctx, "member_features_daily", FEATURES_SCHEMA, feature_rows(DAY1), DAY1,
          validated=False)
    with pytest.raises(QualityGateError, match=r"^member_features_daily for 2026-11-19 has no "
                                               r"validation results"):
        publish(ctx, DAY1)
    # recorded as passed, then rebuilt by another run (e.g. `backfill --force`)
    record_passed(ctx, "member_features_daily", DAY1)
    write(ctx, "member_features_daily", FEATURES_SCHEMA, feature_rows(DAY1, "r2"), DAY1,
          validated=False)
    with pytest.raises(QualityGateError, match=r"^the validation of member_features_daily for "
                                               r"2026-11-19 is stale: .* it validated 3 rows "
                                               r"written by run r1, the table now holds 3 "
                                               r"rows written by run r2\."):
        publish(ctx, DAY1)
    assert not ctx.paths.warehouse.exists()


def log_rows_or_none(conn: WarehouseConnection) -> list[tuple] | None:
    tables = {r[0] for r in conn.execute(
        "SELECT TABLE_NAME FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA = ?",
        ["MEMBER_SCORING"], what="t")}
    return log_rows(conn) if "PUBLISH_LOG" in tables else None


def test_cli_errors_are_one_line(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["publish", "--run-date", "2026-11-19", "--table", "nope"]) == 4
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == ("memberscore: publish failed: --table 'nope' is not a published table; "
                       "expected one of member_features_daily, member_scores, drift_metrics "
                       "(conf snowflake.published_tables)")
    assert not any("Traceback" in line for line in err)


# ------------------------------------------------------------------ credentials


SECRET = "pw-Zq81-never-show-me"


def test_bad_credential_gives_a_clear_error_without_the_secret(
        ctx: RunContext, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str]) -> None:
    """fakesnow accepts any password, so the wrong credential here is aimed at a
    Snowflake endpoint that refuses the login (nothing listens); the password is set
    and must appear nowhere: not in the error, not in logs, not on stderr."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    monkeypatch.setenv("MS_TEST_SNOWFLAKE_PASSWORD", SECRET)
    for key, value in {"LOCAL_SERVER": "false", "PORT": str(closed_port),
                       "PASSWORD": "${MS_TEST_SNOWFLAKE_PASSWORD}",
                       "LOGIN_TIMEOUT_SECONDS": "2"}.items():
        monkeypatch.setenv(f"MEMBERSCORE__SNOWFLAKE__{key}", value)
    write(ctx, "member_scores", MEMBER_SCORES_SCHEMA, score_rows(DAY1), DAY1)
    caplog.set_level("DEBUG")

    assert main(["--verbose", "publish", "--run-date", "2026-11-19",
                 "--table", "member_scores"]) == 8
    captured = capsys.readouterr()
    last = captured.err.strip().splitlines()[-1]
    assert last.startswith("memberscore: publish failed: could not connect to Snowflake "
                           f"(account memberscore_local as memberscore at "
                           f"http://127.0.0.1:{closed_port}, ANALYTICS.MEMBER_SCORING, "
                           "credential snowflake.password = ${MS_TEST_SNOWFLAKE_PASSWORD})")
    assert SECRET not in captured.err + captured.out
    assert SECRET not in caplog.text
    assert all(SECRET not in str(r.args) for r in caplog.records)


def _private_key_pem(passphrase: str | None) -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    encryption = (serialization.BestAvailableEncryption(passphrase.encode()) if passphrase
                  else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             encryption).decode()


def test_key_pair_auth_and_a_wrong_passphrase(ctx: RunContext,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    pem = _private_key_pem("right-passphrase-1")
    monkeypatch.setenv("MS_TEST_KEY", pem)
    monkeypatch.setenv("MS_TEST_KEY_PASSPHRASE", "wrong-passphrase-2")
    monkeypatch.setenv("MEMBERSCORE__SNOWFLAKE__PRIVATE_KEY", "${MS_TEST_KEY}")
    monkeypatch.setenv("MEMBERSCORE__SNOWFLAKE__PRIVATE_KEY_PASSPHRASE",
                       "${MS_TEST_KEY_PASSPHRASE}")
    settings = load_settings("local")
    with pytest.raises(ConfigError) as failure, \
            open_warehouse(settings, ctx.paths.warehouse, purpose="test"):
        pass
    message = str(failure.value)
    assert message == ("could not read the Snowflake private key (${MS_TEST_KEY}, passphrase "
                       "${MS_TEST_KEY_PASSPHRASE}): it is not a PEM private key, or the "
                       "passphrase is wrong")
    assert "wrong-passphrase-2" not in message and "PRIVATE KEY" not in message

    # The right passphrase connects (the local warehouse accepts the key-pair login).
    monkeypatch.setenv("MS_TEST_KEY_PASSPHRASE", "right-passphrase-1")
    with open_warehouse(load_settings("local"), ctx.paths.warehouse, purpose="test") as conn:
        assert conn.execute("SELECT 1", what="t") == [(1,)]


# ------------------------------------------------------------------ killed process


def _subprocess_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMBERSCORE__")}
    env.update(MEMBERSCORE_HOME=str(home), PYSPARK_PYTHON=sys.executable,
               MEMBERSCORE__SPARK__DRIVER_MEMORY="1g", **extra)
    return env


def test_killed_publish_leaves_the_old_day_and_a_rerun_succeeds(ctx: RunContext) -> None:
    write(ctx, "member_scores", MEMBER_SCORES_SCHEMA, score_rows(DAY1), DAY1)
    publish(ctx, DAY1, "member_scores")  # the old day, published and logged
    write(ctx, "member_scores", MEMBER_SCORES_SCHEMA, score_rows(DAY1, "r2", 2), DAY1)

    process = subprocess.Popen(
        [sys.executable, "-m", "memberscore.cli", "publish", "--run-date", DAY1.isoformat(),
         "--table", "member_scores"],
        env=_subprocess_env(ctx.paths.home, MEMBERSCORE_FAULT="publish:before_commit:hang"),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        assert process.stderr is not None
        seen = []
        for line in process.stderr:
            seen.append(line)
            if "hanging at publish:before_commit" in line:
                break
            assert time.monotonic() < deadline, "".join(seen[-20:])
        else:
            pytest.fail("publish ended without reaching the fault:\n" + "".join(seen[-20:]))
        # A second publish of the day meanwhile stops at once, saying who holds it.
        with pytest.raises(PublishRunningError) as running:
            publish(ctx, DAY1, "member_scores")
        assert re.fullmatch(
            r"publish of 2026-11-19 already running \(run \S+ since "
            r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ, process \d+\); nothing was published by "
            r"this run: wait for that one to finish \(it publishes the same lake rows\), "
            r"then re-run if the day changed since", str(running.value)), str(running.value)
        assert PublishRunningError.exit_code == 6
        # Deleted and inserted inside the open transaction: now kill -9 the whole job.
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=60)

    spool = ctx.paths.warehouse / "spool"
    assert [p.name for p in spool.rglob("*")] != []  # the killed run's spool is left
    with open_warehouse(ctx.settings, ctx.paths.warehouse, purpose="test") as conn:
        assert [r[4] for r in scores_in(conn, DAY1)] == ["r1"] * 4
        assert [(r[2], r[3]) for r in log_rows(conn)] == [("test-run", 4)]
        assert len(staging_tables(conn)) == 1  # and its staging table
        publish(ctx, DAY1, "member_scores")
        assert [(r[0], r[4]) for r in scores_in(conn, DAY1)] == [("m1", "r2"), ("m2", "r2")]
        assert [(r[2], r[3]) for r in log_rows(conn)] == [("test-run", 2)]
        # the rerun removed what the killed run left
        assert staging_tables(conn) == []
    assert list(spool.rglob("*")) == []


def staging_tables(conn: WarehouseConnection) -> list[str]:
    return [r[0] for r in conn.execute(
        "SELECT TABLE_NAME FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_NAME LIKE '%STAGING%'",
        what="t")]


def test_checksum_stays_exact_for_large_sums(ctx: RunContext,
                                             warehouse: WarehouseConnection) -> None:
    """Sums beyond 2**64 (a few thousand rows of up to 2**56 each) must come back exact,
    not as floats."""
    rows = [(f"member-{i:05d}", DAY1, "member_churn", "3", 0.5, "medium", "r1", SCORED_AT)
            for i in range(3000)]
    write(ctx, "member_scores", MEMBER_SCORES_SCHEMA, rows, DAY1)
    result = publish(ctx, DAY1, "member_scores")
    reference = expected_checksum([(f"member-{i:05d}", "2026-11-19", "member_churn")
                                   for i in range(3000)])
    assert reference.keysum > 2**64
    assert result.details["member_scores"]["checksum"] == reference.text

