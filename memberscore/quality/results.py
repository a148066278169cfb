"""The Delta table `validation_results`: one row per expectation of the latest
validation of each (run_date, table_name).

Writing a validation replaces that day's rows for that table (`replace_where` on the
two partition columns), so re-validating never duplicates; the history of every
validation stays in the GX JSON results (`result_path`).  The table is small (tens of
rows per table and day), so reading a day's rows back to the driver is bounded.

The table column is `table_name`, not `table`: TABLE is a reserved word in Spark SQL
(ANSI mode) and in Snowflake, and `PUBLISH_LOG` already says `table_name`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyspark.sql import functions as F
from pyspark.sql import types as T

if TYPE_CHECKING:
    from memberscore.lake import Commit, Lake
    from memberscore.quality.outcome import ValidationOutcome

RESULTS_TABLE = "validation_results"
PARTITION_BY = ("run_date", "table_name")

VALIDATION_RESULTS_SCHEMA = T.StructType([
    T.StructField("run_id", T.StringType(), False),
    T.StructField("run_date", T.DateType(), False),
    T.StructField("table_name", T.StringType(), False),
    T.StructField("suite", T.StringType(), False),
    T.StructField("expectation", T.StringType(), False),
    T.StructField("expectation_type", T.StringType(), False),
    T.StructField("column_names", T.StringType(), True),
    T.StructField("severity", T.StringType(), False),
    T.StructField("success", T.BooleanType(), False),
    T.StructField("observed_value", T.StringType(), True),
    T.StructField("expected", T.StringType(), True),
    T.StructField("unexpected_count", T.LongType(), True),
    T.StructField("element_count", T.LongType(), True),
    T.StructField("result_path", T.StringType(), False),
    T.StructField("validated_at", T.TimestampType(), False),
])


def write_outcome(lake: Lake, outcome: ValidationOutcome) -> Commit:
    """Replace the (run_date, table_name) rows of `validation_results` with `outcome`."""
    rows = [
        (outcome.run_id, outcome.run_date, outcome.table, outcome.suite, e.expectation,
         e.expectation_type, e.columns, e.severity, e.success, e.observed_value,
         e.expected, e.unexpected_count, e.element_count, str(outcome.result_path),
         outcome.validated_at)
        for e in outcome.expectations
    ]
    frame = lake.spark.createDataFrame(rows, VALIDATION_RESULTS_SCHEMA)
    return lake.replace_where(
        RESULTS_TABLE, frame,
        {"run_date": outcome.run_date, "table_name": outcome.table},
        partition_by=PARTITION_BY,
    )


@dataclass(frozen=True)
class RecordedExpectation:
    """A row of `validation_results`, read back."""

    run_id: str
    expectation: str
    severity: str
    success: bool
    observed_value: str | None
    expected: str | None
    result_path: str
    validated_at: dt.datetime


def read_recorded(lake: Lake, table: str, run_date: dt.date) -> list[RecordedExpectation]:
    """The recorded expectations of the latest validation of `table` on `run_date`
    (empty when it was never validated)."""
    if not lake.exists(RESULTS_TABLE):
        return []
    rows = (
        lake.read(RESULTS_TABLE)
        .where((F.col("run_date") == F.lit(run_date)) & (F.col("table_name") == F.lit(table)))
        .select("run_id", "expectation", "severity", "success", "observed_value",
                "expected", "result_path", "validated_at")
        .collect()
    )
    found = [RecordedExpectation(**row.asDict()) for row in rows]
    return sorted(found, key=lambda r: (r.severity, r.expectation))
