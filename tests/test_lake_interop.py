"""Delta written by one engine is read (and written on) by the other.

delta-spark is the engine the jobs run; delta-rs (`deltalake`) is what an analyst's
notebook, DuckDB or Polars would use on the same folders.  Both directions are
checked on values, not counts: partitions, decimal(18,2), dates, UTC timestamps,
nulls, time travel, history, checkpoints, and the protocol each side writes (no
table feature the other side cannot read).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from chispa import assert_df_equality
from deltalake import DeltaTable, write_deltalake
from pyspark.sql import SparkSession
from pyspark.sql import types as T

from memberscore.config import LakeSettings
from memberscore.lake import Lake, open_lake

UTC = dt.UTC
D1, D2 = dt.date(2026, 3, 30), dt.date(2026, 3, 31)
SCHEMA = T.StructType([
    T.StructField("member_id", T.StringType()),
    T.StructField("as_of_date", T.DateType()),
    T.StructField("amount", T.DecimalType(18, 2)),
    T.StructField("booked_at", T.TimestampType()),
    T.StructField("txn_count", T.LongType()),
])
ARROW_SCHEMA = pa.schema([
    ("member_id", pa.string()),
    ("as_of_date", pa.date32()),
    ("amount", pa.decimal128(18, 2)),
    ("booked_at", pa.timestamp("us", tz="UTC")),
    ("txn_count", pa.int64()),
])
# Table features neither side may write: the other side (or an older reader) could
# not read them, or they change what a file's columns mean.
FORBIDDEN_FEATURES = {"deletionVectors", "columnMapping", "timestampNtz", "v2Checkpoint",
                      "typeWidening", "rowTracking"}


def _rows(day: dt.date, tag: str = "") -> list[tuple]:
    """Three rows of a day: the extreme decimal, a micro-second timestamp, all nulls."""
    return [
        (f"m1{tag}", day, Decimal("-1234567890123456.78"),
         dt.datetime(2026, 3, 29, 23, 59, 59, 999999, tzinfo=UTC), 3),
        (f"m2{tag}", day, Decimal("0.01"), dt.datetime(2026, 1, 1, 0, 0, tzinfo=UTC), 0),
        (f"m3{tag}", day, None, None, None),
    ]


def _spark_lake(spark: SparkSession, tmp_path: Path) -> Lake:
    return open_lake(LakeSettings(backend="delta-spark", catalog=None, schema=None,
                                  root=None), spark, tmp_path)


def _arrow_rows(table: pa.Table) -> list[tuple]:
    """Rows sorted by member and day, as Python values (timestamps UTC-aware)."""
    data = table.select(ARROW_SCHEMA.names).to_pylist()
    return sorted((tuple(r[c] for c in ARROW_SCHEMA.names) for r in data),
                  key=lambda r: (r[0], r[1]))


def _assert_readable_protocol(delta: DeltaTable) -> None:
    protocol = delta.protocol()
    features = set(protocol.reader_features or []) | set(protocol.writer_features or [])
    assert protocol.min_reader_version <= 3, protocol
    assert not features & FORBIDDEN_FEATURES, features


def test_delta_spark_tables_read_exactly_in_delta_rs(spark: SparkSession,
                                                       tmp_path: Path) -> None:
    lake = _spark_lake(spark, tmp_path)
    frame = spark.createDataFrame(_rows(D1), SCHEMA)
    lake.replace_where("interop", frame, {"as_of_date": D1}, ["as_of_date"])       # v0
    lake.append("interop", spark.createDataFrame(_rows(D2), SCHEMA))                # v1
    replaced = spark.createDataFrame(_rows(D1, "x"), SCHEMA)
    lake.replace_where("interop", replaced, {"as_of_date": D1})                     # v2

    delta = DeltaTable(lake.location("interop"))
    assert delta.version() == 2
    assert delta.metadata().partition_columns == ["as_of_date"]
    assert pa.schema(delta.schema().to_arrow()) == ARROW_SCHEMA
    assert _arrow_rows(delta.to_pyarrow_table()) == sorted(_rows(D1, "x") + _rows(D2))
    # the partition filter of a reader prunes by the partition value
    assert _arrow_rows(delta.to_pyarrow_table(partitions=[("as_of_date", "=", "2026-03-31")])) \
        == sorted(_rows(D2))
    # time travel and history, as delta-spark recorded them
    delta.load_as_version(0)
    assert _arrow_rows(delta.to_pyarrow_table()) == sorted(_rows(D1))
    operations = [h["operation"] for h in DeltaTable(lake.location("interop")).history()]
    assert operations == ["WRITE", "WRITE", "WRITE"]
    assert "Delta-Lake" in DeltaTable(lake.location("interop")).history(1)[0]["engineInfo"]
    _assert_readable_protocol(DeltaTable(lake.location("interop")))


def test_delta_spark_checkpoints_read_in_delta_rs(spark: SparkSession,
                                                   tmp_path: Path) -> None:
    """Past ten commits delta-spark writes a Parquet checkpoint; delta-rs starts from it."""
    lake = _spark_lake(spark, tmp_path)
    days = [D1 + dt.timedelta(days=i) for i in range(11)]
    for day in days:
        lake.replace_rows("interop", _rows(day), SCHEMA, {"as_of_date": day}, ["as_of_date"])
    log = Path(lake.location("interop")) / "_delta_log"
    assert (log / f"{10:020d}.checkpoint.parquet").exists()
    delta = DeltaTable(lake.location("interop"))
    assert delta.version() == 10
    assert _arrow_rows(delta.to_pyarrow_table()) == sorted(r for d in days for r in _rows(d))
    _assert_readable_protocol(delta)


def test_delta_spark_merge_leaves_no_deletion_vectors(spark: SparkSession,
                                                      tmp_path: Path) -> None:
    lake = _spark_lake(spark, tmp_path)
    lake.replace_where("interop", spark.createDataFrame(_rows(D1), SCHEMA),
                       {"as_of_date": D1}, ["as_of_date"])
    update = [("m2", D1, Decimal("9.99"), None, 7)]
    lake.merge("interop", spark.createDataFrame(update, SCHEMA), ["member_id", "as_of_date"])
    delta = DeltaTable(lake.location("interop"))
    _assert_readable_protocol(delta)
    rows = _arrow_rows(delta.to_pyarrow_table())
    assert rows[1] == ("m2", D1, Decimal("9.99"), None, 7)
    assert rows[0] == _rows(D1)[0] and rows[2] == _rows(D1)[2]


def test_delta_rs_tables_are_read_and_written_by_delta_spark(spark: SparkSession,
                                                            tmp_path: Path) -> None:
    path = tmp_path / "lake" / "interop"
    first = pa.Table.from_pylist([dict(zip(ARROW_SCHEMA.names, r, strict=True))
                                  for r in _rows(D1) + _rows(D2)], schema=ARROW_SCHEMA)
    write_deltalake(str(path), first, partition_by=["as_of_date"])                 # v0
    second = pa.Table.from_pylist([dict(zip(ARROW_SCHEMA.names, r, strict=True))
                                   for r in _rows(D2, "y")], schema=ARROW_SCHEMA)
    write_deltalake(str(path), second, mode="overwrite",
                    predicate="as_of_date = '2026-03-31'")                          # v1
    _assert_readable_protocol(DeltaTable(str(path)))

    lake = _spark_lake(spark, tmp_path)
    expected = spark.createDataFrame(_rows(D1) + _rows(D2, "y"), SCHEMA)
    assert_df_equality(lake.read("interop"), expected, ignore_row_order=True)
    assert_df_equality(lake.read("interop", version=0),
                       spark.createDataFrame(_rows(D1) + _rows(D2), SCHEMA),
                       ignore_row_order=True)
    assert [h.version for h in lake.history("interop")] == [1, 0]

    # delta-spark writes on: replace a partition delta-rs wrote, then append a day
    lake.replace_where("interop", spark.createDataFrame(_rows(D1, "z"), SCHEMA),
                       {"as_of_date": D1})                                          # v2
    d3 = D2 + dt.timedelta(days=1)
    lake.append("interop", spark.createDataFrame(_rows(d3), SCHEMA))               # v3
    final = _rows(D1, "z") + _rows(D2, "y") + _rows(d3)
    assert_df_equality(lake.read("interop"), spark.createDataFrame(final, SCHEMA),
                       ignore_row_order=True)
    delta = DeltaTable(str(path))
    assert delta.version() == 3
    assert _arrow_rows(delta.to_pyarrow_table()) == sorted(final)
    assert delta.metadata().partition_columns == ["as_of_date"]
    _assert_readable_protocol(delta)


@pytest.mark.parametrize("writer", ["delta-spark", "delta-rs"])
def test_timestamps_are_utc_instants_on_both_sides(writer: str, spark: SparkSession,
                                                   tmp_path: Path) -> None:
    """An instant written by one side is the same instant on the other (no session
    time zone or INT96 shift), at micro-second precision."""
    instant = dt.datetime(2026, 3, 29, 23, 59, 59, 999999, tzinfo=UTC)
    rows = [("m1", D1, Decimal("1.00"), instant, 1)]
    lake = _spark_lake(spark, tmp_path)
    if writer == "delta-spark":
        lake.replace_rows("interop", rows, SCHEMA, {"as_of_date": D1}, ["as_of_date"])
        column = DeltaTable(lake.location("interop")).to_pyarrow_table()["booked_at"]
        assert column.type == pa.timestamp("us", tz="UTC")
        assert column.to_pylist() == [instant]
    else:
        table = pa.Table.from_pylist([dict(zip(ARROW_SCHEMA.names, r, strict=True))
                                      for r in rows], schema=ARROW_SCHEMA)
        write_deltalake(lake.location("interop"), table, partition_by=["as_of_date"])
        (row,) = lake.read("interop").collect()
        assert row["booked_at"].astimezone(UTC) == instant
