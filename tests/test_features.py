"""The snapshot of one day, against values computed by hand from the contract.

Snapshot D = 2026-03-31, allowed lateness 6 h, so the cutoff is 2026-04-01 06:00 UTC.
Windows: 7 days from 2026-03-25 00:00, 30 days from 2026-03-02 00:00, 90 days from
2026-01-01 00:00, all up to 2026-04-01 00:00 (exclusive).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from chispa import assert_df_equality
from featuredata import (
    append_transactions,
    feature_values,
    member,
    members_frame,
    record_ingested_through,
    transactions_frame,
    ts,
    txn,
    write_bronze,
)
from pyspark.sql import SparkSession

from memberscore.cli import main
from memberscore.context import RunContext
from memberscore.errors import QualityGateError
from memberscore.feature_registry import feature_table_schema, lineage_names
from memberscore.quality import recorded_validation, require_passed
from memberscore.tables import MEMBER_FEATURES_DAILY
from memberscore.transforms.features import (
    day_index,
    feature_cutoff,
    input_totals,
    member_days,
    member_features,
    snapshot_aggregates,
)
from memberscore.transforms.tiles import daily_tiles, history_by_day, transaction_fingerprints

D = dt.date(2026, 3, 31)
LATENESS = 6.0
COMPUTED_AT = ts("2026-04-02 08:00:00")

MEMBERS = [
    member("m_active", "2025-01-01 09:00:00"),
    member("m_quiet", "2026-01-15 10:00:00"),                 # no transactions at all
    member("m_old", "2025-01-01 00:00:00"),                   # last transaction long ago
    member("m_inflow", "2025-06-01 00:00:00"),                # inflow only: no outflow
    member("m_onboarded_on_d", "2026-03-31 23:59:59"),
    member("m_onboarded_after", "2026-04-01 00:00:00"),       # after D: not in snapshot
    member("m_closed_before", "2025-01-01 00:00:00", closed_at="2026-03-30 23:59:59",
           updated_at="2026-03-30 23:59:59"),                 # closed before D: out
    member("m_closed_on_d", "2025-01-01 00:00:00", closed_at="2026-03-31 00:00:00",
           updated_at="2026-03-31 00:00:00"),                 # closed on D: in
    # known open at the cutoff; the closing row (backdated) arrives after it
    member("m_closed_later", "2025-01-01 00:00:00"),
    member("m_closed_later", "2025-01-01 00:00:00", closed_at="2026-03-01 00:00:00",
           updated_at="2026-04-01 06:00:01"),
    # first known after the cutoff: not in snapshot D at all
    member("m_unknown", "2026-03-01 00:00:00", updated_at="2026-04-01 07:00:00"),
]

TRANSACTIONS = [
    # 7-day window start, and one second before it
    txn("t01", "m_active", "2026-03-25 00:00:00", "100.00", channel="card",
        counterparty_id="c1"),
    txn("t02", "m_active", "2026-03-24 23:59:59", "-40.00", channel="card",
        counterparty_id="c2"),
    # 30-day window start, and one second before it
    txn("t03", "m_active", "2026-03-02 00:00:00", "-60.00", counterparty_id="c1"),
    txn("t04", "m_active", "2026-03-01 23:59:59", "1000.00", counterparty_id="c3"),
    # 90-day window start, and one second before it
    txn("t05", "m_active", "2026-01-01 00:00:00", "5.55"),
    txn("t06", "m_active", "2025-12-31 23:59:59", "-7.77", channel="card"),
    # D + 1 00:00: after the snapshot day, known before the cutoff
    txn("t07", "m_active", "2026-04-01 00:00:00", "999.00",
        ingested_at="2026-04-01 00:30:00"),
    # reversed never counts
    txn("t08", "m_active", "2026-03-30 12:00:00", "-500.00", channel="card",
        counterparty_id="c9", status="reversed"),
    # failed: a failed payment out counts, a failed payment in does not
    txn("t09", "m_active", "2026-03-29 10:00:00", "-25.00", status="failed"),
    txn("t10", "m_active", "2026-03-29 11:00:00", "30.00", status="failed"),
    txn("t14", "m_active", "2026-03-01 23:59:59", "-10.00", status="failed"),
    # ingested exactly at the cutoff: counts; a microsecond later: late
    txn("t11", "m_active", "2026-03-31 22:00:00", "-0.01", channel="card",
        ingested_at="2026-04-01 06:00:00"),
    txn("t12", "m_active", "2026-03-31 23:00:00", "-300.00", channel="card",
        counterparty_id="c4", ingested_at="2026-04-01 06:00:00.000001"),
    # booked in the window, known days later: late
    txn("t13", "m_active", "2026-03-10 08:00:00", "-12.34", channel="card",
        counterparty_id="c2", ingested_at="2026-04-05 00:00:00"),
    txn("o01", "m_old", "2025-06-01 13:00:00", "-20.00"),
    txn("i01", "m_inflow", "2026-03-20 10:00:00", "50.00", channel="card"),
    txn("x01", "m_closed_before", "2026-03-20 10:00:00", "-1.00"),
    txn("x02", "m_closed_on_d", "2026-03-31 10:00:00", "-2.50", counterparty_id="c7"),
    # a member the members feed does not know yet: late/fingerprint totals only
    txn("u01", "m_unknown", "2026-03-30 10:00:00", "-3.00",
        ingested_at="2026-04-02 00:00:00"),
]

ZERO = Decimal("0.00")


def snapshot(spark: SparkSession) -> dict[str, dict[str, object]]:
    frame = member_features(members_frame(spark, MEMBERS),
                            transactions_frame(spark, TRANSACTIONS), D, LATENESS,
                            "test-run", COMPUTED_AT)
    return {r["member_id"]: r.asDict() for r in frame.collect()}


@pytest.fixture(scope="module")
def rows(spark: SparkSession) -> dict[str, dict[str, object]]:
    return snapshot(spark)


def test_member_inclusion(rows: dict[str, dict[str, object]]) -> None:
    assert sorted(rows) == ["m_active", "m_closed_later", "m_closed_on_d", "m_inflow",
                            "m_old", "m_onboarded_on_d", "m_quiet"]


def test_window_boundaries_statuses_cutoff_and_decimals(
        rows: dict[str, dict[str, object]]) -> None:
    active = rows["m_active"]
    # 7d: t01 (at the window start), t11 (ingested at the cutoff)
    assert active["txn_count_7d"] == 2
    # 30d adds t02 (a second before the 7d start) and t03 (at the 30d start)
    assert active["txn_count_30d"] == 4
    # 90d adds t04 (a second before the 30d start) and t05 (at the 90d start)
    assert active["txn_count_90d"] == 6
    assert active["inflow_sum_30d"] == Decimal("100.00")
    assert active["inflow_sum_90d"] == Decimal("1105.55")
    assert active["outflow_sum_30d"] == Decimal("100.01")
    assert active["outflow_sum_90d"] == Decimal("100.01")
    assert active["net_flow_30d"] == Decimal("-0.01")
    assert active["max_outflow_30d"] == Decimal("60.00")
    assert active["distinct_counterparties_30d"] == 2        # c1 twice, c2; t11 has none
    assert active["failed_payment_count_30d"] == 1           # t09 only
    assert active["card_spend_share_30d"] == pytest.approx(40.01 / 100.01, abs=0)
    assert active["active_days_30d"] == 4                    # 03-02, 03-24, 03-25, 03-31
    assert active["days_since_last_txn"] == 0
    assert active["tenure_days"] == 454                      # 2025-01-01 -> 2026-03-31


def test_member_without_transactions_has_zeros_not_nulls(
        rows: dict[str, dict[str, object]]) -> None:
    quiet = rows["m_quiet"]
    for name in ("txn_count_7d", "txn_count_30d", "txn_count_90d",
                 "distinct_counterparties_30d", "failed_payment_count_30d",
                 "active_days_30d"):
        assert quiet[name] == 0, name
    for name in ("inflow_sum_30d", "inflow_sum_90d", "outflow_sum_30d", "outflow_sum_90d",
                 "net_flow_30d", "max_outflow_30d"):
        assert quiet[name] == ZERO, name
    assert quiet["days_since_last_txn"] is None
    assert quiet["card_spend_share_30d"] is None
    assert quiet["tenure_days"] == 75


def test_old_inflow_only_onboarded_and_closed_members(
        rows: dict[str, dict[str, object]]) -> None:
    assert rows["m_old"]["txn_count_90d"] == 0
    assert rows["m_old"]["days_since_last_txn"] == 303     # 2025-06-01 -> 2026-03-31
    inflow = rows["m_inflow"]
    assert inflow["txn_count_30d"] == 1
    assert inflow["outflow_sum_30d"] == ZERO
    assert inflow["card_spend_share_30d"] is None           # zero outflow: null, not 0
    assert inflow["days_since_last_txn"] == 11
    assert rows["m_onboarded_on_d"]["tenure_days"] == 0
    closed = rows["m_closed_on_d"]
    assert closed["outflow_sum_30d"] == Decimal("2.50")
    assert closed["distinct_counterparties_30d"] == 1
    assert closed["card_spend_share_30d"] == 0.0
    assert rows["m_closed_later"]["tenure_days"] == 454


def test_lineage_and_schema(spark: SparkSession) -> None:
    frame = member_features(members_frame(spark, MEMBERS),
                            transactions_frame(spark, TRANSACTIONS), D, LATENESS,
                            "test-run", COMPUTED_AT)
    declared = feature_table_schema()
    assert [(f.name, f.dataType) for f in frame.schema] == \
        [(f.name, f.dataType) for f in declared]
    row = frame.filter("member_id = 'm_quiet'").first()
    assert row is not None
    assert row["as_of_date"] == D
    assert row["run_id"] == "test-run"
    cutoff = feature_cutoff(D, LATENESS)
    assert cutoff == ts("2026-04-01 06:00:00")
    assert row["feature_cutoff_at"].replace(tzinfo=None) == cutoff.replace(tzinfo=None)


def test_late_count_and_transaction_fingerprint_totals(spark: SparkSession) -> None:
    aggregates = snapshot_aggregates(transactions_frame(spark, TRANSACTIONS), D, LATENESS)
    totals = input_totals(aggregates).first()
    assert totals is not None
    # t12 (a microsecond after the cutoff), t13 (days later), u01 (unknown member)
    assert totals["late_txn_count"] == 3
    # every row booked on or before D and known by the cutoff (t07 is after D)
    assert totals["fp_rows"] == len(TRANSACTIONS) - 4


def test_points_in_time_of_members(spark: SparkSession) -> None:
    days = member_days(members_frame(spark, MEMBERS), D, D + dt.timedelta(days=1), LATENESS)
    by_day = {(r["member_id"], r["day"]) for r in days.collect()}
    d, next_day = 20543, 20544  # 2026-03-31, 2026-04-01 as days since 1970-01-01
    assert ("m_closed_later", d) in by_day
    assert ("m_closed_later", next_day) not in by_day       # the closing row is known now
    assert ("m_unknown", d) not in by_day and ("m_unknown", next_day) in by_day
    assert ("m_onboarded_after", next_day) in by_day
    assert ("m_closed_on_d", next_day) not in by_day


def test_latest_members_row_wins_even_on_equal_update_times(spark: SparkSession) -> None:
    members = [
        member("m1", "2026-01-01 00:00:00", updated_at="2026-02-01 00:00:00"),
        member("m1", "2026-01-01 00:00:00", closed_at="2026-03-01 00:00:00",
               updated_at="2026-03-01 00:00:00"),
        # reopened, known from snapshot 03-30 (after 03-29's cutoff at 03-30 06:00) ...
        member("m1", "2026-01-02 00:00:00", updated_at="2026-03-30 07:00:00",
               landing_date=dt.date(2026, 3, 30)),
        # ... and a row with the same updated_at that landed earlier: it loses the tie
        member("m1", "2026-01-01 00:00:00", closed_at="2026-03-05 00:00:00",
               updated_at="2026-03-30 07:00:00", landing_date=dt.date(2026, 3, 29)),
    ]
    days = member_days(members_frame(spark, members), dt.date(2026, 3, 1),
                       dt.date(2026, 3, 31), LATENESS)
    # 03-01 (20513): the closing row, and closed on D is in; 03-02..03-29 closed;
    # 03-30 and 03-31 reopened, onboarded 2026-01-02 (20455) from the winning row
    expected = spark.createDataFrame(
        [("m1", 20513, 20454), ("m1", 20542, 20455), ("m1", 20543, 20455)],
        "member_id string, day int, onboarded_day int")
    assert_df_equality(days, expected, ignore_row_order=True, ignore_nullable=True)


# --------------------------------------------------------------------------- the job


def test_job_writes_partition_reruns_identically_and_ignores_late_rows(
        ctx: RunContext, capsys: pytest.CaptureFixture[str]) -> None:
    write_bronze(ctx, MEMBERS, TRANSACTIONS)
    assert main(["features", "--run-date", D.isoformat()]) == 0
    out = capsys.readouterr().out
    assert "7 members" in out and "3 late row(s)" in out
    assert "history_days 90: every window is complete" in out
    # the job validated the snapshot it wrote
    assert ("validate member_features_daily 2026-03-31: passed, 45/45 expectations met, "
            "7 rows; result ") in out
    table = MEMBER_FEATURES_DAILY.name
    first = ctx.lake.read(table)
    first_values = feature_values(first)
    assert len(first_values) == 7
    first_run = {r["run_id"] for r in first.select("run_id").collect()}

    # a row for D arriving after the cutoff changes nothing in D's snapshot
    append_transactions(ctx, [txn("t99", "m_quiet", "2026-03-31 09:00:00", "-5.00",
                                  ingested_at="2026-04-03 00:00:00")])
    assert main(["features", "--run-date", D.isoformat()]) == 0
    assert "4 late row(s)" in capsys.readouterr().out
    second = ctx.lake.read(table)
    assert feature_values(second) == first_values
    assert second.count() == 7                      # replaced, not appended
    second_run = {r["run_id"] for r in second.select("run_id").collect()}
    assert len(second_run) == 1 and second_run != first_run   # lineage says who wrote it
    lineage = set(lineage_names())
    assert_df_equality(first.drop(*lineage), second.drop(*lineage),
                       ignore_row_order=True)

    # each run validated its own rows: the latest validation vouches for the rows now
    # in the lake, so scoring may use the day
    recorded = recorded_validation(ctx, table, D)
    assert recorded is not None and recorded.run is not None
    assert recorded.run.data.first_run_id == recorded.outcome.run_id == second_run.pop()
    assert recorded.run.data.rows == 7
    assert require_passed(ctx, table, D) == []

    # a forced backfill rebuilds the day without validating it: the validation is
    # stale, and score refuses the day (before touching any model) saying what to run
    assert main(["backfill", "--start", D.isoformat(), "--end", D.isoformat(),
                 "--force"]) == 0
    assert ("the built days are not validated: score and publish refuse a day until "
            "`memberscore validate --run-date D` passed for it (first built 2026-03-31, "
            "last 2026-03-31)") in capsys.readouterr().out
    assert main(["score", "--run-date", D.isoformat()]) == QualityGateError.exit_code
    err = [line for line in capsys.readouterr().err.splitlines()
           if line.startswith("memberscore: ")]
    assert len(err) == 1
    assert err[0].startswith("memberscore: score failed: the validation of "
                             "member_features_daily for 2026-03-31 is stale: the day was "
                             f"rewritten after run {recorded.outcome.run_id} validated it (")
    assert "it validated 7 rows written by run " in err[0]
    assert err[0].endswith("Refusing rows that were never validated: run `memberscore "
                           "validate --run-date 2026-03-31`")
    assert not ctx.lake.exists("member_scores")


def test_job_fails_in_one_line_without_bronze(ctx: RunContext,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    record_ingested_through(ctx, D, D)  # recorded as ingested, yet no bronze table
    assert main(["features", "--run-date", D.isoformat()]) == 4
    stderr = capsys.readouterr().err
    err = [line for line in stderr.splitlines() if line.startswith("memberscore:")]
    assert len(err) == 1
    assert "bronze_transactions" in err[0] and "memberscore ingest" in err[0]
    assert "Traceback" not in stderr


def test_a_day_ingest_has_not_run_for_is_refused(ctx: RunContext,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """17 days past the last landing day, features once wrote (and validated) a full
    snapshot of members without transactions."""
    assert main(["features", "--run-date", D.isoformat()]) == 4
    (line,) = [x for x in capsys.readouterr().err.splitlines()
               if x.startswith("memberscore:")]
    assert line.startswith("memberscore: features failed: features for 2026-03-31 refused: "
                           "ingest has not run for 2026-03-31; no day has been ingested yet")

    write_bronze(ctx, MEMBERS, TRANSACTIONS, ingested_through=D)
    later = D + dt.timedelta(days=17)
    assert main(["features", "--run-date", later.isoformat()]) == 4
    (line,) = [x for x in capsys.readouterr().err.splitlines()
               if x.startswith("memberscore:")]
    assert line == ("memberscore: features failed: features for 2026-04-17 refused: ingest "
                    "has not run for 2026-04-17; the newest ingested day is "
                    f"{max(D, max(r[-3] for r in TRANSACTIONS))}. Run `memberscore ingest "
                    "--run-date 2026-04-17` first")
    assert not ctx.lake.exists(MEMBER_FEATURES_DAILY.name)
    assert main(["backfill", "--start", "2026-03-30", "--end", later.isoformat()]) == 4
    assert ("backfill 2026-03-30..2026-04-17 refused: ingest has not run for "
            in capsys.readouterr().err)
    assert not ctx.lake.exists(MEMBER_FEATURES_DAILY.name)
    assert main(["features", "--run-date", D.isoformat()]) == 0


def test_an_unforeseen_spark_failure_is_one_line_naming_the_jvm_cause(
        ctx: RunContext, capfd: pytest.CaptureFixture[str]) -> None:
    """Bronze written around ingest's bounds (two amounts each beyond what ingest
    accepts) overflows the day's sums: the job fails in one line naming Spark's own
    error, with no JVM stack trace on the console (the task logs are off)."""
    huge = [txn(f"h{i}", "m_inflow", "2026-03-31 09:00:00", "9999999999999999.00")
            for i in range(2)]
    write_bronze(ctx, MEMBERS, [*TRANSACTIONS, *huge], ingested_through=D)
    assert main(["features", "--run-date", D.isoformat()]) == 5
    err = capfd.readouterr().err
    lines = [x for x in err.splitlines() if x.strip() and " INFO " not in x]
    assert lines == [
        "memberscore: features failed: writing 'member_features_daily' failed, nothing was "
        "written: [NUMERIC_VALUE_OUT_OF_RANGE.WITH_SUGGESTION] 2000000000000004800 cannot be "
        "represented as Decimal(18, 0). SQLSTATE: 22003 (re-run with --verbose for Spark's "
        "stack trace)"], err
    assert not ctx.lake.exists(MEMBER_FEATURES_DAILY.name)
    assert "\tat " not in err and "Traceback" not in err


# --------------------------------------------------------------------------- history


HISTORY_MEMBERS = [member("m1", "2025-01-01 00:00:00"), member("m2", "2025-01-01 00:00:00")]


def history_of(spark: SparkSession, transactions: list[dict[str, object]],
               day: dt.date = D) -> set[int]:
    frame = member_features(members_frame(spark, HISTORY_MEMBERS),
                            transactions_frame(spark, transactions), day, LATENESS,
                            "test-run", COMPUTED_AT)
    return {r["history_days"] for r in frame.collect()}


@pytest.mark.parametrize(("first_booked", "expected"), [
    ("2026-03-31 23:59:59", 1),     # history starts on D itself
    ("2026-03-30 00:00:00", 2),
    ("2026-01-02 00:00:00", 89),    # one day short of the 90-day window
    ("2026-01-01 00:00:00", 90),    # the 90-day window's first day: complete
    ("2025-06-01 00:00:00", 90),    # capped at the longest window
])
def test_history_days_counts_from_the_first_known_booking(
        spark: SparkSession, first_booked: str, expected: int) -> None:
    rows = [txn("a", "m1", first_booked, "-1.00", status="failed"),  # any status counts
            txn("b", "m2", "2026-03-31 10:00:00", "5.00")]
    # the same for every member of the day: m1's history is the bank's, and m2's
    assert history_of(spark, rows) == {expected}


def test_history_days_ignores_rows_not_known_by_the_cutoff_and_after_d(
        spark: SparkSession) -> None:
    rows = [
        # booked long before, ingested after D's cutoff: not history D could see
        txn("late", "m1", "2025-06-01 00:00:00", "-1.00",
            ingested_at="2026-04-01 06:00:00.000001"),
        # booked after D: outside every window
        txn("next", "m2", "2026-04-01 00:00:00", "1.00", ingested_at="2026-04-01 00:30:00"),
        txn("first", "m2", "2026-03-02 12:00:00", "1.00"),
    ]
    assert history_of(spark, rows) == {30}
    # no transaction known at all: 0, never null
    assert history_of(spark, rows[:2]) == {0}
    # the late row is known by the next days' cutoffs
    assert history_of(spark, rows, D + dt.timedelta(days=5)) == {90}


def test_tiled_history_equals_the_one_day_history(spark: SparkSession) -> None:
    rows = [
        txn("late", "m1", "2026-01-05 00:00:00", "-1.00", ingested_at="2026-03-20 03:00:00"),
        txn("first", "m2", "2026-02-10 12:00:00", "1.00"),
    ]
    start, end = dt.date(2026, 3, 10), dt.date(2026, 4, 5)
    daily = daily_tiles(transactions_frame(spark, rows), start, end, LATENESS)
    days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    tiled = history_by_day(transaction_fingerprints(daily, end).collect(), days)
    direct = {day_index(day): history_of(spark, rows, day).pop() for day in days}
    assert tiled == direct
    # before the late row is known (03-19's cutoff is 03-20 06:00) history starts 02-10
    assert direct[day_index(dt.date(2026, 3, 18))] == 37
    assert direct[day_index(dt.date(2026, 3, 19))] == 74
    assert direct[day_index(end)] == 90
