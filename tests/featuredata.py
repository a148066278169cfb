"""Hand-made bronze rows for the feature and backfill tests, written with the declared
bronze schemas exactly as ingest writes them."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from memberscore.config import Settings
from memberscore.context import RunContext
from memberscore.feature_registry import feature_names
from memberscore.ingest_log import record_ingested
from memberscore.schemas import bronze_schema, bronze_table

UTC = dt.UTC
LANDING = dt.date(2026, 1, 1)


def ts(text: str) -> dt.datetime:
    """`2026-03-31 22:00:00[.ffffff]` as a UTC instant."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def txn(transaction_id: str, member_id: str, booked_at: str, amount: str, *,
        channel: str = "bacs", counterparty_id: str | None = None, status: str = "settled",
        ingested_at: str | None = None) -> tuple[object, ...]:
    """A bronze_transactions row; ingested one hour after booking unless given."""
    booked = ts(booked_at)
    ingested = ts(ingested_at) if ingested_at else booked + dt.timedelta(hours=1)
    return (transaction_id, member_id, booked, Decimal(amount), "GBP", channel,
            counterparty_id, status, ingested, ingested.date(), "transactions.parquet",
            "ingest-run")


def member(member_id: str, onboarded_at: str, *, closed_at: str | None = None,
           updated_at: str | None = None, landing_date: dt.date | None = None,
           legal_form: str = "ltd") -> tuple[object, ...]:
    """A bronze_members row; updated when onboarded and landed that day unless given."""
    updated = ts(updated_at) if updated_at else ts(onboarded_at)
    return (member_id, legal_form, "62020", "london", ts(onboarded_at),
            ts(closed_at) if closed_at else None, updated, landing_date or updated.date(),
            "members.parquet", "ingest-run")


def transactions_frame(spark: SparkSession, rows: Iterable[tuple[object, ...]]) -> DataFrame:
    return spark.createDataFrame(list(rows), bronze_schema("transactions"))


def members_frame(spark: SparkSession, rows: Iterable[tuple[object, ...]]) -> DataFrame:
    return spark.createDataFrame(list(rows), bronze_schema("members"))


def write_bronze(ctx: RunContext, members: Iterable[tuple[object, ...]],
                 transactions: Iterable[tuple[object, ...]],
                 ingested_through: dt.date | None = None) -> None:
    """Create bronze_members and bronze_transactions in the test's lake, and record
    their landing days as ingested (through `ingested_through`, when later), as
    ingest would have."""
    members, transactions = list(members), list(transactions)
    ctx.lake.append(bronze_table("members"), members_frame(ctx.spark, members))
    ctx.lake.append(bronze_table("transactions"), transactions_frame(ctx.spark, transactions))
    landed = [row[-3] for row in [*members, *transactions]]
    last = max([*landed, *([ingested_through] if ingested_through else [])])
    record_ingested_through(ctx, min(landed), last)


def record_ingested_through(ctx: RunContext, first: dt.date, last: dt.date) -> None:
    """Record every landing day of [first, last] as ingested (no rows counted)."""
    days = {first + dt.timedelta(days=i): (0, 0) for i in range((last - first).days + 1)}
    record_ingested(ctx.lake, ctx.settings.ingest.log_table, "ingest-run", days)


def append_transactions(ctx: RunContext, rows: Iterable[tuple[object, ...]]) -> None:
    ctx.lake.append(bronze_table("transactions"), transactions_frame(ctx.spark, rows))


def with_features(settings: Settings, **changes: Any) -> Settings:
    """Settings with some `features:` keys changed."""
    return dataclasses.replace(settings,
                               features=dataclasses.replace(settings.features, **changes))


def feature_values(frame: DataFrame) -> dict[tuple[str, dt.date], tuple[object, ...]]:
    """(member_id, as_of_date) -> the feature columns (no lineage), for exact equality."""
    names = feature_names()
    return {(r["member_id"], r["as_of_date"]): tuple(r[n] for n in names)
            for r in frame.select("member_id", "as_of_date", *names).collect()}
