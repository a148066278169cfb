"""Ingest: landing files -> bronze and quarantine Delta tables, nothing lost.

Unit tests run the pure transforms on a few hand-written rows; integration tests write
small hand-written landing files (CSV, JSONL, Parquet) into a fresh $MEMBERSCORE_HOME
and run the real job against the local Delta lake.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime as dt
import json
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from chispa import assert_df_equality
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from memberscore.cli import main
from memberscore.config import load_settings
from memberscore.context import JobResult, RunContext
from memberscore.errors import InputError, QualityGateError
from memberscore.ingest_log import ingested_days
from memberscore.jobs import ingest as ingest_job
from memberscore.jobs.ingest import chunk_days
from memberscore.local.landing_files import generate_landing
from memberscore.local.synthetic import GenerateParams, generate
from memberscore.schemas import SOURCES, bronze_schema
from memberscore.tables import MEMBER_FEATURES_DAILY
from memberscore.transforms import ingest

D1 = dt.date(2026, 3, 2)
D2 = dt.date(2026, 3, 3)
UTC = dt.UTC
TXN_COLUMNS = SOURCES["transactions"].names
MEMBER_COLUMNS = SOURCES["members"].names
OUTCOME_COLUMNS = SOURCES["member_outcomes"].names


# ----------------------------------------------------------------------------- helpers


def landing_file(home: Path, source: str, day: dt.date, name: str) -> Path:
    path = home / "landing" / source / day.isoformat() / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def write_csv(path: Path, columns: list[str], rows: list[dict[str, Any]],
              raw_lines: dict[int, str] | None = None) -> None:
    """A header row, then one line per row (None = empty field); `raw_lines` puts a
    hand-written line at a position instead."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for i, row in enumerate(rows):
            if raw_lines and i in raw_lines:
                handle.write(raw_lines[i] + "\r\n")
                continue
            writer.writerow(["" if row.get(c) is None else row[c] for c in columns])


