"""The Delta tables that keep what the gate decided.

`validation_results`: one row per expectation of the latest validation of each
(run_date, table_name).  `validation_runs`: one row per latest validation of each
(run_date, table_name): its verdict and which rows it saw (`DayData`: row count, the
run ids and latest write time of the rows, and the Delta version of the table it
read).  The second table is what lets `require_passed` refuse a day whose rows were
rewritten after they were validated.

Why two tables rather than new columns on `validation_results`: the lake layer
commits a write only when its columns are exactly the table's (both backends: the
delta-rs lake refuses other columns, the delta-spark one writes without schema
merging), so a column added here would make every `validation_results` table written
before it unwritable.  A table of its own needs no migration, and a
`validation_results` written before it stays readable as it is.

Writing a validation replaces that day's rows for that table in both tables
(`replace_where` on the two partition columns, so re-validating never duplicates):
first the expectations, then the `validation_runs` row.  The run row is the commit
mark: a reader trusts the expectations only when both carry the same run id and
validation time, so an interrupted write (or a validation recorded before
`validation_runs` existed) reads as incomplete and is refused, never trusted.  The
history of every validation stays in the GX JSON results (`result_path`).  Both
tables are small (tens of rows per table and day), so reading a day's rows back to
the driver is bounded.

The table column is `table_name`, not `table`: TABLE is a reserved word in Spark SQL
(ANSI mode) and in Snowflake, and `PUBLISH_LOG` already says `table_name`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from pyspark.sql import functions as F
from pyspark.sql import types as T

from memberscore.quality.lineage import DayData, from_micros, to_micros
from memberscore.quality.outcome import ExpectationOutcome, ValidationOutcome

if TYPE_CHECKING:
    from memberscore.lake import Commit, Lake
    from memberscore.quality.suites import ValidatedTable

RESULTS_TABLE = "validation_results"
RUNS_TABLE = "validation_runs"
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

VALIDATION_RUNS_SCHEMA = T.StructType([
    T.StructField("run_id", T.StringType(), False),
    T.StructField("run_date", T.DateType(), False),
    T.StructField("table_name", T.StringType(), False),
    T.StructField("suite", T.StringType(), False),
    T.StructField("validated_at", T.TimestampType(), False),
    T.StructField("passed", T.BooleanType(), False),
    T.StructField("critical_failures", T.IntegerType(), False),
    T.StructField("warnings", T.IntegerType(), False),
    # the Delta version the validated rows were read at (null: the rows were handed
    # to the gate by the caller, or the table did not exist)
    T.StructField("table_version", T.LongType(), True),
    # DayData of the validated rows
    T.StructField("data_rows", T.LongType(), False),
    T.StructField("data_run_ids", T.LongType(), False),
    T.StructField("data_first_run_id", T.StringType(), True),
    T.StructField("data_last_run_id", T.StringType(), True),
    T.StructField("data_written_at", T.TimestampType(), True),
    T.StructField("result_path", T.StringType(), False),
    # the content fingerprint of the validated rows, as exact decimal text (null:
    # recorded before memberscore fingerprinted content; such a validation vouches
    # for no rows).  Last, so tables written without it gain it as a new column.
    T.StructField("data_content", T.StringType(), True),
])


def write_outcome(lake: Lake, outcome: ValidationOutcome) -> Commit:
    """Record `outcome`: replace the (run_date, table_name) rows of
    `validation_results`, then of `validation_runs` (the commit mark, see the module
    doc).  Returns the `validation_runs` commit."""
    if outcome.data is None:
        raise ValueError("a validation is recorded with the DayData of the rows it saw")
    rows = [
        (outcome.run_id, outcome.run_date, outcome.table, outcome.suite, e.expectation,
         e.expectation_type, e.columns, e.severity, e.success, e.observed_value,
         e.expected, e.unexpected_count, e.element_count, str(outcome.result_path),
         outcome.validated_at)
        for e in outcome.expectations
    ]
    where: dict[str, dt.date | str] = {"run_date": outcome.run_date,
                                       "table_name": outcome.table}
    lake.replace_rows(RESULTS_TABLE, rows, VALIDATION_RESULTS_SCHEMA, where,
                      partition_by=PARTITION_BY)
    data = outcome.data
    run = (outcome.run_id, outcome.run_date, outcome.table, outcome.suite,
           outcome.validated_at, outcome.passed, len(outcome.critical_failures),
           len(outcome.warnings), outcome.table_version, data.rows, data.run_ids,
           data.first_run_id, data.last_run_id, data.written_at, str(outcome.result_path),
           None if data.content is None else str(data.content))
    lake.add_missing_columns(RUNS_TABLE, VALIDATION_RUNS_SCHEMA)
    return lake.replace_rows(RUNS_TABLE, [run], VALIDATION_RUNS_SCHEMA, where,
                             partition_by=PARTITION_BY)


@dataclass(frozen=True)
class RunRecord:
    """The `validation_runs` row of a table and day, read back."""

    run_id: str
    validated_at: dt.datetime
    table_version: int | None
    data: DayData


@dataclass(frozen=True)
class RecordedValidation:
    """The latest recorded validation of a table and day.

    `outcome` is rebuilt from `validation_results` (expectations in suite order);
    `run` is the matching `validation_runs` row, None when there is none for the
    same validation (recorded before `validation_runs` existed, or a write
    interrupted between the two tables): then which rows were validated is unknown.
    """

    outcome: ValidationOutcome
    run: RunRecord | None


def _day(table: str, run_date: dt.date) -> F.Column:
    return (F.col("run_date") == F.lit(run_date)) & (F.col("table_name") == F.lit(table))


def read_validation(lake: Lake, spec: ValidatedTable, run_date: dt.date,
                    order: dict[str, int]) -> RecordedValidation | None:
    """The latest recorded validation of `spec`'s table on `run_date`, or None when
    it was never validated.  `order` (label -> position in the suite) sorts the
    expectations as the suite lists them."""
    if not lake.exists(RESULTS_TABLE):
        return None
    rows = (
        lake.read(RESULTS_TABLE).where(_day(spec.name, run_date))
        .select("run_id", "suite", "expectation", "expectation_type", "column_names",
                "severity", "success", "observed_value", "expected", "unexpected_count",
                "element_count", "result_path",
                F.unix_micros("validated_at").alias("validated_at_micros"))
        .collect()
    )
    if not rows:
        return None
    rows = sorted(rows, key=lambda r: (order.get(r["expectation"], len(order)),
                                       r["expectation"]))
    first = rows[0]
    validated_at = from_micros(int(first["validated_at_micros"]))
    assert validated_at is not None
    outcome = ValidationOutcome(
        table=spec.name, run_date=run_date, run_id=first["run_id"], suite=first["suite"],
        validated_at=validated_at,
        expectations=tuple(
            ExpectationOutcome(
                expectation=r["expectation"], expectation_type=r["expectation_type"],
                columns=r["column_names"], severity=r["severity"], success=r["success"],
                observed_value=r["observed_value"], unexpected_count=r["unexpected_count"],
                element_count=r["element_count"], expected=r["expected"])
            for r in rows),
        result_path=Path(first["result_path"]),
        producer_command=spec.producer_command(run_date),
    )
    run = _read_run(lake, spec.name, run_date)
    if run is not None and (run.run_id, to_micros(run.validated_at)) != \
            (outcome.run_id, to_micros(outcome.validated_at)):
        run = None  # the run row belongs to another validation: not this one's mark
    if run is not None:
        outcome = _with_run(outcome, run)
    return RecordedValidation(outcome, run)


def _with_run(outcome: ValidationOutcome, run: RunRecord) -> ValidationOutcome:
    return replace(outcome, data=run.data, table_version=run.table_version)


def _read_run(lake: Lake, table: str, run_date: dt.date) -> RunRecord | None:
    if not lake.exists(RUNS_TABLE):
        return None
    runs = lake.read(RUNS_TABLE)
    columns = set(runs.columns)
    row = (
        runs.where(_day(table, run_date))
        .select("run_id", F.unix_micros("validated_at").alias("validated_at_micros"),
                "table_version", "data_rows", "data_run_ids", "data_first_run_id",
                "data_last_run_id",
                F.unix_micros("data_written_at").alias("data_written_at_micros"),
                (F.col("data_content") if "data_content" in columns
                 else F.lit(None).cast("string")).alias("data_content"))
        .first()
    )
    if row is None:
        return None
    validated_at = from_micros(int(row["validated_at_micros"]))
    assert validated_at is not None
    written = row["data_written_at_micros"]
    return RunRecord(
        run_id=row["run_id"], validated_at=validated_at,
        table_version=None if row["table_version"] is None else int(row["table_version"]),
        data=DayData(rows=int(row["data_rows"]), run_ids=int(row["data_run_ids"]),
                     first_run_id=row["data_first_run_id"],
                     last_run_id=row["data_last_run_id"],
                     written_at_micros=None if written is None else int(written),
                     content=None if row["data_content"] is None else int(row["data_content"])),
    )
