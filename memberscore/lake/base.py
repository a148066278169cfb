"""The table I/O interface every job uses, whatever the backend.

A table is named logically (`member_features_daily`) and the backend resolves the
name to a location: a folder `<root>/<name>` locally, `catalog.schema.name` on
Databricks.  Jobs never see paths or Delta APIs.

Every write is one Delta commit, so a reader sees all of it or none of it:
- `replace_where` swaps the rows matching a filter on partition columns (Delta's
  replaceWhere; each column equals a value, lies in a `Between` range of days, or is
  `OneOf` a set of values):
  re-running a day gives the same table, and a row of the new data outside the
  filter is refused rather than written;
- `merge` upserts on key columns;
- `append` adds rows.
A write that loses a race with another writer raises TableConflictError and leaves
the table as the other writer left it.

`export_partition` writes one partition of one version as Parquet files, for loading
elsewhere (the Snowflake publish): in Spark by default, without Spark on delta-rs.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import secrets
import shutil
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memberscore.errors import TableError
from memberscore.spark import release

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession
    from pyspark.sql.types import StructField, StructType

PartitionValue = str | int | dt.date | bool | Decimal


@dataclass(frozen=True)
class Between:
    """A closed range of partition values for `replace_where`: low <= column <= high
    (e.g. the landing days of a multi-day ingest)."""

    low: dt.date
    high: dt.date

    def __post_init__(self) -> None:
        if self.low > self.high:
            raise TableError(f"empty partition range {self.low}..{self.high}")

    def contains(self, value: dt.date) -> bool:
        return self.low <= value <= self.high


@dataclass(frozen=True)
class OneOf:
    """A set of partition values for `replace_where`: column IN (values) (e.g. the
    snapshot days a backfill builds, which need not be consecutive)."""

    values: tuple[PartitionValue, ...]

    def __post_init__(self) -> None:
        if not self.values:
            raise TableError("empty set of partition values")


def partition_matches(within: PartitionFilter, value: Any) -> bool:
    """Whether a partition value satisfies a filter of its column (as `where` does)."""
    if isinstance(within, Between):
        return value is not None and within.contains(value)
    if isinstance(within, OneOf):
        return value in within.values
    return bool(value == within)


PartitionFilter = PartitionValue | Between | OneOf


@dataclass(frozen=True)
class Commit:
    """What a write did: the table version it produced and the rows it wrote."""

    table: str
    version: int
    rows_written: int
    operation: str


EXPORT_ROWS_PER_FILE = 1_000_000


@dataclass(frozen=True)
class PartitionExport:
    """What `export_partition` wrote: the version read, its rows and files, and the
    table's schema at that version (column order and types of the files)."""

    table: str
    version: int
    rows: int
    files: tuple[Path, ...]
    schema: StructType


@dataclass(frozen=True)
class HistoryEntry:
    """One version of a table, newest first in `Lake.history`."""

    version: int
    timestamp: dt.datetime
    operation: str
    parameters: Mapping[str, Any]