def write_jsonl(path: Path, rows: list[dict[str, Any]],
                raw_lines: dict[int, str] | None = None) -> None:
    lines = [raw_lines[i] if raw_lines and i in raw_lines else json.dumps(row)
             for i, row in enumerate(rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def run_ingest(ctx: RunContext, day: dt.date) -> JobResult:
    return ingest_job.run(ctx, argparse.Namespace(run_date=day))


def with_threshold(ctx: RunContext, share: float) -> RunContext:
    settings = dataclasses.replace(
        ctx.settings, ingest=dataclasses.replace(ctx.settings.ingest, max_bad_row_share=share))
    return RunContext(settings, run_id=ctx.run_id, spark=ctx.spark)


def quarantined(ctx: RunContext, source: str, day: dt.date) -> dict[tuple[str, int], list[str]]:
    """(file name, row in file) -> rules, for one day's quarantine rows."""
    rows = ctx.lake.read(f"quarantine_{source}").where(F.col("landing_date") == day).collect()
    return {(Path(r["source_file"]).name, r["source_row"]): list(r["rules"]) for r in rows}


def bronze(ctx: RunContext, source: str, day: dt.date | None = None) -> list[dict[str, Any]]:
    frame = ctx.lake.read(f"bronze_{source}")
    if day is not None:
        frame = frame.where(F.col("landing_date") == day)
    return [r.asDict() for r in frame.collect()]


def ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).astimezone(UTC).replace(tzinfo=None)


# A transaction row that breaks nothing; each case below changes what it needs.
GOOD_TXN = {"transaction_id": "T1", "member_id": "M1", "booked_at": "2026-03-02T09:00:00Z",
            "amount": "-12.50", "currency": "GBP", "channel": "card",
            "counterparty_id": "MCH1", "status": "settled",
            "ingested_at": "2026-03-02T09:05:00Z"}


def txn(**changes: Any) -> dict[str, Any]:
    return {**GOOD_TXN, **changes}


# Text-format transaction rows (CSV and JSONL) and the rules each must break.
TEXT_TXNS: list[tuple[dict[str, Any], list[str]]] = [
    (txn(), []),
    (txn(transaction_id="T2", member_id=" M2 ", booked_at="2026-03-02T10:00:00+01:00",
         amount="100", channel="cash", counterparty_id="",
         ingested_at="2026-03-02T10:00:00Z"), []),
    (txn(transaction_id="T3", member_id=""), ["required:member_id"]),
    (txn(transaction_id="T4", amount="12,50"), ["unparseable:amount"]),
    (txn(transaction_id="T5", currency="EUR", status="pending"),
     ["currency_not_gbp", "unknown_status"]),
    (txn(transaction_id="T6", channel="cheque"), ["unknown_channel"]),
    (txn(transaction_id="T7", booked_at="2026-03-02T12:00:00Z",
         ingested_at="2026-03-02T11:00:00Z"), ["booked_after_ingested"]),
    (txn(transaction_id="T8", booked_at="02/03/2026 09:00"), ["unparseable:booked_at"]),
    (txn(transaction_id=None), ["required:transaction_id"]),
    (txn(ingested_at="2026-03-02T09:30:00Z"), ["duplicate"]),
    (txn(transaction_id="T11", amount="12.345", status=None),
     ["unparseable:amount", "required:status"]),
    (txn(transaction_id="T12", amount=None, ingested_at=None),
     ["required:amount", "required:ingested_at"]),
]

MEMBER_ROWS: list[tuple[dict[str, Any], list[str]]] = [
    ({"member_id": "M1", "legal_form": "ltd", "industry_code": "62020", "region": "London",
      "onboarded_at": "2024-01-05T10:00:00Z", "closed_at": None,
      "updated_at": "2024-01-05T10:00:00Z"}, []),
    ({"member_id": "M2", "legal_form": "llp", "industry_code": "69201", "region": "Wales",
      "onboarded_at": "2023-06-01T09:00:00Z", "closed_at": "2026-03-02T15:00:00Z",
      "updated_at": "2026-03-02T15:00:00Z"}, []),
    ({"member_id": "M3", "legal_form": None, "industry_code": "62020", "region": "London",
      "onboarded_at": "2024-01-05T10:00:00Z", "closed_at": None,
      "updated_at": "2024-01-05T10:00:00Z"}, ["required:legal_form"]),
    ({"member_id": "M4", "legal_form": "ltd", "industry_code": "62020", "region": "London",
      "onboarded_at": "31/12/2019", "closed_at": "soon",
      "updated_at": "2024-01-05T10:00:00Z"},
     ["unparseable:onboarded_at", "unparseable:closed_at"]),
    ({"member_id": "M5", "legal_form": "ltd", "industry_code": "62020", "region": "London",
      "onboarded_at": "2024-01-05T10:00:00Z", "closed_at": None, "updated_at": None},
     ["required:updated_at"]),
]

OUTCOME_ROWS: list[tuple[dict[str, Any], list[str]]] = [
    ({"member_id": "M1", "label_date": "2026-01-26", "churned": "true"}, []),
    ({"member_id": "M2", "label_date": "2026-01-26", "churned": "no"}, []),
    ({"member_id": "M3", "label_date": "last week", "churned": "true"},
     ["unparseable:label_date"]),
    ({"member_id": "M4", "label_date": "2026-01-26", "churned": "maybe"},
     ["unparseable:churned"]),
    ({"member_id": None, "label_date": "2026-01-26", "churned": "false"},
     ["required:member_id"]),
]


def expected(name: str, cases: list[tuple[dict[str, Any], list[str]]],
             extra: dict[int, list[str]] | None = None) -> dict[tuple[str, int], list[str]]:
    out = {(name, i + 1): rules for i, (_, rules) in enumerate(cases) if rules}
    for row, rules in (extra or {}).items():
        out[(name, row)] = rules
    return out


# ----------------------------------------------------------------------------- unit tests


def raw_frame(spark: SparkSession, source: str, rows: list[dict[str, Any]]):  # type: ignore[no-untyped-def]
    schema = T.StructType([T.StructField(c, T.StringType()) for c in SOURCES[source].names])
    frame = spark.createDataFrame([tuple(r.get(c) for c in schema.names) for r in rows], schema)
    return frame.withColumn(ingest.ROW_ORDER, F.monotonically_increasing_id())


def parsed(spark: SparkSession, source: str, rows: list[dict[str, Any]]) -> list[Any]:
    frame = ingest.parse_rows(raw_frame(spark, source, rows), source, source_file="f.csv",
                              landing_date=D1, run_id="r1")
    return ingest.combine_files([frame]).orderBy(ingest.SOURCE_ROW).collect()


def test_text_values_are_typed_trimmed_and_checked(spark: SparkSession) -> None:
    rows = parsed(spark, "transactions", [
        txn(amount=" 7.10 ", member_id=" M1 "),
        txn(amount="1e3", booked_at="2026-03-02 09:00:00", counterparty_id="  "),
        txn(amount="-0.005"),
        txn(amount="£12"),
        txn(amount="99999999999999999"),  # 17 integer digits: beyond decimal(18,2)
        txn(currency=None, channel=None, status=None),
    ])
    assert [r["amount"] for r in rows] == [Decimal("7.10"), Decimal("1000.00"), None, None,
                                           None, Decimal("-12.50")]
    assert rows[0]["member_id"] == "M1"
    assert rows[1]["booked_at"] == dt.datetime(2026, 3, 2, 9, 0)
    assert rows[1]["counterparty_id"] is None
    assert [r["rules"] for r in rows] == [
        [], [], ["unparseable:amount"], ["unparseable:amount"], ["unparseable:amount"],
        ["required:currency", "required:channel", "required:status"],
    ]
    assert json.loads(rows[0]["raw_record"])["amount"] == " 7.10 "
    assert json.loads(rows[5]["raw_record"])["currency"] is None
    assert [r["source_row"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert {r["landing_date"] for r in rows} == {D1}
    assert {r["source_file"] for r in rows} == {"f.csv"}
    assert {r["run_id"] for r in rows} == {"r1"}


def test_typed_parquet_values_convert_exactly_or_not_at_all(spark: SparkSession) -> None:
    schema = T.StructType([
        T.StructField("transaction_id", T.LongType()),
        T.StructField("member_id", T.StringType()),
        T.StructField("booked_at", T.TimestampNTZType()),
        T.StructField("amount", T.DecimalType(20, 4)),
        T.StructField("currency", T.StringType()),
        T.StructField("channel", T.StringType()),
        T.StructField("counterparty_id", T.StringType()),
        T.StructField("status", T.StringType()),
        T.StructField("ingested_at", T.LongType()),  # epoch numbers are ambiguous
    ])
    naive = dt.datetime(2026, 3, 2, 9, 0)
    frame = spark.createDataFrame([
        (1, "M1", naive, Decimal("12.3400"), "GBP", "card", None, "settled", 1),
        (2, "M1", naive, Decimal("12.3450"), "GBP", "card", None, "settled", None),
        (None, "M1", None, None, "GBP", "card", None, "settled", 1),
    ], schema).withColumn(ingest.ROW_ORDER, F.monotonically_increasing_id())
    typed = (ingest.combine_files([ingest.parse_rows(frame, "transactions", source_file="p",
                                                     landing_date=D1, run_id="r")])
             .select(ingest.SOURCE_ROW, "transaction_id", "booked_at", "amount", "rules"))
    expected = spark.createDataFrame([
        (1, "1", naive, Decimal("12.34"), ["unparseable:ingested_at"]),
        (2, "2", naive, None, ["unparseable:amount", "required:ingested_at"]),
        (3, None, None, None, ["required:transaction_id", "required:booked_at",
                               "required:amount", "unparseable:ingested_at"]),
    ], typed.schema)
    assert_df_equality(typed, expected, ignore_row_order=True)


def test_float_amounts_are_exact_to_the_penny(spark: SparkSession) -> None:
    schema = T.StructType([T.StructField(c, T.DoubleType() if c == "amount" else T.StringType())
                           for c in TXN_COLUMNS])
    values = [12.34, 0.1 + 0.2, 12.345, float("nan"), float("inf"), 1e20]
    frame = spark.createDataFrame(
        [tuple(v if c == "amount" else GOOD_TXN[c] for c in TXN_COLUMNS) for v in values],
        schema).withColumn(ingest.ROW_ORDER, F.monotonically_increasing_id())
    amounts = (ingest.combine_files([ingest.parse_rows(frame, "transactions",
                                                       source_file="p", landing_date=D1,
                                                       run_id="r")])
               .select(ingest.SOURCE_ROW, "amount"))
    # 0.1 + 0.2 is 0.30000000000000004: not a whole number of pence, so not accepted
    expected = spark.createDataFrame(
        [(1, Decimal("12.34")), (2, None), (3, None), (4, None), (5, None), (6, None)],
        amounts.schema)
    assert_df_equality(amounts, expected, ignore_row_order=True)


def test_duplicates_keep_the_earliest_clean_row(spark: SparkSession) -> None:
    rows = [
        txn(transaction_id="A", ingested_at="2026-03-02T10:00:00Z"),
        txn(transaction_id="A", ingested_at="2026-03-02T09:30:00Z"),  # earliest: kept
        txn(transaction_id="B", ingested_at="2026-03-02T09:10:00Z", currency="USD"),
        txn(transaction_id="B", ingested_at="2026-03-02T09:20:00Z"),  # earliest clean: kept
        txn(transaction_id="C"),  # kept on an earlier day
        txn(transaction_id="D"),
        txn(transaction_id="D"),  # same ingested_at: file order decides
        txn(transaction_id=None),
        txn(transaction_id=None),  # null ids are never duplicates of each other
    ]
    parsed_rows = ingest.combine_files([ingest.parse_rows(
        raw_frame(spark, "transactions", rows), "transactions", source_file="f",
        landing_date=D1, run_id="r")])
    seen = spark.createDataFrame([("C", True, False), ("D", False, True)],
                                 "transaction_id string, seen_before boolean, seen_after boolean")
    out = ingest.flag_duplicates(parsed_rows, seen).orderBy(ingest.SOURCE_ROW).collect()
    assert [r["rules"] for r in out] == [
        ["duplicate"], [], ["currency_not_gbp", "duplicate"], [], ["duplicate"], [],
        ["duplicate"], ["required:transaction_id"], ["required:transaction_id"],
    ]


def test_ids_seen_on_other_days_ignore_the_day_being_replaced(spark: SparkSession) -> None:
    today = ingest.combine_files([ingest.parse_rows(
        raw_frame(spark, "transactions", [txn(transaction_id="A"), txn(transaction_id="B"),
                                          txn(transaction_id=None)]),
        "transactions", source_file="f", landing_date=D2, run_id="r")])
    table = spark.createDataFrame(
        [("A", D1), ("A", dt.date(2026, 2, 1)), ("B", D2), ("B", dt.date(2026, 3, 4)),
         ("Z", D1)],
        "transaction_id string, landing_date date")
    seen = ingest.ids_seen_outside(table, today, D2, D2)
    expected = spark.createDataFrame(
        [("A", True, False), ("B", False, True)],
        "transaction_id string, seen_before boolean, seen_after boolean")
    assert_df_equality(seen, expected, ignore_row_order=True, ignore_nullable=True)
    # the empty frame of the first ingest (no bronze yet) has the same columns
    assert [(f.name, f.dataType) for f in ingest.no_ids_seen(spark).schema] == \
        [(f.name, f.dataType) for f in seen.schema]


def test_amounts_beyond_max_abs_amount_are_quarantined(spark: SparkSession) -> None:
    amounts = ["1000000000.00", "-1000000000.00", "1000000000.01", "-9999999999999999.00",
               None]
    rows = [txn(transaction_id=f"T{i}", amount=a) for i, a in enumerate(amounts)]
    frame = ingest.parse_rows(raw_frame(spark, "transactions", rows), "transactions",
                              source_file="f.csv", landing_date=D1, run_id="r1",
                              max_abs_amount=Decimal("1000000000.00"))
    checked = ingest.combine_files([frame]).orderBy(ingest.SOURCE_ROW).collect()
    assert [r["rules"] for r in checked] == [
        [], [], ["amount_out_of_range"], ["amount_out_of_range"], ["required:amount"]]
    # without a bound (the transform's default) only the type's range applies
    assert [r["rules"] for r in parsed(spark, "transactions", rows[2:4])] == [[], []]


def test_members_with_impossible_dates_are_quarantined(spark: SparkSession) -> None:
    base = MEMBER_ROWS[0][0]
    rows = parsed(spark, "members", [
        {**base, "updated_at": "2024-01-05T09:59:59Z"},                  # onboarded later
        {**base, "closed_at": "2024-01-05T09:59:59Z",
         "updated_at": "2024-02-01T00:00:00Z"},                          # closed before
        {**base, "closed_at": "2024-01-05T10:00:00Z"},                   # same instant: ok
        {**base, "onboarded_at": "soon", "updated_at": "2020-01-01T00:00:00Z"},
        base,
    ])
    assert [r["rules"] for r in rows] == [
        ["impossible_dates"], ["impossible_dates"], [], ["unparseable:onboarded_at"], []]


# ----------------------------------------------------------------------------- job: rules


def prefixed(cases: list[tuple[dict[str, Any], list[str]]],
             prefix: str) -> list[dict[str, Any]]:
    """The rows of `cases` with `prefix` before every transaction_id, so files of one
    day do not share ids (each file's duplicate is within itself)."""
    return [{**row, "transaction_id": None if row.get("transaction_id") is None
             else prefix + row["transaction_id"]} if "transaction_id" in row else row
            for row, _ in cases]


@pytest.fixture(scope="module")
def formats_day(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory
                ) -> tuple[RunContext, JobResult]:
    """One landing day holding every source in every format, each file breaking every
    rule its format can express, ingested once (the tests below read its results)."""
    settings = load_settings("local")
    settings = dataclasses.replace(
        settings, home=str(tmp_path_factory.mktemp("formats")),
        ingest=dataclasses.replace(settings.ingest, max_bad_row_share=1.0))
    ctx = RunContext(settings, run_id="test-run", spark=spark)
    home = ctx.paths.home

    # CSV: a line with too few fields at the end
    write_csv(landing_file(home, "transactions", D1, "payments.csv"), TXN_COLUMNS,
              [*prefixed(TEXT_TXNS, "C"), txn(transaction_id="CT13")],
              raw_lines={len(TEXT_TXNS): '"CT13","M1","2026-03-02T09:00:00Z"'})
    write_csv(landing_file(home, "members", D1, "members.csv"), MEMBER_COLUMNS,
              [row for row, _ in MEMBER_ROWS])
    write_csv(landing_file(home, "member_outcomes", D1, "outcomes.csv"), OUTCOME_COLUMNS,
              [row for row, _ in OUTCOME_ROWS])

    # JSONL: a JSON number, an absent nullable key, a broken line at the end
    rows = prefixed(TEXT_TXNS, "J")
    rows[0] = {**rows[0], "amount": -12.5}
    rows[1] = {k: v for k, v in rows[1].items() if k != "counterparty_id"}
    write_jsonl(landing_file(home, "transactions", D1, "payments.jsonl"),
                [*rows, {}], raw_lines={len(rows): '{"transaction_id": "JT13", "amount": '})
    write_jsonl(landing_file(home, "members", D1, "members.jsonl"),
                [row for row, _ in MEMBER_ROWS])
    write_jsonl(landing_file(home, "member_outcomes", D1, "outcomes.jsonl"),
                [row for row, _ in OUTCOME_ROWS])

    # Parquet: a typed feed, and a feed with other physical types and an extra column
    utc = pa.timestamp("us", tz="UTC")
    t = dt.datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    typed = pa.table({
        "transaction_id": ["PT1", "PT2", "PT3", "PT5", "PT6", "PT7", None, "PT1", "PT12"],
        "member_id": ["M1", "M2", None, "M1", "M1", "M1", "M1", "M1", "M1"],
        "booked_at": pa.array([t, t, t, t, t, t + dt.timedelta(hours=3), t, t, t], utc),
        "amount": pa.array([Decimal("-12.50"), Decimal("100.00"), Decimal("1.00"),
                            Decimal("1.00"), Decimal("1.00"), Decimal("1.00"),
                            Decimal("1.00"), Decimal("-12.50"), None], pa.decimal128(18, 2)),
        "currency": ["GBP", "GBP", "GBP", "EUR", "GBP", "GBP", "GBP", "GBP", "GBP"],
        "channel": ["card", "cash", "card", "card", "cheque", "card", "card", "card", "card"],
        "counterparty_id": ["MCH1", None, None, None, None, None, None, "MCH1", None],
        "status": ["settled", "settled", "settled", "pending", "settled", "settled",
                   "settled", "settled", "settled"],
        "ingested_at": pa.array([t + dt.timedelta(minutes=5)] * 7
                                + [t + dt.timedelta(minutes=30), None], utc),
    })
    pq.write_table(typed, landing_file(home, "transactions", D1, "a_card.parquet"))
    other = pa.table({
        "transaction_id": ["PT20", "PT21", "PT22", "PT23"],
        "member_id": ["M1"] * 4,
        "booked_at": ["2026-03-02T09:00:00Z", "2026-03-02T09:00:00Z", "yesterday",
                      "2026-03-02T09:00:00Z"],
        "amount": [12.34, 12.345, 1.0, float("nan")],
        "currency": ["GBP"] * 4,
        "channel": ["transfer"] * 4,
        "counterparty_id": ["CP1"] * 4,
        "status": ["settled"] * 4,
        "ingested_at": ["2026-03-02T10:00:00Z"] * 4,
        "batch_id": ["b1"] * 4,
    })
    pq.write_table(other, landing_file(home, "transactions", D1, "b_transfers.parquet"))
    members = pa.table({
        "member_id": ["M1", "M3", "M5"],
        "legal_form": ["ltd", None, "ltd"],
        "industry_code": ["62020"] * 3,
        "region": ["London"] * 3,
        "onboarded_at": pa.array([t] * 3, utc),
        "closed_at": pa.array([None] * 3, utc),
        "updated_at": pa.array([1_700_000_000, 1_700_000_000, None], pa.int64()),
    })
    pq.write_table(members, landing_file(home, "members", D1, "members.parquet"))
    outcomes = pa.table({
        "member_id": ["M1", "M2", None, "M4"],
        "label_date": pa.array([dt.date(2026, 1, 26)] * 4, pa.date32()),
        "churned": pa.array([1, 0, 0, 2], pa.int32()),
    })
    pq.write_table(outcomes, landing_file(home, "member_outcomes", D1, "outcomes.parquet"))
    return ctx, run_ingest(ctx, D1)


def of_files(found: dict[tuple[str, int], list[str]],
             *names: str) -> dict[tuple[str, int], list[str]]:
    return {key: rules for key, rules in found.items() if key[0] in names}


def kept_from(ctx: RunContext, source: str, name: str) -> list[dict[str, Any]]:
    return [r for r in bronze(ctx, source, D1) if Path(r["source_file"]).name == name]


def test_every_rule_in_csv_files(formats_day: tuple[RunContext, JobResult]) -> None:
    ctx, result = formats_day
    assert of_files(quarantined(ctx, "transactions", D1), "payments.csv") == expected(
        "payments.csv", TEXT_TXNS, {len(TEXT_TXNS) + 1: ["unparseable:record"]})
    assert of_files(quarantined(ctx, "members", D1), "members.csv") == \
        expected("members.csv", MEMBER_ROWS)
    assert of_files(quarantined(ctx, "member_outcomes", D1), "outcomes.csv") == \
        expected("outcomes.csv", OUTCOME_ROWS)
    _assert_kept_text_rows(ctx, "C", "csv")
    files = {Path(f["file"]).name: f for f in result.details["files"]}
    assert (files["payments.csv"]["rows_read"], files["payments.csv"]["rows_kept"],
            files["payments.csv"]["rows_quarantined"]) == (13, 2, 11)
    assert files["payments.csv"]["rules"]["unparseable:amount"] == 2
    broken = (ctx.lake.read("quarantine_transactions")
              .where("source_file like '%payments.csv' and source_row = 13").first())
    assert broken is not None
    assert "CT13" in broken["raw_record"]


def test_every_rule_in_jsonl_files(formats_day: tuple[RunContext, JobResult]) -> None:
    ctx, _ = formats_day
    assert of_files(quarantined(ctx, "transactions", D1), "payments.jsonl") == expected(
        "payments.jsonl", TEXT_TXNS, {len(TEXT_TXNS) + 1: ["unparseable:record"]})
    assert of_files(quarantined(ctx, "members", D1), "members.jsonl") == \
        expected("members.jsonl", MEMBER_ROWS)
    assert of_files(quarantined(ctx, "member_outcomes", D1), "outcomes.jsonl") == \
        expected("outcomes.jsonl", OUTCOME_ROWS)
    _assert_kept_text_rows(ctx, "J", "jsonl")


def _assert_kept_text_rows(ctx: RunContext, prefix: str, fmt: str) -> None:
    kept = sorted(kept_from(ctx, "transactions", f"payments.{fmt}"),
                  key=lambda r: r["transaction_id"])
    assert [(r["transaction_id"], r["member_id"], r["booked_at"], r["amount"],
             r["counterparty_id"]) for r in kept] == [
        (f"{prefix}T1", "M1", ts("2026-03-02T09:00:00+00:00"), Decimal("-12.50"), "MCH1"),
        (f"{prefix}T2", "M2", ts("2026-03-02T09:00:00+00:00"), Decimal("100.00"), None),
    ]
    assert {(r["landing_date"], r["run_id"]) for r in kept} == {(D1, "test-run")}
    members = {r["member_id"]: r for r in kept_from(ctx, "members", f"members.{fmt}")}
    assert set(members) == {"M1", "M2"}
    assert members["M2"]["closed_at"] == ts("2026-03-02T15:00:00+00:00")
    assert members["M1"]["closed_at"] is None
    labels = {r["member_id"]: r["churned"]
              for r in kept_from(ctx, "member_outcomes", f"outcomes.{fmt}")}
    assert labels == {"M1": True, "M2": False}


def test_every_rule_in_parquet_files(formats_day: tuple[RunContext, JobResult]) -> None:
    ctx, result = formats_day
    assert of_files(quarantined(ctx, "transactions", D1), "a_card.parquet",
                    "b_transfers.parquet") == {
        ("a_card.parquet", 3): ["required:member_id"],
        ("a_card.parquet", 4): ["currency_not_gbp", "unknown_status"],
        ("a_card.parquet", 5): ["unknown_channel"],
        ("a_card.parquet", 6): ["booked_after_ingested"],
        ("a_card.parquet", 7): ["required:transaction_id"],
        ("a_card.parquet", 8): ["duplicate"],
        ("a_card.parquet", 9): ["required:amount", "required:ingested_at"],
        ("b_transfers.parquet", 2): ["unparseable:amount"],
        ("b_transfers.parquet", 3): ["unparseable:booked_at"],
        ("b_transfers.parquet", 4): ["unparseable:amount"],
    }
    # epoch numbers are not accepted as timestamps: the unit is ambiguous
    assert of_files(quarantined(ctx, "members", D1), "members.parquet") == {
        ("members.parquet", 1): ["unparseable:updated_at"],
        ("members.parquet", 2): ["required:legal_form", "unparseable:updated_at"],
        ("members.parquet", 3): ["required:updated_at"],
    }
    assert of_files(quarantined(ctx, "member_outcomes", D1), "outcomes.parquet") == {
        ("outcomes.parquet", 3): ["required:member_id"],
        ("outcomes.parquet", 4): ["unparseable:churned"],
    }
    kept = {r["transaction_id"]: r for r in kept_from(ctx, "transactions", "a_card.parquet")
            + kept_from(ctx, "transactions", "b_transfers.parquet")}
    assert set(kept) == {"PT1", "PT2", "PT20"}
    assert kept["PT20"]["amount"] == Decimal("12.34")
    assert kept["PT1"]["booked_at"] == dt.datetime(2026, 3, 2, 9, 0)
    record = (ctx.lake.read("quarantine_transactions")
              .where("source_file like '%b_transfers.parquet' and source_row = 3").first())
    assert record is not None
    assert json.loads(record["raw_record"])["batch_id"] == "b1"
    files = {Path(f["file"]).name: f for f in result.details["files"]}
    assert files["b_transfers.parquet"]["extra_columns"] == ["batch_id"]
    assert sorted((r["member_id"], r["churned"])
                  for r in kept_from(ctx, "member_outcomes", "outcomes.parquet")) == \
        [("M1", True), ("M2", False)]


def test_the_day_totals_and_bronze_schema(formats_day: tuple[RunContext, JobResult]) -> None:
    ctx, result = formats_day
    assert result.rows == {"bronze_members": 4, "quarantine_members": 9,
                           "bronze_transactions": 7, "quarantine_transactions": 32,
                           "bronze_member_outcomes": 6, "quarantine_member_outcomes": 8}
    assert result.details["rows_read"] == 66
    for source in SOURCES:
        schema = ctx.lake.read(f"bronze_{source}").schema
        assert [(f.name, f.dataType) for f in schema] == \
            [(f.name, f.dataType) for f in bronze_schema(source)]
        quarantine = ctx.lake.read(f"quarantine_{source}").schema
        assert [(f.name, f.dataType) for f in quarantine] == \
            [(f.name, f.dataType) for f in ingest.QUARANTINE_SCHEMA]


# ----------------------------------------------------------------------------- job: files


def test_a_file_missing_a_column_fails_before_anything_is_written(
        ctx: RunContext, home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_csv(landing_file(home, "transactions", D1, "a.csv"),
              [c for c in TXN_COLUMNS if c != "currency"], [txn()])
    write_jsonl(landing_file(home, "transactions", D1, "b.jsonl"),
                [{k: v for k, v in txn().items() if k not in ("status", "counterparty_id")}])
    write_csv(landing_file(home, "members", D1, "m.csv"), MEMBER_COLUMNS,
              [MEMBER_ROWS[0][0]])
    with pytest.raises(InputError) as failure:
        run_ingest(ctx, D1)
    message = str(failure.value)
    assert "a.csv lacks currency" in message
    assert "b.jsonl lacks status" in message  # counterparty_id may be absent in JSON
    assert "nothing was ingested" in message
    for table in ("bronze_members", "bronze_transactions", "quarantine_transactions"):
        assert not ctx.lake.exists(table)

    assert main(["ingest", "--run-date", D1.isoformat()]) == InputError.exit_code
    errors = [line for line in capsys.readouterr().err.splitlines()
              if line.startswith("memberscore:")]  # the rest are log lines
    assert len(errors) == 1 and "miss required columns" in errors[0]


def test_no_landing_files_at_all_is_an_error(ctx: RunContext) -> None:
    with pytest.raises(InputError, match="no landing files for 2026-03-02"):
        run_ingest(ctx, D1)


def test_files_of_other_formats_are_not_skipped_silently(ctx: RunContext,
                                                        home: Path) -> None:
    write_csv(landing_file(home, "transactions", D1, "payments.csv"), TXN_COLUMNS, [txn()])
    landing_file(home, "transactions", D1, "payments-2.csv.gz").write_bytes(b"\x1f\x8b")
    landing_file(home, "transactions", D1, ".upload.csv.tmp").write_text("in flight")
    landing_file(home, "transactions", D1, "_SUCCESS").write_text("")
    with pytest.raises(InputError, match=r"cannot read.*payments-2\.csv\.gz") as failure:
        run_ingest(ctx, D1)
    assert ".upload.csv.tmp" not in str(failure.value) and "_SUCCESS" not in str(failure.value)
    assert not ctx.lake.exists("bronze_transactions")


def test_rerun_replaces_the_day(ctx: RunContext, home: Path) -> None:
    path = landing_file(home, "transactions", D1, "payments.csv")
    rows = [txn(transaction_id=f"T{i}") for i in range(1, 5)] + [txn(transaction_id="X",
                                                                     currency="EUR")]
    write_csv(path, TXN_COLUMNS, rows)
    write_csv(landing_file(home, "transactions", D2, "payments.csv"), TXN_COLUMNS,
              [txn(transaction_id="T9", ingested_at="2026-03-03T09:00:00Z")])
    lenient = with_threshold(ctx, 1.0)
    run_ingest(lenient, D1)
    run_ingest(lenient, D2)
    first = sorted(r["transaction_id"] for r in bronze(lenient, "transactions"))
    again = RunContext(lenient.settings, run_id="second-run", spark=ctx.spark)
    result = run_ingest(again, D1)

    assert sorted(r["transaction_id"] for r in bronze(lenient, "transactions")) == first == \
        ["T1", "T2", "T3", "T4", "T9"]
    assert {r["run_id"] for r in bronze(lenient, "transactions", D1)} == {"second-run"}
    assert quarantined(lenient, "transactions", D1) == {("payments.csv", 5):
                                                        ["currency_not_gbp"]}
    assert result.rows["bronze_transactions"] == 4

    # the bad row is fixed at the source: a re-run clears the day's quarantine
    write_csv(path, TXN_COLUMNS, rows[:4])
    run_ingest(lenient, D1)
    assert quarantined(lenient, "transactions", D1) == {}
    assert len(bronze(lenient, "transactions", D1)) == 4
    assert len(bronze(lenient, "transactions", D2)) == 1  # other days untouched


@pytest.mark.parametrize("broadcast", [True, False], ids=["keys-broadcast", "keys-shuffled"])
def test_a_duplicate_across_two_days(ctx: RunContext, home: Path, broadcast: bool,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Also when the duplicate rows are too many to broadcast (a whole resent feed):
    then rows and duplicate keys are joined by shuffle, with the same outcome."""
    if not broadcast:
        monkeypatch.setattr(ingest_job, "DUPLICATES_BROADCAST_ROWS", 0)
    write_jsonl(landing_file(home, "transactions", D1, "payments.jsonl"),
                [txn(transaction_id="T1"), txn(transaction_id="T2")])
    resent = txn(transaction_id="T1", ingested_at="2026-03-03T08:00:00Z")
    write_jsonl(landing_file(home, "transactions", D2, "payments.jsonl"),
                [txn(transaction_id="T3", ingested_at="2026-03-03T08:00:00Z"), resent])
    lenient = with_threshold(ctx, 1.0)
    run_ingest(lenient, D1)
    run_ingest(lenient, D2)

    assert sorted((r["transaction_id"], r["landing_date"])
                  for r in bronze(lenient, "transactions")) == [("T1", D1), ("T2", D1),
                                                                ("T3", D2)]
    assert quarantined(lenient, "transactions", D2) == {("payments.jsonl", 2): ["duplicate"]}



def test_days_ingested_out_of_order_are_reported(ctx: RunContext, home: Path) -> None:
    write_csv(landing_file(home, "transactions", D1, "payments.csv"), TXN_COLUMNS,
              [txn(transaction_id="T1")])
    write_csv(landing_file(home, "transactions", D2, "payments.csv"), TXN_COLUMNS,
              [txn(transaction_id="T1", ingested_at="2026-03-03T08:00:00Z")])
    lenient = with_threshold(ctx, 1.0)
    run_ingest(lenient, D2)  # nothing earlier yet: T1 is kept on D2
    result = run_ingest(lenient, D1)  # T1 is kept on D1 too, and the job says so
    assert sorted((r["transaction_id"], r["landing_date"])
                  for r in bronze(lenient, "transactions")) == [("T1", D1), ("T1", D2)]
    assert result.details["later_day_duplicates"] == {"transactions": 1}
    assert any("ingest those days again" in m for m in result.messages)
    # re-running D2 now quarantines its copy: test_a_duplicate_across_two_days


def test_too_many_bad_rows_fail_after_writing(ctx: RunContext, home: Path) -> None:
    rows = [txn(transaction_id=f"T{i}") for i in range(8)]
    rows += [txn(transaction_id="E1", currency="EUR"), txn(transaction_id="E2", currency="USD"),
             txn(transaction_id="E3", channel="cheque")]
    write_csv(landing_file(home, "transactions", D1, "payments.csv"), TXN_COLUMNS, rows)
    with pytest.raises(QualityGateError) as failure:
        run_ingest(ctx, D1)  # default max_bad_row_share 0.01
    message = str(failure.value)
    assert "3 of 11 rows quarantined (27.27%)" in message
    assert "max_bad_row_share 1.00%" in message
    assert "transactions:currency_not_gbp 2, transactions:unknown_channel 1" in message
    assert str(home / "lake" / "quarantine_transactions") in message
    assert len(bronze(ctx, "transactions", D1)) == 8
    assert len(quarantined(ctx, "transactions", D1)) == 3
    # a failed run does not count as ingested: features refuse D1 until one succeeds
    assert ingested_days(ctx.lake, ctx.settings.ingest.log_table) == set()
    run_ingest(with_threshold(ctx, 0.5), D1)
    log_rows = ctx.lake.read(ctx.settings.ingest.log_table).collect()
    assert [(r["landing_date"], r["rows_read"], r["rows_quarantined"], r["run_id"])
            for r in log_rows] == [(D1, 11, 3, ctx.run_id)]


def test_cli_prints_a_table_per_file(home: Path, capsys: pytest.CaptureFixture[str],
                                     spark: SparkSession) -> None:
    write_csv(landing_file(home, "members", D1, "members.csv"), MEMBER_COLUMNS,
              [MEMBER_ROWS[0][0], MEMBER_ROWS[1][0]])
    pq.write_table(pa.table({c: pa.array([], pa.string()) for c in TXN_COLUMNS}),
                   landing_file(home, "transactions", D1, "card.parquet"))
    assert main(["ingest", "--run-date", D1.isoformat()]) == 0
    out = capsys.readouterr().out
    assert "ingest 2026-03-02: 2 file(s), 2 rows read, 2 kept, 0 quarantined" in out
    assert "members/2026-03-02/members.csv" in out
    assert "transactions/2026-03-02/card.parquet" in out
    assert "(no member_outcomes files for 2026-03-02)" in out


# ----------------------------------------------------------------------------- ranges


def run_range(ctx: RunContext, start: dt.date, end: dt.date) -> JobResult:
    return ingest_job.run(ctx, argparse.Namespace(run_date=None, start=start, end=end))


def in_home(ctx: RunContext, home: Path) -> RunContext:
    """The same settings and Spark with another $MEMBERSCORE_HOME."""
    return RunContext(dataclasses.replace(ctx.settings, home=str(home)), run_id=ctx.run_id,
                      spark=ctx.spark)


def lake_rows(ctx: RunContext, table: str) -> list[tuple[Any, ...]]:
    """Every row of a lake table without the per-run columns, sorted."""
    frame = ctx.lake.read(table).drop("run_id", "quarantined_at")
    return sorted((tuple(r) for r in frame.collect()), key=repr)


def with_chunks(ctx: RunContext, megabytes: float) -> RunContext:
    settings = dataclasses.replace(
        ctx.settings, ingest=dataclasses.replace(ctx.settings.ingest, range_chunk_mb=megabytes))
    return RunContext(settings, run_id=ctx.run_id, spark=ctx.spark)


ONE_BYTE = 1 / (1024 * 1024)  # in MB: every day a chunk of its own


def test_days_are_chunked_by_the_bytes_of_their_files() -> None:
    days = [D1 + dt.timedelta(days=i) for i in range(5)]
    sizes = dict(zip(days, [40, 30, 0, 50, 10], strict=True))
    assert chunk_days(days, sizes, 70) == [days[0:3], days[3:5]]
    assert chunk_days(days, sizes, 10**9) == [days]
    # a day over the budget is a chunk of its own; empty days join the chunk
    assert chunk_days(days, sizes, 35) == [[days[0]], days[1:3], [days[3]], [days[4]]]
    assert chunk_days([D1], {D1: 10**12}, 1) == [[D1]]


def landing_bytes(home: Path, day: dt.date) -> int:
    return sum(p.stat().st_size for p in (home / "landing").glob(f"*/{day}/*"))


def test_a_range_ingests_like_its_days_in_order(ctx: RunContext, home: Path,
                                                tmp_path: Path) -> None:
    """Duplicates within a day, across days of the range and against a day ingested
    before it; a clean copy after a quarantined one; dirty generated rows: ingesting
    [D1, D3] at once leaves exactly what ingesting D1, D2, D3 one by one leaves, read
    in two chunks ([D1, D2] together, then D3), so duplicates are judged both within a
    chunk of several days and across chunks."""
    d0, d3 = D1 - dt.timedelta(days=1), D2 + dt.timedelta(days=1)
    late = "2026-03-04T07:00:00Z"
    params = GenerateParams(members=12, days=4, seed=5, end_date=d3, dirty_share=0.05)
    generate_landing(home / "landing", params)  # first: it replaces the landing folder
    write_csv(landing_file(home, "transactions", d0, "payments.csv"), TXN_COLUMNS,
              [txn(transaction_id="T0", ingested_at="2026-03-01T09:00:00Z",
                   booked_at="2026-03-01T08:00:00Z")])
    write_csv(landing_file(home, "transactions", D1, "payments.csv"), TXN_COLUMNS, [
        txn(transaction_id="T0"),                    # kept on d0: duplicate
        txn(transaction_id="T1", currency="EUR"),    # quarantined for itself only
        txn(transaction_id="T2"), txn(transaction_id="T2"),  # one kept, one duplicate
    ])
    write_jsonl(landing_file(home, "transactions", D2, "payments.jsonl"), [
        txn(transaction_id="T1", ingested_at="2026-03-03T08:00:00Z"),  # clean: kept on D2
        txn(transaction_id="T2", ingested_at="2026-03-03T08:00:00Z"),  # kept on D1
    ])
    write_csv(landing_file(home, "transactions", d3, "payments.csv"), TXN_COLUMNS, [
        txn(transaction_id="T1", ingested_at=late), txn(transaction_id="T4", ingested_at=late),
    ])
    other = tmp_path / "other-home"
    for source in ("members", "transactions", "member_outcomes"):
        if (home / "landing" / source).exists():
            shutil.copytree(home / "landing" / source, other / "landing" / source)

    day_by_day = with_threshold(ctx, 1.0)
    for day in (d0, D1, D2, d3):
        run_ingest(day_by_day, day)
    two_days = (landing_bytes(other, D1) + landing_bytes(other, D2)) / (1024 * 1024)
    at_once = with_chunks(with_threshold(in_home(ctx, other), 1.0), two_days)
    run_ingest(at_once, d0)
    result = run_range(at_once, D1, d3)

    for table in ("bronze_transactions", "quarantine_transactions", "bronze_members",
                  "quarantine_members"):
        assert lake_rows(at_once, table) == lake_rows(day_by_day, table), table
    kept = {(r["transaction_id"], r["landing_date"])
            for r in bronze(at_once, "transactions") if len(r["transaction_id"]) == 2}
    assert kept == {("T0", d0), ("T2", D1), ("T1", D2), ("T4", d3)}
    assert quarantined(at_once, "transactions", D1)[("payments.csv", 1)] == ["duplicate"]
    assert quarantined(at_once, "transactions", D1)[("payments.csv", 2)] == ["currency_not_gbp"]
    assert result.details["start"] == D1.isoformat() and result.details["days"] == 3
    # the range records each of its days, in one commit, as the days one by one do
    for each in (at_once, day_by_day):
        assert ingested_days(each.lake, each.settings.ingest.log_table) == {d0, D1, D2, d3}
    assert result.messages[0].startswith(f"ingest {D1}..{d3}: 3 day(s)")
    assert [m.split()[0] for m in result.messages[2:5]] == [str(D1), str(D2), str(d3)]
    # one commit per table and chunk: d0's, then [D1, D2], then D3
    assert at_once.lake.history("bronze_transactions")[0].version == 2
    assert landing_bytes(other, d3) > 0  # so D3 could not join the first chunk


def test_a_range_fails_on_the_day_over_the_bad_row_share(ctx: RunContext,
                                                         home: Path) -> None:
    write_csv(landing_file(home, "transactions", D1, "payments.csv"), TXN_COLUMNS,
              [txn(transaction_id=f"T{i}") for i in range(4)])
    write_csv(landing_file(home, "transactions", D2, "payments.csv"), TXN_COLUMNS,
              [txn(transaction_id="U1", ingested_at="2026-03-03T08:00:00Z"),
               txn(transaction_id="U2", currency="EUR")])
    with pytest.raises(QualityGateError, match=rf"1 day\(s\) .*\({D2} 50.00%\)"):
        run_range(with_threshold(ctx, 0.3), D1, D2)
    assert len(bronze(ctx, "transactions")) == 5  # written, to inspect


def test_a_chunk_over_the_bad_row_share_stops_the_range_after_the_chunks_before_it(
        ctx: RunContext, home: Path) -> None:
    d3 = D2 + dt.timedelta(days=1)
    write_csv(landing_file(home, "transactions", D1, "payments.csv"), TXN_COLUMNS,
              [txn(transaction_id=f"T{i}") for i in range(4)])
    write_csv(landing_file(home, "transactions", D2, "payments.csv"), TXN_COLUMNS,
              [txn(transaction_id="U1", ingested_at="2026-03-03T08:00:00Z"),
               txn(transaction_id="U2", currency="EUR")])
    write_csv(landing_file(home, "transactions", d3, "payments.csv"), TXN_COLUMNS,
              [txn(transaction_id="V1", ingested_at="2026-03-04T08:00:00Z")])
    chunked = with_chunks(with_threshold(ctx, 0.3), ONE_BYTE)
    with pytest.raises(QualityGateError) as refused:
        run_range(chunked, D1, d3)
    message = str(refused.value)
    assert f"1 day(s) with too many rows quarantined ({D2} 50.00%)" in message
    assert f"Bronze and quarantine for {D2} were written; {D1} passed and are recorded " \
           "as ingested" in message
    assert message.endswith(f"re-run `memberscore ingest --start {D2} --end {d3}`")
    # D1 is ingested and recorded, D2 written to inspect but not recorded, D3 untouched
    assert ingested_days(ctx.lake, ctx.settings.ingest.log_table) == {D1}
    assert sorted(r["transaction_id"] for r in bronze(ctx, "transactions")) == \
        ["T0", "T1", "T2", "T3", "U1"]


def test_a_range_with_a_day_without_files_writes_nothing(ctx: RunContext,
                                                         home: Path) -> None:
    d3 = D2 + dt.timedelta(days=1)
    for day in (D1, d3):
        write_csv(landing_file(home, "transactions", day, "payments.csv"), TXN_COLUMNS,
                  [txn(transaction_id=f"T{day.day}")])
    with pytest.raises(InputError, match=rf"1 day\(s\) have no landing files .*\({D2}\)"):
        run_range(ctx, D1, d3)
    assert not ctx.lake.exists("bronze_transactions")


@pytest.mark.parametrize(("argv", "message"), [
    (["--start", "2026-03-03", "--end", "2026-03-02"], "is after --end"),
    (["--start", "2026-03-02"], "both --start D1 and --end D2"),
    (["--run-date", "2026-03-02", "--end", "2026-03-03"], "--end goes with --start"),
])
def test_range_arguments_are_checked(home: Path, capsys: pytest.CaptureFixture[str],
                                     argv: list[str], message: str) -> None:
    assert main(["ingest", *argv]) != 0
    assert message in capsys.readouterr().err


def test_impossible_rows_cannot_stop_features(ctx: RunContext, home: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """An amount beyond `max_abs_amount` and a members row dated impossibly are
    quarantined; the member keeps their earlier record, and features for the day run
    (an accepted 9,999,999,999,999,999.00 once overflowed every member's sums)."""
    good = MEMBER_ROWS[0][0]
    write_jsonl(landing_file(home, "members", D1, "members.jsonl"), [good])
    write_jsonl(landing_file(home, "transactions", D1, "payments.jsonl"), [txn()])
    later = {**good, "region": "Wales", "onboarded_at": "2026-03-05T00:00:00Z",
             "updated_at": "2026-03-03T08:00:00Z"}
    write_jsonl(landing_file(home, "members", D2, "members.jsonl"), [later])
    at_d2 = {"booked_at": "2026-03-03T09:00:00Z", "ingested_at": "2026-03-03T09:05:00Z"}
    write_jsonl(landing_file(home, "transactions", D2, "payments.jsonl"), [
        txn(transaction_id="T2", amount="1000000000.00", **at_d2),
        txn(transaction_id="T3", amount="9999999999999999.00", **at_d2),
        txn(transaction_id="T4", amount="1000000000.00", **at_d2),
    ])
    lenient = with_threshold(ctx, 1.0)
    run_ingest(lenient, D1)
    run_ingest(lenient, D2)
    assert quarantined(lenient, "transactions", D2) == {
        ("payments.jsonl", 2): ["amount_out_of_range"]}
    assert quarantined(lenient, "members", D2) == {("members.jsonl", 1): ["impossible_dates"]}

    assert main(["features", "--run-date", D2.isoformat()]) == 0, capsys.readouterr().err
    rows = ctx.lake.read(MEMBER_FEATURES_DAILY.name).collect()
    assert [(r["member_id"], r["tenure_days"], r["inflow_sum_30d"], r["txn_count_30d"])
            for r in rows] == [("M1", (D2 - dt.date(2024, 1, 5)).days,
                                Decimal("2000000000.00"), 3)]


def test_a_bad_csv_line_spoils_only_itself(ctx: RunContext, home: Path) -> None:
    """An unclosed quote once swallowed every line after it into one quarantined
    record; a byte that is not UTF-8 once refused the whole file (as a header error)
    or, read as U+FFFD, would have been kept altered.  Each now costs its own line."""
    path = landing_file(home, "transactions", D1, "payments.csv")
    rows = [txn(transaction_id=f"T{i}", counterparty_id=f"C{i}") for i in range(1, 8)]
    write_csv(path, TXN_COLUMNS, rows, raw_lines={2: 'T3,M1,"2026-03-02T09:00:00Z'})
    path.write_bytes(path.read_bytes().replace(b"C5", b"Caf\xe9"))
    run_ingest(with_threshold(ctx, 1.0), D1)
    assert quarantined(ctx, "transactions", D1) == {
        ("payments.csv", 3): ["unparseable:record"], ("payments.csv", 5): ["unparseable:record"]}
    assert sorted(r["transaction_id"] for r in bronze(ctx, "transactions", D1)) == [
        "T1", "T2", "T4", "T6", "T7"]


# ----------------------------------------------------------------------------- end to end


def test_generated_days_land_in_bronze_exactly(ctx: RunContext) -> None:
    """Generate a small dirty bank, ingest every day: bronze holds exactly the clean
    rows that were delivered, every other delivered row is quarantined, none is lost."""
    end = dt.date(2026, 3, 4)
    params = GenerateParams(members=40, days=2, seed=21, end_date=end, dirty_share=0.05)
    generate_landing(ctx.paths.landing, params)
    bank = generate(params)  # the same rows, in memory
    clean = generate(dataclasses.replace(params, dirty_share=0.0))
    lenient = with_threshold(ctx, 1.0)
    results = [run_ingest(lenient, day) for day in (params.start_date, end)]

    delivered = [row for f in bank.files_of("transactions") for row in f.table.to_pylist()]
    clean_ids = {row["transaction_id"] for f in clean.files_of("transactions")
                 for row in f.table.to_pylist()}
    kept = [r["transaction_id"] for r in bronze(lenient, "transactions")]
    assert sorted(kept) == sorted({r["transaction_id"] for r in delivered} & clean_ids)
    held = sum(len(quarantined(lenient, "transactions", day)) for day in bank.landing_days)
    assert len(kept) + held == len(delivered) == sum(
        r.details["rows_read"] - sum(f["rows_read"] for f in r.details["files"]
                                     if not f["file"].startswith("transactions/"))
        for r in results)
    # one quarantined row per delivered dirty row (late rows are clean, only late)
    dirty = bank.dirty["transactions"]
    assert held == sum(dirty.values()) - dirty.get("late", 0) > 0
    members = {r["member_id"] for r in bronze(lenient, "members")}
    assert members == set(bank.truth["member_id"].to_pylist())


def test_file_names_that_need_url_encoding_are_recorded_as_named(ctx: RunContext,
                                                                 home: Path) -> None:
    """A scan names its files URL-encoded: every row still gets its file's own name
    (`+`, `%`, a space, a non-ASCII letter) and day, in every format."""
    names = {"csv": "pay+ments 50%.csv", "jsonl": "pay+ments é.jsonl",
             "parquet": "card+%41 x.parquet"}
    write_csv(landing_file(home, "transactions", D1, names["csv"]), TXN_COLUMNS,
              [txn(transaction_id="C1"), txn(transaction_id="C2", currency="EUR")])
    write_jsonl(landing_file(home, "transactions", D1, names["jsonl"]),
                [{**txn(transaction_id="J1"), "note": "extra"}])
    pq.write_table(pa.Table.from_pylist([txn(transaction_id="P1")]),
                   landing_file(home, "transactions", D1, names["parquet"]))
    result = run_ingest(with_threshold(ctx, 1.0), D1)

    assert sorted((r["source_file"], r["transaction_id"], r["landing_date"])
                  for r in bronze(ctx, "transactions")) == [
        (f"transactions/{D1}/{names['parquet']}", "P1", D1),
        (f"transactions/{D1}/{names['csv']}", "C1", D1),
        (f"transactions/{D1}/{names['jsonl']}", "J1", D1),
    ]
    assert quarantined(ctx, "transactions", D1) == {(names["csv"], 2): ["currency_not_gbp"]}
    files = {f["file"]: f for f in result.details["files"]}
    assert files[f"transactions/{D1}/{names['jsonl']}"]["extra_columns"] == ["note"]


def test_positions_count_across_the_blocks_a_file_is_split_into(ctx: RunContext, home: Path
                                                                ) -> None:
    """A big file is read in several blocks (splits), by several tasks: every row's
    `source_row` is still its position in the whole file, in every format, and the
    duplicate kept is the earlier by that position."""
    rows = [txn(transaction_id=f"S{i:03d}", counterparty_id=f"cp-{i:03d}-" + "x" * 40)
            for i in range(1, 121)]
    for i in (7, 60, 119):
        rows[i - 1] = {**rows[i - 1], "currency": "EUR"}
    rows[99] = {**rows[39], "transaction_id": "S040"}  # row 100 repeats row 40
    write_csv(landing_file(home, "transactions", D1, "big.csv"), TXN_COLUMNS, rows)
    write_jsonl(landing_file(home, "transactions", D1, "big.jsonl"),
                [{**r, "transaction_id": "J" + r["transaction_id"]} for r in rows])
    pq.write_table(pa.Table.from_pylist([{**r, "transaction_id": "P" + r["transaction_id"]}
                                         for r in rows]),
                   landing_file(home, "transactions", D1, "big.parquet"), row_group_size=10)
    spark = ctx.spark
    small = {"spark.sql.files.maxPartitionBytes": "4096",
             "spark.sql.files.openCostInBytes": "0"}
    before = {key: spark.conf.get(key) for key in small}
    try:
        for key, value in small.items():
            spark.conf.set(key, value)
        day_dir = str(landing_file(home, "transactions", D1, "big.csv").parent)
        blocks = {fmt: spark.read.format(fmt).options(header=True).load(f"{day_dir}/*.{ext}")
                  .select("_metadata.file_block_start").distinct().count()
                  for fmt, ext in (("csv", "csv"), ("json", "jsonl"), ("parquet", "parquet"))}
        assert min(blocks.values()) >= 3, blocks  # each file really is read in blocks
        run_ingest(with_threshold(ctx, 1.0), D1)
    finally:
        for key, value in before.items():
            spark.conf.set(key, value)

    expected = {}
    for name in ("big.csv", "big.jsonl", "big.parquet"):
        expected.update({(name, i): ["currency_not_gbp"] for i in (7, 60, 119)})
        expected[(name, 100)] = ["duplicate"]
    assert quarantined(ctx, "transactions", D1) == expected
    assert len(bronze(ctx, "transactions", D1)) == 3 * (120 - 4)
