"""Delta tables on the local file system through delta-rs (the `deltalake` package).

Used where Spark has no Delta jars (laptops and CI without Maven access).  Reads stay
in Spark: delta-rs lists the Parquet files of the requested version and Spark reads
them itself, with the declared schema, so nothing is collected to the driver.
`export_partition` needs no Spark: delta-rs picks the version's files of the
partition, pyarrow filters the rows and writes them, a batch at a time.  Writes
convert the Spark frame to Arrow on the driver and commit it with delta-rs; one
write is one Delta commit with optimistic concurrency, so a lost race raises
TableConflictError and writes nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from memberscore.errors import TableConflictError, TableError
from memberscore.lake.base import (
    EXPORT_ROWS_PER_FILE,
    Between,
    Commit,
    HistoryEntry,
    Lake,
    OneOf,
    PartitionExport,
    PartitionFilter,
    PartitionValue,
    _outside_message,
    partition_matches,
    require_column,
    validate_identifier,
    where_sql,
)
from memberscore.schemas import quoted

if TYPE_CHECKING:
    from deltalake import DeltaTable
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructField, StructType

log = logging.getLogger(__name__)


class DeltaRsLake(Lake):
    """Delta tables as folders `<root>/<table>`, written by delta-rs, read by Spark."""

    backend = "delta-rs"

    def __init__(self, spark: SparkSession, root: Path) -> None:
        super().__init__(spark)
        self.root = Path(root)

    # ------------------------------------------------------------------ resolution

    def location(self, table: str) -> str:
        return str(self.root / validate_identifier(table))

    def exists(self, table: str) -> bool:
        from deltalake import DeltaTable

        return DeltaTable.is_deltatable(self.location(table))

    def _add_columns(self, table: str, fields: Sequence[StructField]) -> None:
        from deltalake.schema import Field, PrimitiveType

        self._table(table).alter.add_columns(
            [Field(f.name, PrimitiveType(f.dataType.simpleString()), nullable=True)
             for f in fields])

    def _table(self, table: str, version: int | None = None) -> DeltaTable:
        from deltalake import DeltaTable

        self._require(table)
        try:
            return DeltaTable(self.location(table), version=version)
        except Exception as exc:
            if version is not None:
                current = DeltaTable(self.location(table)).version()
                raise TableError(
                    f"table {table!r} has no version {version} (versions 0..{current} exist)"
                ) from exc
            raise TableError(f"cannot open table {table!r} at {self.location(table)}: {exc}") \
                from exc

    # ------------------------------------------------------------------ reads

    def read(self, table: str, version: int | None = None) -> DataFrame:
        from pyspark.sql.pandas.types import from_arrow_schema

        delta = self._table(table, version)
        arrow_schema = pa.schema(delta.schema().to_arrow())
        spark_schema = from_arrow_schema(arrow_schema)
        files = delta.file_uris()
        if not files:
            return self.spark.createDataFrame([], spark_schema)
        frame = (
            self.spark.read.schema(spark_schema)
            .option("basePath", self.location(table))
            .parquet(*files)
        )
        # the table's column order (Spark appends partition columns)
        return frame.selectExpr(*[quoted(name) for name in arrow_schema.names])

    def version(self, table: str) -> int | None:
        if not self.exists(table):
            return None
        return int(self._table(table).version())

    def history(self, table: str, limit: int | None = None) -> list[HistoryEntry]:
        entries = self._table(table).history(limit)
        return [
            HistoryEntry(
                version=int(e["version"]),
                timestamp=dt.datetime.fromtimestamp(e["timestamp"] / 1000, tz=dt.UTC),
                operation=str(e.get("operation", "")),
                parameters=dict(e.get("operationParameters") or {}),
            )
            for e in entries
        ]

    def count_rows(self, table: str, where: Mapping[str, PartitionFilter],
                   version: int | None = None) -> int:
        """See `Lake.count_rows`: the sum of `num_records` of the version's files in the
        matching partitions (delta-rs records it for every file it writes); Spark
        counts when `where` names a non-partition column or a file has no count."""
        delta = self._table(table, version)
        partitions = set(delta.metadata().partition_columns)
        if where and set(where) <= partitions:
            adds = _counted_files(delta)
            if adds is not None and adds.num_rows == 0:
                return 0
            if adds is not None:
                matching = adds.filter(_partition_mask(adds, where))
                return int(pc.sum(matching.column("num_records")).as_py() or 0)
        return super().count_rows(table, where, version)

    def counts_by(self, table: str, column: str, version: int | None = None,
                  within: PartitionFilter | None = None) -> dict[Any, int]:
        """See `Lake.counts_by`: for a partition column, the sums of `num_records` of
        the version's files per partition value, from the Delta log; Spark counts for
        any other column, or when a file has no count or a deletion vector."""
        delta = self._table(table, version)
        if column in delta.metadata().partition_columns:
            adds = _counted_files(delta)
            if adds is not None and adds.num_rows == 0:
                return {}
            if adds is not None:
                counts: dict[Any, int] = {}
                for value, rows in zip(adds.column(f"partition.{column}").to_pylist(),
                                       adds.column("num_records").to_pylist(), strict=True):
                    counts[value] = counts.get(value, 0) + int(rows)
                return {value: rows for value, rows in counts.items()
                        if rows > 0 and (within is None or partition_matches(within, value))}
        return super().counts_by(table, column, version, within)

    def export_partition(self, table: str, where: Mapping[str, PartitionFilter],
                         folder: Path, *, version: int | None = None,
                         rows_per_file: int = EXPORT_ROWS_PER_FILE) -> PartitionExport:
        """See `Lake.export_partition`; here without Spark.  delta-rs lists the files of
        the version that can hold `where` (exact on partition columns), pyarrow reads
        only those, keeps the matching rows and streams them to Parquet."""
        import pyarrow.dataset as ds
        from pyspark.sql.pandas.types import from_arrow_schema

        delta = self._table(table, version)
        pinned = int(delta.version())
        schema = pa.schema(delta.schema().to_arrow())
        condition = _arrow_condition(table, schema, where)
        try:
            dataset = delta.to_pyarrow_dataset(file_pruning_predicate=where_sql(where))
        except Exception as exc:  # e.g. a reader feature pyarrow datasets lack
            raise TableError(f"cannot export {table!r} version {pinned} with delta-rs: "
                             f"{str(exc).splitlines()[0] if str(exc) else exc!r}") from exc
        folder = Path(folder)
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        written: list[Any] = []
        ds.write_dataset(
            dataset.scanner(filter=condition), folder, format="parquet",
            basename_template="part-{i}.parquet",
            max_rows_per_file=rows_per_file,
            max_rows_per_group=min(rows_per_file, 1 << 20),
            file_options=ds.ParquetFileFormat().make_write_options(
                coerce_timestamps="us", allow_truncated_timestamps=False),
            file_visitor=written.append,
            existing_data_behavior="overwrite_or_ignore",
        )
        rows = sum(int(w.metadata.num_rows) for w in written)
        files = tuple(sorted(Path(w.path) for w in written))
        return PartitionExport(table, pinned, rows, files, from_arrow_schema(schema))

    # ------------------------------------------------------------------ writes

    def replace_where(
        self,
        table: str,
        df: DataFrame,
        where: Mapping[str, PartitionFilter],
        partition_by: Sequence[str] = (),
    ) -> Commit:
        return self._replace(table, self._to_arrow(table, df), where, partition_by)

    def replace_rows(
        self,
        table: str,
        rows: Sequence[Sequence[Any]],
        schema: StructType,
        where: Mapping[str, PartitionFilter],
        partition_by: Sequence[str] = (),
    ) -> Commit:
        return self._replace(table, self._rows_to_arrow(table, rows, schema), where,
                             partition_by)

    def append_rows(
        self,
        table: str,
        rows: Sequence[Sequence[Any]],
        schema: StructType,
        partition_by: Sequence[str] = (),
    ) -> Commit:
        return self._append(table, self._rows_to_arrow(table, rows, schema), partition_by)

    def _replace(self, table: str, data: pa.Table, where: Mapping[str, PartitionFilter],
                 partition_by: Sequence[str]) -> Commit:
        predicate = where_sql(where)
        outside = _rows_outside(data, where)
        if outside:
            raise TableError(
                f"refusing to write {outside} row(s) to {table!r} that do not match "
                f"{predicate}; nothing was written"
            )
        if not self.exists(table):
            return self._create(table, data, partition_by, "replace_where")
        return self._commit(table, data, "replace_where", mode="overwrite", predicate=predicate)

    def replace_partitions(
        self,
        table: str,
        df: DataFrame,
        column: str,
        values: Sequence[PartitionValue],
        partition_by: Sequence[str] = (),
    ) -> list[Commit]:
        """See `Lake.replace_partitions`: one Spark action brings the rows to the
        driver, one delta-rs commit replaces the values."""
        validate_identifier(column)
        values = list(values)
        data = self._to_arrow(table, df)
        if column not in data.column_names:
            raise TableError(f"replace_partitions column {column!r} is not in the data")
        keys = data[column]
        inside = pc.fill_null(pc.is_in(keys, value_set=pa.array(values, type=keys.type)),
                              False)
        outside = data.num_rows - int(pc.sum(pc.cast(inside, pa.int64())).as_py() or 0)
        if outside:
            raise TableError(_outside_message(table, outside, column, values))
        per_value = data.group_by([column]).aggregate([([], "count_all")])
        counts = dict(zip(per_value[column].to_pylist(),
                          per_value["count_all"].to_pylist(), strict=True))
        commit = self._replace(table, data, {column: OneOf(tuple(values))}, partition_by)
        return [Commit(table, commit.version, counts.get(value, 0), commit.operation)
                for value in values]

    def append(self, table: str, df: DataFrame, partition_by: Sequence[str] = ()) -> Commit:
        return self._append(table, self._to_arrow(table, df), partition_by)

    def _append(self, table: str, data: pa.Table, partition_by: Sequence[str]) -> Commit:
        if not self.exists(table):
            return self._create(table, data, partition_by, "append")
        return self._commit(table, data, "append", mode="append")

    def merge(
        self,
        table: str,
        df: DataFrame,
        keys: Sequence[str],
        partition_by: Sequence[str] = (),
    ) -> Commit:
        if not keys:
            raise TableError("merge needs at least one key column")
        data = self._to_arrow(table, df)
        missing = [k for k in keys if k not in data.column_names]
        if missing:
            raise TableError(f"merge into {table!r}: key column(s) {missing} not in the data")
        duplicated = _duplicate_keys(data, keys)
        if duplicated:
            raise TableError(
                f"merge into {table!r}: the data has {duplicated} duplicated key(s) on "
                f"{list(keys)}; deduplicate the source first, nothing was written"
            )
        if not self.exists(table):
            return self._create(table, data, partition_by, "merge")
        predicate = " AND ".join(f"t.{validate_identifier(k)} = s.{k}" for k in keys)
        delta = self._table(table)
        try:
            (
                delta.merge(source=data, predicate=predicate, source_alias="s", target_alias="t")
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .execute()
            )
        except Exception as exc:
            raise _translate(table, exc) from exc
        return Commit(table, int(delta.version()), data.num_rows, "merge")

    # ------------------------------------------------------------------ internals

    def _to_arrow(self, table: str, df: DataFrame) -> pa.Table:
        """The frame as Arrow, cast to the existing table's schema when there is one."""
        return self._conform(table, df.toArrow())

    def _rows_to_arrow(self, table: str, rows: Sequence[Sequence[Any]],
                       schema: StructType) -> pa.Table:
        """Python rows (tuples in `schema`'s order) as Arrow, as `_to_arrow` would."""
        from pyspark.sql.pandas.types import to_arrow_schema

        arrow_schema = to_arrow_schema(schema)
        names = arrow_schema.names
        for i, row in enumerate(rows):
            if len(row) != len(names):
                raise TableError(f"row {i} for {table!r} has {len(row)} values for "
                                 f"{len(names)} columns {names}; nothing was written")
        try:
            data = pa.Table.from_pylist([dict(zip(names, row, strict=True)) for row in rows],
                                        schema=arrow_schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise TableError(f"rows for {table!r} do not fit its schema: {exc}; nothing "
                             "was written") from exc
        return self._conform(table, data)

    def _conform(self, table: str, data: pa.Table) -> pa.Table:
        """`data` with nullable columns, in the existing table's order and types."""
        data = data.cast(_nullable(data.schema))
        if not self.exists(table):
            return data
        target = pa.schema(self._table(table).schema().to_arrow())
        if set(target.names) != set(data.column_names):
            missing = sorted(set(target.names) - set(data.column_names))
            extra = sorted(set(data.column_names) - set(target.names))
            raise TableError(
                f"data for {table!r} does not match the table's columns: "
                f"missing {missing}, unexpected {extra}; nothing was written"
            )
        data = data.select(target.names)
        try:
            return data.cast(_nullable(target))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            found = {f.name: str(f.type) for f in data.schema}
            expected = {f.name: str(f.type) for f in target}
            diff = {k: f"{found[k]} (table has {v})" for k, v in expected.items()
                    if found[k] != v}
            raise TableError(f"data for {table!r} has other types than the table: {diff}") \
                from exc

    def _create(self, table: str, data: pa.Table, partition_by: Sequence[str],
                operation: str) -> Commit:
        from deltalake import write_deltalake

        for column in partition_by:
            if column not in data.column_names:
                raise TableError(f"partition column {column!r} is not in the data for {table!r}")
        Path(self.location(table)).parent.mkdir(parents=True, exist_ok=True)
        try:
            write_deltalake(self.location(table), data, mode="error",
                            partition_by=list(partition_by) or None)
        except Exception as exc:
            raise _translate(table, exc) from exc
        log.info("created table %s at %s", table, self.location(table))
        return Commit(table, 0, data.num_rows, operation)

    def _commit(self, table: str, data: pa.Table, operation: str, **kwargs: Any) -> Commit:
        return self._write(self._table(table), table, data, operation, **kwargs)

    @staticmethod
    def _write(delta: DeltaTable, table: str, data: pa.Table, operation: str,
               **kwargs: Any) -> Commit:
        from deltalake import write_deltalake

        try:
            write_deltalake(delta, data, **kwargs)
        except Exception as exc:
            raise _translate(table, exc) from exc
        return Commit(table, int(delta.version()), data.num_rows, operation)


def _arrow_condition(table: str, schema: pa.Schema,
                     where: Mapping[str, PartitionFilter]) -> pc.Expression:
    """The pyarrow filter for `where` (column = value, in a `Between`, or `OneOf` a
    set; ANDed)."""
    if not where:
        raise TableError(f"exporting {table!r} needs at least one column = value condition")
    condition = None
    for column, value in where.items():
        validate_identifier(column)
        require_column(table, schema.names, column)
        kind = schema.field(column).type
        field = pc.field(column)
        if isinstance(value, Between):
            part = (field >= pa.scalar(value.low, kind)) & (field <= pa.scalar(value.high, kind))
        elif isinstance(value, OneOf):
            part = field.isin(pa.array(value.values, type=kind))
        else:
            part = field == pa.scalar(value, kind)
        condition = part if condition is None else condition & part
    assert condition is not None
    return condition


def _nullable(schema: pa.Schema) -> pa.Schema:
    """Tables hold nullable columns; not-null rules live in the expectation suites."""
    return pa.schema([f.with_nullable(True) for f in schema])


def _rows_outside(data: pa.Table, where: Mapping[str, PartitionFilter]) -> int:
    if data.num_rows == 0:
        return 0
    inside = None
    for column, value in where.items():
        if column not in data.column_names:
            raise TableError(f"replace_where column {column!r} is not in the data")
        values = data[column]
        if isinstance(value, Between):
            match = pc.and_(pc.greater_equal(values, pa.scalar(value.low, values.type)),
                            pc.less_equal(values, pa.scalar(value.high, values.type)))
        elif isinstance(value, OneOf):
            match = pc.is_in(values, value_set=pa.array(value.values, type=values.type))
        else:
            match = pc.equal(values, pa.scalar(value, values.type))
        match = pc.fill_null(match, False)
        inside = match if inside is None else pc.and_(inside, match)
    return data.num_rows - int(pc.sum(pc.cast(inside, pa.int64())).as_py() or 0)


def _duplicate_keys(data: pa.Table, keys: Sequence[str]) -> int:
    if data.num_rows == 0:
        return 0
    counts = data.group_by(list(keys)).aggregate([([], "count_all")])
    return int(pc.sum(pc.greater(counts["count_all"], 1)).as_py() or 0)


def _translate(table: str, exc: Exception) -> Exception:
    name = type(exc).__name__
    text = str(exc).splitlines()[0] if str(exc) else name
    if name == "CommitFailedError" or "concurrent" in text.lower():
        return TableConflictError(
            f"another writer committed to {table!r} first ({text}); nothing of this run "
            "was written: re-run the job"
        )
    return TableError(f"writing {table!r} failed: {text}")


def _counted_files(delta: DeltaTable) -> pa.Table | None:
    """The version's add actions (flattened) when their `num_records` give the exact
    row counts: every file has one and none has a deletion vector (which would hide
    rows num_records still counts); else None."""
    adds = pa.table(delta.get_add_actions(flatten=True))
    if adds.num_rows == 0:
        return adds
    if "num_records" not in adds.column_names or adds.column("num_records").null_count:
        return None
    deletions = [c for c in adds.column_names if c.startswith("deletion_vector")]
    if any(adds.column(c).null_count < adds.num_rows for c in deletions):
        return None
    return adds


def _partition_mask(adds: pa.Table, where: Mapping[str, PartitionFilter]) -> pa.Array:
    """Which add actions (flattened, `partition.<column>` typed) lie in partitions
    matching `where`; a null partition value matches nothing."""
    mask = None
    for column, value in where.items():
        values = adds.column(f"partition.{column}")
        if isinstance(value, Between):
            low, high = (pa.scalar(v, type=values.type) for v in (value.low, value.high))
            part = pc.and_(pc.greater_equal(values, low), pc.less_equal(values, high))
        elif isinstance(value, OneOf):
            part = pc.is_in(values, value_set=pa.array(value.values, type=values.type))
        else:
            part = pc.equal(values, pa.scalar(value, type=values.type))
        part = pc.fill_null(part, False)
        mask = part if mask is None else pc.and_(mask, part)
    assert mask is not None
    return mask
