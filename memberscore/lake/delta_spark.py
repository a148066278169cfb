"""Delta tables through delta-spark: Databricks, or a Spark with Delta's jars.

Tables resolve to `catalog.schema.table` when the lake conf names a catalog and
schema (Unity Catalog), otherwise to folders `<root>/<table>`.  Spark does all the
work on the executors: nothing is collected.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
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

if TYPE_CHECKING:
    from delta.tables import DeltaTable
    from pyspark.sql import DataFrame, DataFrameWriter, SparkSession


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
        rows = df.count()
        writer = df.write.format("delta").mode("overwrite")
        if self.exists(table):
            writer = writer.option("replaceWhere", predicate)
        elif partition_by:
            writer = writer.partitionBy(*partition_by)
        self._save(table, writer)
        return Commit(table, self._current(table), rows, "replace_where")

    def append(self, table: str, df: DataFrame, partition_by: Sequence[str] = ()) -> Commit:
        rows = df.count()
        writer = df.write.format("delta").mode("append")
        if not self.exists(table) and partition_by:
            writer = writer.partitionBy(*partition_by)
        self._save(table, writer)
        return Commit(table, self._current(table), rows, "append")

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
        return Commit(table, self._current(table), df.count(), "merge")

    def _save(self, table: str, writer: DataFrameWriter) -> None:
        try:
            if self.namespace:
                writer.saveAsTable(self.location(table))
            else:
                writer.save(self.location(table))
        except Exception as exc:
            raise _translate(table, exc) from exc

    def _current(self, table: str) -> int:
        version = self.version(table)
        assert version is not None
        return version


def _translate(table: str, exc: Any) -> Exception:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "Concurrent" in text or "concurrent" in text:
        return TableConflictError(
            f"another writer committed to {table!r} first ({text}); nothing of this run "
            "was written: re-run the job"
        )
    if "replaceWhere" in text or "does not conform" in text.lower():
        return TableError(f"refusing rows for {table!r} outside the replaced partition: {text}")
    return TableError(f"writing {table!r} failed: {text}")
