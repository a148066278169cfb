"""The table I/O interface every job uses, whatever the backend.

A table is named logically (`member_features_daily`) and the backend resolves the
name to a location: a folder `<root>/<name>` locally, `catalog.schema.name` on
Databricks.  Jobs never see paths or Delta APIs.

Every write is one Delta commit, so a reader sees all of it or none of it:
- `replace_where` swaps the rows matching a filter on partition columns (Delta's
  replaceWhere; each column equals a value or lies in a `Between` range of days):
  re-running a day gives the same table, and a row of the new data outside the
  filter is refused rather than written;
- `merge` upserts on key columns;
- `append` adds rows.
A write that loses a race with another writer raises TableConflictError and leaves
the table as the other writer left it.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from memberscore.errors import TableError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

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


PartitionFilter = PartitionValue | Between


@dataclass(frozen=True)
class Commit:
    """What a write did: the table version it produced and the rows it wrote."""

    table: str
    version: int
    rows_written: int
    operation: str


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
        """Atomically replace the rows matching `where` (column = value, or column in a
        `Between` range; ANDed) with `df`.

        Creates the table (partitioned by `partition_by`) when it does not exist.  Every
        row of `df` must match `where`; an empty `df` deletes the matching rows.
        """

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

    # ----------------------------------------------------------------- shared helpers

    def read_or_empty(self, table: str, schema: StructType) -> DataFrame:
        """The table, or an empty frame of `schema` when it has never been written."""
        if self.exists(table):
            return self.read(table)
        return self.spark.createDataFrame([], schema)

    def _require(self, table: str) -> None:
        if not self.exists(table):
            raise TableError(
                f"table {table!r} does not exist at {self.location(table)}; "
                "run the job that produces it first"
            )


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
    for a `Between`); column names are checked."""
    if not where:
        raise TableError("replace_where needs at least one column = value condition")
    parts = []
    for column, value in where.items():
        validate_identifier(column)
        if isinstance(value, Between):
            parts.append(f"{column} >= {sql_literal(value.low)} AND "
                         f"{column} <= {sql_literal(value.high)}")
        else:
            parts.append(f"{column} = {sql_literal(value)}")
    return " AND ".join(parts)