class Lake(ABC):
    """Read and write Delta tables by logical name."""

    backend: str

    def __init__(self, spark: SparkSession) -> None:
        self.spark = spark
        self._columns_checked: set[str] = set()  # see add_missing_columns

    @abstractmethod
    def location(self, table: str) -> str:
        """Where `table` lives: a path or a three-part name."""

    @abstractmethod
    def exists(self, table: str) -> bool:
        """True when the table has been created."""

    @abstractmethod
    def read(self, table: str, version: int | None = None) -> DataFrame:
        """The table (at `version`, when given) as a lazy Spark DataFrame."""

    @abstractmethod
    def replace_where(
        self,
        table: str,
        df: DataFrame,
        where: Mapping[str, PartitionFilter],
        partition_by: Sequence[str] = (),
    ) -> Commit:
        """Atomically replace the rows matching `where` (column = value, column in a
        `Between` range, or `OneOf` a set; ANDed) with `df`.

        Creates the table (partitioned by `partition_by`) when it does not exist.  Every
        row of `df` must match `where`; an empty `df` deletes the matching rows.
        """

    def replace_rows(
        self,
        table: str,
        rows: Sequence[Sequence[Any]],
        schema: StructType,
        where: Mapping[str, PartitionFilter],
        partition_by: Sequence[str] = (),
    ) -> Commit:
        """`replace_where` for a few rows held in Python (tuples in `schema`'s column
        order): run metadata such as validation results.  This default builds a Spark
        frame; the delta-rs backend commits them without Spark (docs/lake.md has
        the figures)."""
        return self.replace_where(table, self.spark.createDataFrame(list(rows), schema),
                                  where, partition_by)

    def append_rows(
        self,
        table: str,
        rows: Sequence[Sequence[Any]],
        schema: StructType,
        partition_by: Sequence[str] = (),
    ) -> Commit:
        """`append` for a few rows held in Python, as `replace_rows`."""
        return self.append(table, self.spark.createDataFrame(list(rows), schema), partition_by)

    def replace_partitions(
        self,
        table: str,
        df: DataFrame,
        column: str,
        values: Sequence[PartitionValue],
        partition_by: Sequence[str] = (),
    ) -> list[Commit]:
        """Replace the rows with `column` in `values` by the rows of `df`, in one
        atomic commit (`replace_where` with `OneOf(values)`); return one Commit per
        value, in order, each with that commit's version and the value's rows.  A
        value without rows in `df` empties its rows.  `df` must not hold other values
        of `column` (TableError, before anything is written).

        One commit for the lot: a 30-day backfill chunk paid Delta's commit, its
        snapshot update and the replaceWhere file filtering 30 times when each day
        had its own commit (1-2 s a day locally).  This default caches `df` and
        counts its rows per value (the check for other values); the delta-rs backend
        brings `df` to the driver once."""
        from pyspark.sql import functions as F

        validate_identifier(column)
        if column not in df.columns:
            raise TableError(f"replace_partitions column {column!r} is not in the data")
        values = list(values)
        cached = df.persist()
        try:
            counts = {r[0]: int(r[1]) for r in
                      cached.groupBy(F.col(column)).count().collect()}
            outside = sum(n for value, n in counts.items() if value not in values)
            if outside:
                raise TableError(_outside_message(table, outside, column, values))
            commit = self.replace_where(table, cached, {column: OneOf(tuple(values))},
                                        partition_by)
        finally:
            release(cached)
        return [Commit(table, commit.version, counts.get(value, 0), commit.operation)
                for value in values]

    @abstractmethod
    def merge(
        self,
        table: str,
        df: DataFrame,
        keys: Sequence[str],
        partition_by: Sequence[str] = (),
    ) -> Commit:
        """Upsert `df` on `keys`: update rows whose keys match, insert the others."""

    @abstractmethod
    def append(self, table: str, df: DataFrame, partition_by: Sequence[str] = ()) -> Commit:
        """Add the rows of `df` to the table (creating it when missing)."""

    @abstractmethod
    def version(self, table: str) -> int | None:
        """The current version, or None when the table does not exist."""

    @abstractmethod
    def history(self, table: str, limit: int | None = None) -> list[HistoryEntry]:
        """The table's commits, newest first."""

    @abstractmethod
    def _add_columns(self, table: str, fields: Sequence[StructField]) -> None:
        """Add nullable `fields` at the end of `table`'s schema (one commit)."""

    # ----------------------------------------------------------------- shared helpers

    def add_missing_columns(self, table: str, schema: StructType) -> None:
        """Give an existing `table` the columns of `schema` it lacks, at the end (how a
        table written by an older memberscore gains a new nullable column; its rows
        read null there).  Nothing when the table does not exist or has them all.
        Checked once per table and Lake."""
        if table in self._columns_checked or not self.exists(table):
            return
        have = set(self.read(table).columns)
        missing = [f for f in schema.fields if f.name not in have]
        if any(not f.nullable for f in missing):
            raise TableError(
                f"{self.location(table)} lacks the required column(s) "
                f"{', '.join(f.name for f in missing if not f.nullable)}: it was written by "
                "another program or an older memberscore; move it aside and re-run")
        if missing:
            self._add_columns(table, missing)
        self._columns_checked.add(table)

    def read_or_empty(self, table: str, schema: StructType) -> DataFrame:
        """The table, or an empty frame of `schema` when it has never been written."""
        if self.exists(table):
            return self.read(table)
        return self.spark.createDataFrame([], schema)

    def count_rows(self, table: str, where: Mapping[str, PartitionFilter],
                   version: int | None = None) -> int:
        """The number of rows of `table` (at `version`, default the current one)
        matching `where` (as in `replace_where`).  This default counts in Spark; the
        delta-rs backend answers from the Delta log's per-file row counts when `where`
        names only partition columns, without reading data."""
        self._require(table)
        frame = self.read(table, version=version)
        return int(frame.where(_spark_condition(table, frame.columns, where)).count())

    def counts_by(self, table: str, column: str, version: int | None = None,
                  within: PartitionFilter | None = None) -> dict[Any, int]:
        """Rows per value of `column` (a partition column, typically the day) of
        `table` at `version` (default the current one): {value: rows}, without values
        that have no rows; with `within`, only the values it admits (a partition
        filter: only those partitions are read).  This default counts in Spark; the
        delta-rs backend answers from the Delta log's per-file row counts, without
        reading data."""
        self._require(table)
        frame = self.read(table, version=version)
        require_column(table, frame.columns, column)
        if within is not None:
            frame = frame.where(_spark_condition(table, frame.columns, {column: within}))
        return {row[0]: int(row[1]) for row in frame.groupBy(column).count().collect()}

    def export_partition(self, table: str, where: Mapping[str, PartitionFilter],
                         folder: Path, *, version: int | None = None,
                         rows_per_file: int = EXPORT_ROWS_PER_FILE) -> PartitionExport:
        """Write the rows of `table` matching `where` (as in `replace_where`), at `version`
        (default: the current one, which the result records), as Parquet files
        `part-*.parquet` in `folder`, which is replaced.  No rows: no files.

        The files hold the table's columns in its order with its types: decimals stay
        decimals, dates dates, and timestamps are INT64 TIMESTAMP_MICROS adjusted to UTC
        (never Spark's legacy INT96).  `folder` must be readable by this process (the
        publisher PUTs the files from it).  This default runs in Spark (delta-spark,
        Databricks); the delta-rs backend exports without Spark.
        """
        from pyspark.sql import Observation
        from pyspark.sql import functions as F

        self._require(table)
        pinned = self.version(table) if version is None else version
        assert pinned is not None
        frame = self.read(table, version=pinned)
        condition = _spark_condition(table, frame.columns, where)
        folder = Path(folder)
        shutil.rmtree(folder, ignore_errors=True)
        folder.parent.mkdir(parents=True, exist_ok=True)
        observation = Observation(f"export_{table}_{secrets.token_hex(4)}")
        with _parquet_timestamps_as_micros(self.spark):
            (frame.where(condition)
             .observe(observation, F.count(F.lit(1)).alias("rows"))
             .write.mode("overwrite")
             .option("maxRecordsPerFile", rows_per_file)
             .parquet(str(folder)))
        rows = int(observation.get["rows"])
        files = tuple(sorted(folder.glob("part-*.parquet")))
        if rows == 0:  # Spark writes one file with the schema and no rows
            for path in files:
                path.unlink()
            files = ()
        return PartitionExport(table, pinned, rows, files, frame.schema)

    def _require(self, table: str) -> None:
        if not self.exists(table):
            raise TableError(
                f"table {table!r} does not exist at {self.location(table)}; "
                "run the job that produces it first"
            )


