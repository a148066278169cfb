"""Declared schemas of the sources and the bronze tables (never inferred from files).

A source schema is the typed shape of one landing feed as the contract defines it.
A bronze table holds the rows of a source that passed every ingest rule, typed, plus
lineage: the landing day they arrived in, the file, and the ingest run.
"""

from __future__ import annotations

from pyspark.sql import types as T

MONEY = T.DecimalType(18, 2)

LEGAL_FORMS = ("ltd", "sole_trader", "llp", "partnership")
CHANNELS = ("card", "faster_payment", "bacs", "direct_debit", "transfer", "cash")
STATUSES = ("settled", "failed", "reversed")
CURRENCIES = ("GBP",)

MEMBERS = T.StructType([
    T.StructField("member_id", T.StringType(), False),
    T.StructField("legal_form", T.StringType(), False),
    T.StructField("industry_code", T.StringType(), False),
    T.StructField("region", T.StringType(), False),
    T.StructField("onboarded_at", T.TimestampType(), False),
    T.StructField("closed_at", T.TimestampType(), True),
    T.StructField("updated_at", T.TimestampType(), False),
])

TRANSACTIONS = T.StructType([
    T.StructField("transaction_id", T.StringType(), False),
    T.StructField("member_id", T.StringType(), False),
    T.StructField("booked_at", T.TimestampType(), False),
    T.StructField("amount", MONEY, False),
    T.StructField("currency", T.StringType(), False),
    T.StructField("channel", T.StringType(), False),
    T.StructField("counterparty_id", T.StringType(), True),
    T.StructField("status", T.StringType(), False),
    T.StructField("ingested_at", T.TimestampType(), False),
])

MEMBER_OUTCOMES = T.StructType([
    T.StructField("member_id", T.StringType(), False),
    T.StructField("label_date", T.DateType(), False),
    T.StructField("churned", T.BooleanType(), False),
])

SOURCES: dict[str, T.StructType] = {
    "members": MEMBERS,
    "transactions": TRANSACTIONS,
    "member_outcomes": MEMBER_OUTCOMES,
}

# Lineage columns every bronze row carries.
LINEAGE = [
    T.StructField("landing_date", T.DateType(), False),
    T.StructField("source_file", T.StringType(), False),
    T.StructField("run_id", T.StringType(), False),
]


def bronze_table(source: str) -> str:
    """The bronze table name of a source: `bronze_transactions`."""
    return f"bronze_{source}"


def quarantine_table(source: str) -> str:
    """The quarantine table name of a source: `quarantine_transactions`."""
    return f"quarantine_{source}"


# Only bronze_transactions has rows enough per landing day to be partitioned by it:
# ingest replaces one day of it and a features run reads 90 days of it.  The members
# and outcomes feeds and every quarantine table hold a few rows a day; a partition
# per day of them is a file per day, and each file costs a Parquet writer and Delta's
# statistics whatever its size (a 159-day history ingest spent 2-3.4 s per such table
# on about a thousand rows).  Their days are replaced by a `landing_date` filter on
# the data all the same.  A table keeps the layout it was created with.
DAY_PARTITIONED = frozenset({"bronze_transactions"})


def ingest_partition_by(table: str) -> list[str]:
    """The partition columns ingest creates `table` with: `landing_date` or none."""
    return ["landing_date"] if table in DAY_PARTITIONED else []


def bronze_schema(source: str) -> T.StructType:
    """The source's typed columns followed by the lineage columns."""
    return T.StructType([*SOURCES[source].fields, *LINEAGE])


def quoted(column: str) -> str:
    """`column` as a Spark SQL identifier (backticks, doubled inside the name), for
    projections written as SQL text (one py4j round trip a column, not ~20)."""
    return "`" + column.replace("`", "``") + "`"
