"""Delta tables through delta-spark: Databricks, or a Spark with Delta's jars.

Tables resolve to `catalog.schema.table` when the lake conf names a catalog and
schema (Unity Catalog), otherwise to folders `<root>/<table>`.  Spark does all the
work on the executors: nothing is collected.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memberscore.errors import TableConflictError, TableError
from memberscore.lake.base import (
    Commit,
    HistoryEntry,
    Lake,
    PartitionFilter,
    validate_identifier,
    where_sql,
)

LAST_COMMIT_VERSION = "spark.databricks.delta.lastCommitVersionInSession"

if TYPE_CHECKING:
    from delta.tables import DeltaTable
    from pyspark.sql import DataFrame, DataFrameWriter, SparkSession
    from pyspark.sql.types import StructField


class DeltaSparkLake(Lake):
    """Delta tables read and written natively by Spark."""

    backend = "delta-spark"

    def __init__(self, spark: SparkSession, root: Path | None, catalog: str | None,
                 schema: str | None) -> None:
        super().__init__(spark)
        if (catalog is None) != (schema is None):
            raise TableError("lake.catalog and lake.schema must be set together (or neither)")
        if root is None and catalog is None:
            raise TableError("the delta-spark lake needs lake.root or lake.catalog/lake.schema")
        self.root = Path(root) if root is not None else None
        self.namespace = f"{catalog}.{schema}" if catalog and schema else None

    def location(self, table: str) -> str:
        validate_identifier(table)
        if self.namespace:
            return f"{self.namespace}.{table}"
        assert self.root is not None
        return str(self.root / table)

    def _delta(self, table: str) -> DeltaTable:
        from delta.tables import DeltaTable

        self._require(table)
        if self.namespace:
            return DeltaTable.forName(self.spark, self.location(table))
        return DeltaTable.forPath(self.spark, self.location(table))

    def _add_columns(self, table: str, fields: Sequence[StructField]) -> None:
        target = (self.location(table) if self.namespace
                  else f"delta.`{self.location(table).replace('`', '``')}`")
        columns = ", ".join(f"`{f.name}` {f.dataType.simpleString()}" for f in fields)
        self.spark.sql(f"ALTER TABLE {target} ADD COLUMNS ({columns})")

    def exists(self, table: str) -> bool:
        from delta.tables import DeltaTable

        if self.namespace:
            return bool(self.spark.catalog.tableExists(self.location(table)))
        return bool(DeltaTable.isDeltaTable(self.spark, self.location(table)))

    def read(self, table: str, version: int | None = None) -> DataFrame:
        self._require(table)
        reader = self.spark.read.format("delta")
        if version is not None:
            current = self.version(table)
            if current is None or version > current or version < 0:
                raise TableError(
                    f"table {table!r} has no version {version} (versions 0..{current} exist)"
                )
            reader = reader.option("versionAsOf", version)
        if self.namespace:
            return reader.table(self.location(table))
        return reader.load(self.location(table))

    def version(self, table: str) -> int | None:
        if not self.exists(table):
            return None
        if self.namespace is None:
            # The log's newest version, read by Delta without a Spark job (history(1)
            # runs one: 0.15-0.3 s a call locally, and jobs ask for versions often).
            jvm: Any = self.spark._jvm  # type: ignore[attr-defined]
            none = getattr(getattr(jvm.scala, "None$"), "MODULE$")
            log = jvm.org.apache.spark.sql.delta.DeltaLog.forTable(
                self.spark._jsparkSession, self.location(table))  # type: ignore[attr-defined]
            return int(log.update(False, none, none).version())
        row = self._delta(table).history(1).select("version").first()
        return int(row[0]) if row else None

    def history(self, table: str, limit: int | None = None) -> list[HistoryEntry]:
        frame = self._delta(table).history(limit) if limit else self._delta(table).history()
        rows = frame.select("version", "timestamp", "operation", "operationParameters").collect()
        return [
            HistoryEntry(
                version=int(r["version"]),
                timestamp=r["timestamp"].replace(tzinfo=dt.UTC),
                operation=str(r["operation"]),
                parameters=dict(r["operationParameters"] or {}),
            )
            for r in rows
        ]

    # ------------------------------------------------------------------ writes

    def replace_where(self, table: str, df: DataFrame, where: Mapping[str, PartitionFilter],
                      partition_by: Sequence[str] = ()) -> Commit:
        predicate = where_sql(where)
        observed, rows = _counted(_one_file_per_partition(df, partition_by))
        writer = observed.write.format("delta").mode("overwrite")
        if self.exists(table):
            writer = writer.option("replaceWhere", predicate)
        elif partition_by:
            writer = writer.partitionBy(*partition_by)
        self._save(table, writer, df.columns)
        return Commit(table, self._committed(), rows(), "replace_where")

    def append(self, table: str, df: DataFrame, partition_by: Sequence[str] = ()) -> Commit:
        observed, rows = _counted(_one_file_per_partition(df, partition_by))
        writer = observed.write.format("delta").mode("append")
        if not self.exists(table) and partition_by:
            writer = writer.partitionBy(*partition_by)
        self._save(table, writer, df.columns)
        return Commit(table, self._committed(), rows(), "append")

    def merge(self, table: str, df: DataFrame, keys: Sequence[str],
              partition_by: Sequence[str] = ()) -> Commit:
        from pyspark.sql import functions as F

        if not keys:
            raise TableError("merge needs at least one key column")
        dupes = df.groupBy(*keys).count().filter(F.col("count") > 1).limit(1).count()
        if dupes:
            raise TableError(
                f"merge into {table!r}: the data has duplicated keys on {list(keys)}; "
                "deduplicate the source first, nothing was written"
            )
        if not self.exists(table):
            return self.append(table, df, partition_by)
        condition = " AND ".join(f"t.{validate_identifier(k)} = s.{k}" for k in keys)
        try:
            (
                self._delta(table).alias("t").merge(df.alias("s"), condition)
                .whenMatchedUpdateAll().whenNotMatchedInsertAll().execute()
            )
        except Exception as exc:
            raise _translate(table, exc) from exc
        return Commit(table, self._committed(), df.count(), "merge")

    def _save(self, table: str, writer: DataFrameWriter, columns: Sequence[str]) -> None:
        try:
            if self.namespace:
                writer.saveAsTable(self.location(table))
            else:
                writer.save(self.location(table))
        except Exception as exc:
            raise _translate(table, exc, columns, lambda: self.read(table).columns) from exc

    def _committed(self) -> int:
        """The version this session's last commit produced (Delta records it in the
        session conf): no read of the table's history.  A session writes from one
        thread at a time in every job."""
        return int(str(self.spark.conf.get(LAST_COMMIT_VERSION)))


def _one_file_per_partition(df: DataFrame, partition_by: Sequence[str]) -> DataFrame:
    """`df` with each partition's rows in one task, so a write makes one file per
    partition value instead of one per (task, value).  Each file costs a Parquet
    writer and Delta's statistics whatever its size: a 159-day history ingest wrote
    ~640 files per table without this, and every later read of those days opened
    them all."""
    return df.repartition(*partition_by) if partition_by else df


def _counted(df: DataFrame) -> tuple[DataFrame, Callable[[], int]]:
    """`df` observed with a row count that the write itself computes (no second
    pass over `df`, which a `count()` before the write would be), and the function
    that reads the count once the write has run."""
    from pyspark.sql import Observation
    from pyspark.sql import functions as F

    observation = Observation(f"rows_{secrets.token_hex(4)}")
    observed = df.observe(observation, F.count(F.lit(1)).alias("rows"))
    return observed, lambda: int(observation.get.get("rows", 0))


CONFLICTS = ("Concurrent", "MetadataChanged", "ProtocolChanged")


def _java_errors(exc: BaseException) -> list[tuple[str, str]]:
    """(class name, first message line) of the Java exception behind `exc` and of its
    causes; for an error PySpark already converted, its own class and text."""
    found: list[tuple[str, str]] = []
    java = getattr(exc, "java_exception", None)
    while java is not None and len(found) < 10:
        message = str(java.getMessage() or "")
        found.append((str(java.getClass().getName()), message.splitlines()[0] if message
                      else ""))
        java = java.getCause()
    if not found:
        text = str(exc)
        found.append((type(exc).__name__, text.splitlines()[0] if text else ""))
    return found


def _translate(table: str, exc: BaseException, columns: Sequence[str] = (),
               table_columns: Callable[[], Sequence[str]] | None = None) -> Exception:
    """A one-line TableError (or TableConflictError) for a failed write."""
    errors = _java_errors(exc)
    name, text = next(((n, t) for n, t in errors if t), errors[0])
    if any(word in n for n, _ in errors for word in CONFLICTS):
        return TableConflictError(
            f"another writer committed to {table!r} first ({name.rsplit('.', 1)[-1]}: "
            f"{text}); nothing of this run was written: re-run the job"
        )
    if "replaceWhere" in text or "does not conform" in text.lower():
        return TableError(f"refusing rows for {table!r} outside the replaced partition: {text}")
    if "schema mismatch" in text.lower() and table_columns is not None:
        expected = list(table_columns())
        missing = [c for c in expected if c not in columns]
        unexpected = [c for c in columns if c not in expected]
        return TableError(
            f"refusing rows for {table!r}: their columns are not the table's (missing "
            f"{', '.join(missing) or 'none'}; not in the table {', '.join(unexpected) or 'none'}"
            f"; the table has {', '.join(expected)}); nothing was written"
        )
    # Spark's advice to turn ANSI mode off would trade the error for silent nulls
    text = re.sub(r'\s*If necessary set "spark\.sql\.ansi\.enabled"[^.]*\.', "", text)
    return TableError(f"writing {table!r} failed, nothing was written: {' '.join(text.split())} "
                      "(re-run with --verbose for Spark's stack trace)")