def _outside_message(table: str, rows: int, column: str,
                     values: Sequence[PartitionValue]) -> str:
    shown = ", ".join(str(v) for v in values[:5]) + (", ..." if len(values) > 5 else "")
    return (f"refusing to write {rows} row(s) to {table!r} whose {column} is not one of "
            f"the {len(values)} value(s) being replaced ({shown}); nothing was written")


def require_column(table: str, columns: Sequence[str], column: str) -> None:
    """A TableError naming the table's columns when `column` is not one of them."""
    if column not in columns:
        raise TableError(f"table {table!r} has no column {column!r} "
                         f"(columns: {', '.join(columns)})")


def _spark_condition(table: str, columns: Sequence[str],
                     where: Mapping[str, PartitionFilter]) -> Column:
    """The Spark filter for `where` (column = value, in a `Between`, or `OneOf` a set;
    ANDed)."""
    from pyspark.sql import functions as F

    if not where:
        raise TableError(f"selecting rows of {table!r} needs at least one column = value "
                         "condition")
    condition = None
    for column, value in where.items():
        validate_identifier(column)
        require_column(table, columns, column)
        if isinstance(value, Between):
            part = F.col(column).between(F.lit(value.low), F.lit(value.high))
        elif isinstance(value, OneOf):
            part = F.col(column).isin([F.lit(v) for v in value.values])
        else:
            part = F.col(column) == F.lit(value)
        condition = part if condition is None else condition & part
    assert condition is not None
    return condition


def _parquet_timestamps_as_micros(spark: SparkSession) -> contextlib.AbstractContextManager[None]:
    """Spark writes timestamps as legacy INT96 by default; Snowflake and DuckDB read
    TIMESTAMP_MICROS (UTC-adjusted) as instants without guessing."""
    from memberscore.spark import session_conf

    return session_conf(spark, "spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")


def validate_identifier(table: str) -> str:
    """Table and column names are lower_snake_case identifiers; anything else is refused."""
    if not table or not table.replace("_", "a").isalnum() or not table.islower() \
            or table[0].isdigit():
        raise TableError(
            f"invalid table name {table!r}: expected lower_snake_case like "
            "'member_features_daily'"
        )
    return table


def sql_literal(value: PartitionValue) -> str:
    """A SQL literal for a partition value (values are typed, never free text)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, Decimal)):
        return str(value)
    if isinstance(value, dt.datetime):
        raise TableError("timestamps are not partition values; partition by a date")
    if isinstance(value, dt.date):
        return f"'{value.isoformat()}'"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise TableError(f"unsupported partition value {value!r} ({type(value).__name__})")


def where_sql(where: Mapping[str, PartitionFilter]) -> str:
    """`a = 1 AND b = '2024-01-01'` for an equality filter (`b >= '...' AND b <= '...'`
    for a `Between`, `b IN ('...', '...')` for a `OneOf`); column names are checked."""
    if not where:
        raise TableError("replace_where needs at least one column = value condition")
    parts = []
    for column, value in where.items():
        validate_identifier(column)
        if isinstance(value, Between):
            parts.append(f"{column} >= {sql_literal(value.low)} AND "
                         f"{column} <= {sql_literal(value.high)}")
        elif isinstance(value, OneOf):
            parts.append(f"{column} IN ({', '.join(sql_literal(v) for v in value.values)})")
        else:
            parts.append(f"{column} = {sql_literal(value)}")
    return " AND ".join(parts)
