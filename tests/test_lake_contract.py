"""The table I/O contract, run against every backend: delta-spark (the engine of
every environment; its jars come with `make install`, so it never skips here) and
delta-rs, plus Lake's Spark defaults over delta-rs tables.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from memberscore.config import LakeSettings
from memberscore.errors import TableConflictError, TableError
from memberscore.lake import Between, Lake, OneOf, open_lake
from memberscore.lake.base import PartitionExport
from memberscore.lake.delta_rs import DeltaRsLake

SCHEMA = T.StructType([
    T.StructField("member_id", T.StringType()),
    T.StructField("as_of_date", T.DateType()),
    T.StructField("amount", T.DecimalType(18, 2)),
    T.StructField("booked_at", T.TimestampType()),
    T.StructField("txn_count", T.LongType()),
])
D1, D2 = dt.date(2026, 3, 30), dt.date(2026, 3, 31)
UTC = dt.UTC


def _rows(day: dt.date, tag: str = "") -> list[tuple]:
    return [
        (f"m1{tag}", day, Decimal("-1234567890123456.78"),
         dt.datetime(2026, 3, 29, 23, 59, 59, 999999, tzinfo=UTC), 3),
        (f"m2{tag}", day, Decimal("0.01"), dt.datetime(2026, 1, 1, 0, 0, tzinfo=UTC), 0),
        (f"m3{tag}", day, None, None, None),
    ]


class SparkDefaultsLake(DeltaRsLake):
    """delta-rs tables handled by Lake's Spark defaults (what the delta-spark backend
    runs for these operations), so those code paths are tested here too."""

    export_partition = Lake.export_partition
    count_rows = Lake.count_rows
    counts_by = Lake.counts_by
    replace_partitions = Lake.replace_partitions
    replace_rows = Lake.replace_rows
    append_rows = Lake.append_rows


def open_backend(param: str, spark: SparkSession, tmp_path: Path) -> Lake:
    """A lake of backend `param` ("spark-default": `SparkDefaultsLake`)."""
    if param == "spark-default":
        return SparkDefaultsLake(spark, tmp_path / "lake")
    settings = LakeSettings(backend=param, catalog=None, schema=None, root=None)
    return open_lake(settings, spark, tmp_path)


@pytest.fixture(params=["delta-rs", "delta-spark"])
def lake(request: pytest.FixtureRequest, spark: SparkSession, tmp_path: Path) -> Lake:
    return open_backend(request.param, spark, tmp_path)


@pytest.fixture(params=["delta-rs", "delta-spark", "spark-default"])
def any_lake(request: pytest.FixtureRequest, spark: SparkSession, tmp_path: Path) -> Lake:
    """The backends, plus Lake's Spark defaults over delta-rs tables."""
    return open_backend(request.param, spark, tmp_path)


def frame(spark: SparkSession, rows: list[tuple]) -> DataFrame:
    return spark.createDataFrame(rows, SCHEMA)


def collected(df: DataFrame) -> list[tuple]:
    return sorted((tuple(r) for r in df.collect()), key=lambda r: (str(r[1]), r[0]))


def test_missing_table(lake: Lake) -> None:
    assert not lake.exists("member_features_daily")
    assert lake.version("member_features_daily") is None
    with pytest.raises(TableError, match="does not exist"):
        lake.read("member_features_daily")


def test_types_round_trip_exactly(lake: Lake, spark: SparkSession) -> None:
    lake.replace_where("t", frame(spark, _rows(D1)), {"as_of_date": D1}, ["as_of_date"])
    back = lake.read("t")
    assert [f.name for f in back.schema] == [f.name for f in SCHEMA]
    assert {f.name: f.dataType for f in back.schema} == {f.name: f.dataType for f in SCHEMA}
    assert collected(back) == collected(frame(spark, _rows(D1)))


def test_replace_partition_twice_gives_same_rows(lake: Lake, spark: SparkSession) -> None:
    first = lake.replace_where("t", frame(spark, _rows(D1)), {"as_of_date": D1}, ["as_of_date"])
    lake.replace_where("t", frame(spark, _rows(D2)), {"as_of_date": D2}, ["as_of_date"])
    after_once = collected(lake.read("t"))
    again = lake.replace_where("t", frame(spark, _rows(D1)), {"as_of_date": D1})
    assert collected(lake.read("t")) == after_once
    assert len(after_once) == 6
    assert (first.version, again.version) == (0, 2)
    assert again.rows_written == 3


def test_replace_only_touches_its_partition(lake: Lake, spark: SparkSession) -> None:
    lake.replace_where("t", frame(spark, _rows(D1)), {"as_of_date": D1}, ["as_of_date"])
    lake.replace_where("t", frame(spark, _rows(D2)), {"as_of_date": D2})
    lake.replace_where("t", frame(spark, _rows(D2, "x")[:1]), {"as_of_date": D2})
    rows = collected(lake.read("t"))
    assert [r[0] for r in rows if r[1] == D1] == ["m1", "m2", "m3"]
    assert [r[0] for r in rows if r[1] == D2] == ["m1x"]


def test_replace_with_no_rows_empties_the_partition(lake: Lake, spark: SparkSession) -> None:
    lake.replace_where("t", frame(spark, _rows(D1)), {"as_of_date": D1}, ["as_of_date"])
    lake.replace_where("t", frame(spark, _rows(D2)), {"as_of_date": D2})
    lake.replace_where("t", frame(spark, []), {"as_of_date": D1})
    assert {r[1] for r in collected(lake.read("t"))} == {D2}


def test_replace_a_range_of_days_in_one_commit(lake: Lake, spark: SparkSession) -> None:
    day0, day3 = D1 - dt.timedelta(days=1), D2 + dt.timedelta(days=1)
    for day in (day0, D1, D2, day3):
        lake.replace_where("t", frame(spark, _rows(day)), {"as_of_date": day}, ["as_of_date"])
    before = lake.version("t")
    # D1..D2 replaced by one new row on D1 (D2 emptied); the days around it untouched
    commit = lake.replace_where("t", frame(spark, _rows(D1, "r")[:1]),
                                {"as_of_date": Between(D1, D2)})
    assert commit.version == before + 1
    rows = collected(lake.read("t"))
    assert sorted((r[1], r[0]) for r in rows if D1 <= r[1] <= D2) == [(D1, "m1r")]
    assert sum(1 for r in rows if r[1] in (day0, day3)) == 6
    with pytest.raises(TableError, match=r"outside|do not match|conform"):
        lake.replace_where("t", frame(spark, _rows(day3)), {"as_of_date": Between(D1, D2)})
    assert lake.version("t") == before + 1


def test_an_unpartitioned_table_replaces_its_days_by_the_filter(lake: Lake,
                                                                spark: SparkSession) -> None:
    """Small tables (quarantine, the members feed) are not partitioned: a day is
    replaced by the filter on the data column, the other days kept, and a row of
    another day refused."""
    day3 = D2 + dt.timedelta(days=1)
    lake.replace_where("t", frame(spark, _rows(D1) + _rows(D2) + _rows(day3)),
                       {"as_of_date": Between(D1, day3)})
    lake.replace_where("t", frame(spark, _rows(D2, "n")[:1]), {"as_of_date": D2})
    lake.replace_where("t", frame(spark, []), {"as_of_date": day3})
    rows = collected(lake.read("t"))
    assert [(r[1], r[0]) for r in rows] == [(D1, "m1"), (D1, "m2"), (D1, "m3"), (D2, "m1n")]
    before = lake.version("t")
    with pytest.raises(TableError, match=r"outside|do not match|conform"):
        lake.replace_where("t", frame(spark, _rows(D1, "z")), {"as_of_date": D2})
    assert lake.version("t") == before
    assert lake.count_rows("t", {"as_of_date": D1}) == 3


def test_rows_outside_the_partition_are_refused(lake: Lake, spark: SparkSession) -> None:
    lake.replace_where("t", frame(spark, _rows(D1)), {"as_of_date": D1}, ["as_of_date"])
    before = lake.version("t")
    with pytest.raises(TableError, match=r"outside|do not match|conform"):
        lake.replace_where("t", frame(spark, _rows(D1) + _rows(D2, "y")), {"as_of_date": D1})
    assert lake.version("t") == before
    assert len(collected(lake.read("t"))) == 3


def test_merge_upserts_on_keys(lake: Lake, spark: SparkSession) -> None:
    lake.merge("t", frame(spark, _rows(D1)), keys=["member_id", "as_of_date"])
    update = [("m2", D1, Decimal("99.99"), None, 7), ("m4", D1, Decimal("1.00"), None, 1)]
    commit = lake.merge("t", frame(spark, update), keys=["member_id", "as_of_date"])
    rows = {r[0]: r for r in collected(lake.read("t"))}
    assert sorted(rows) == ["m1", "m2", "m3", "m4"]
    assert rows["m2"][2] == Decimal("99.99") and rows["m2"][4] == 7
    assert rows["m1"][2] == Decimal("-1234567890123456.78")
    assert commit.version == 1 and commit.operation == "merge"


def test_merge_refuses_duplicate_source_keys(lake: Lake, spark: SparkSession) -> None:
    lake.merge("t", frame(spark, _rows(D1)), keys=["member_id"])
    dupes = [("m9", D1, None, None, 1), ("m9", D1, None, None, 2)]
    with pytest.raises(TableError, match="duplicated key"):
        lake.merge("t", frame(spark, dupes), keys=["member_id"])
    assert lake.version("t") == 0


def test_append_and_time_travel(lake: Lake, spark: SparkSession) -> None:
    lake.append("t", frame(spark, _rows(D1)), ["as_of_date"])
    lake.append("t", frame(spark, _rows(D2)))
    lake.replace_where("t", frame(spark, []), {"as_of_date": D1})
    assert lake.version("t") == 2
    assert len(collected(lake.read("t", version=0))) == 3
    assert len(collected(lake.read("t", version=1))) == 6
    assert {r[1] for r in collected(lake.read("t"))} == {D2}
    with pytest.raises(TableError, match="no version 7"):
        lake.read("t", version=7)


def test_history_is_newest_first(lake: Lake, spark: SparkSession) -> None:
    lake.append("t", frame(spark, _rows(D1)), ["as_of_date"])
    lake.replace_where("t", frame(spark, _rows(D1)), {"as_of_date": D1})
    history = lake.history("t")
    assert [h.version for h in history] == [1, 0]
    assert history[0].timestamp.tzinfo is not None
    assert len(lake.history("t", limit=1)) == 1


def test_write_with_other_columns_is_refused(lake: Lake, spark: SparkSession) -> None:
    lake.append("t", frame(spark, _rows(D1)), ["as_of_date"])
    other = frame(spark, _rows(D1)).withColumnRenamed("amount", "amt")
    with pytest.raises(TableError, match="amount"):
        lake.append("t", other)
    assert lake.version("t") == 0


def test_read_is_lazy_file_scan(lake: Lake, spark: SparkSession) -> None:
    """Reading must let Spark scan the files, not ship collected rows from the driver."""
    lake.append("t", frame(spark, _rows(D1)), ["as_of_date"])
    plan = lake.read("t")._jdf.queryExecution().executedPlan().toString()
    assert "FileScan" in plan or "Scan parquet" in plan or "PhotonScan" in plan, plan
    assert "LocalTableScan" not in plan


def test_bad_names_are_refused(lake: Lake, spark: SparkSession) -> None:
    with pytest.raises(TableError, match="invalid table name"):
        lake.append("../escape", frame(spark, _rows(D1)))
    with pytest.raises(TableError, match="invalid table name"):
        lake.replace_where("t", frame(spark, _rows(D1)), {"as_of_date; drop": D1})


def test_concurrent_writers_conflict_cleanly(lake: Lake, spark: SparkSession) -> None:
    """Writers racing on one partition: each either commits whole or gets
    TableConflictError; the table always holds exactly one writer's rows."""
    lake.replace_where("t", frame(spark, _rows(D1, "init")), {"as_of_date": D1},
                       ["as_of_date"])
    payloads = {f"w{i}": frame(spark, _rows(D1, f"w{i}")) for i in range(4)}
    for df in payloads.values():
        df.cache().count()
    conflicts: list[Exception] = []
    for _round in range(10):
        barrier = threading.Barrier(len(payloads))
        outcome: dict[str, str] = {}

        def write(tag: str, df: DataFrame, barrier: threading.Barrier = barrier,
                  outcome: dict[str, str] = outcome) -> None:
            barrier.wait()
            try:
                lake.replace_where("t", df, {"as_of_date": D1})
                outcome[tag] = "ok"
            except TableConflictError as exc:
                conflicts.append(exc)
                outcome[tag] = "conflict"

        threads = [threading.Thread(target=write, args=(t, d)) for t, d in payloads.items()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert set(outcome.values()) <= {"ok", "conflict"} and len(outcome) == 4
        assert "ok" in outcome.values()
        ids = {r[0] for r in lake.read("t").collect()}
        writers = {i[2:] for i in ids}
        assert len(ids) == 3 and len(writers) == 1, ids  # one writer's rows, whole
        assert writers <= {outcome_tag for outcome_tag, o in outcome.items() if o == "ok"}
        if conflicts:
            break
    assert conflicts, "no conflict observed in 10 rounds of 4 racing writers"
    message = str(conflicts[0])
    assert "another writer committed to 't' first" in message
    assert "re-run" in message


# ------------------------------------------------------------------ export_partition


def _exported(export: PartitionExport) -> list[tuple]:
    rows = pa.concat_tables([pq.read_table(f) for f in export.files]).to_pylist()
    return sorted((tuple(r.values()) for r in rows), key=lambda r: (str(r[1]), r[0]))


def test_export_writes_one_partition_with_exact_types(any_lake: Lake, spark: SparkSession,
                                                      tmp_path: Path) -> None:
    lake = any_lake
    lake.replace_where("t", frame(spark, _rows(D1)), {"as_of_date": D1}, ["as_of_date"])
    lake.replace_where("t", frame(spark, _rows(D2, "y")), {"as_of_date": D2})
    export = lake.export_partition("t", {"as_of_date": D1}, tmp_path / "out")
    assert (export.table, export.version, export.rows) == ("t", 1, 3)
    assert export.files and all(f.parent == tmp_path / "out" and f.name.startswith("part-")
                                and f.suffix == ".parquet" for f in export.files)
    assert [(f.name, f.dataType) for f in export.schema] == [(f.name, f.dataType) for f in SCHEMA]
    parquet = pq.ParquetFile(export.files[0])
    assert parquet.schema_arrow.names == [f.name for f in SCHEMA]
    assert [str(t) for t in parquet.schema_arrow.types] == [
        "string", "date32[day]", "decimal128(18, 2)", "timestamp[us, tz=UTC]", "int64"]
    booked_at = parquet.schema.column(3)
    assert booked_at.physical_type == "INT64"  # never Spark's legacy INT96
    logical = json.loads(booked_at.logical_type.to_json())
    assert (logical["Type"], logical["isAdjustedToUTC"], logical["timeUnit"]) == (
        "Timestamp", True, "microseconds")
    assert _exported(export) == _rows(D1)  # exact decimals, the last microsecond, nulls


def test_export_reads_the_pinned_version_and_replaces_the_folder(
        any_lake: Lake, spark: SparkSession, tmp_path: Path) -> None:
    lake = any_lake
    lake.replace_where("t", frame(spark, _rows(D1)), {"as_of_date": D1}, ["as_of_date"])
    lake.replace_where("t", frame(spark, _rows(D1, "x")[:1]), {"as_of_date": D1})
    old = lake.export_partition("t", {"as_of_date": D1}, tmp_path / "out", version=0)
    assert (old.version, old.rows, [r[0] for r in _exported(old)]) == (0, 3, ["m1", "m2", "m3"])
    new = lake.export_partition("t", {"as_of_date": D1}, tmp_path / "out")
    assert (new.version, new.rows, [r[0] for r in _exported(new)]) == (1, 1, ["m1x"])
    assert sorted((tmp_path / "out").glob("*.parquet")) == list(new.files)


def test_export_of_a_range_and_of_an_empty_partition(any_lake: Lake, spark: SparkSession,
                                                     tmp_path: Path) -> None:
    lake = any_lake
    lake.replace_where("t", frame(spark, _rows(D1) + _rows(D2, "y")),
                       {"as_of_date": Between(D1, D2)}, ["as_of_date"])
    both = lake.export_partition("t", {"as_of_date": Between(D1, D2)}, tmp_path / "both")
    assert both.rows == 6 and len(_exported(both)) == 6
    empty = lake.export_partition("t", {"as_of_date": dt.date(2026, 4, 1)}, tmp_path / "none")
    assert (empty.rows, empty.files) == (0, ())
    assert not list((tmp_path / "none").glob("*.parquet"))


def test_export_refuses_unknown_columns_and_tables(any_lake: Lake, spark: SparkSession,
                                                   tmp_path: Path) -> None:
    lake = any_lake
    with pytest.raises(TableError, match="does not exist"):
        lake.export_partition("t", {"as_of_date": D1}, tmp_path / "out")
    lake.replace_where("t", frame(spark, _rows(D1)), {"as_of_date": D1}, ["as_of_date"])
    with pytest.raises(TableError, match="has no column 'day'"):
        lake.export_partition("t", {"day": D1}, tmp_path / "out")


# ------------------------------------------------------------------ count_rows


def test_count_rows_of_partitions_ranges_and_versions(any_lake: Lake,
                                                      spark: SparkSession) -> None:
    lake = any_lake
    with pytest.raises(TableError, match="does not exist"):
        lake.count_rows("t", {"as_of_date": D1})
    lake.replace_where("t", frame(spark, _rows(D1)), {"as_of_date": D1}, ["as_of_date"])
    lake.append("t", frame(spark, _rows(D1, "b")[:2]))  # a second file in D1
    lake.replace_where("t", frame(spark, _rows(D2, "y")[:1]), {"as_of_date": D2})
    assert lake.count_rows("t", {"as_of_date": D1}) == 5
    assert lake.count_rows("t", {"as_of_date": D2}) == 1
    assert lake.count_rows("t", {"as_of_date": Between(D1, D2)}) == 6
    assert lake.count_rows("t", {"as_of_date": dt.date(2026, 4, 1)}) == 0
    assert lake.count_rows("t", {"as_of_date": D1}, version=0) == 3
    assert lake.count_rows("t", {"as_of_date": D2}, version=1) == 0
    if type(lake) is DeltaRsLake:  # from the Delta log alone: no Spark session needed
        assert DeltaRsLake(None, lake.root).count_rows(  # type: ignore[arg-type]
            "t", {"as_of_date": Between(D1, D2)}) == 6
    # a non-partition column is counted from the rows
    assert lake.count_rows("t", {"as_of_date": D1, "member_id": "m2b"}) == 1
    lake.replace_where("t", frame(spark, []), {"as_of_date": D1})
    assert lake.count_rows("t", {"as_of_date": D1}) == 0
    with pytest.raises(TableError, match="has no column 'day'"):
        lake.count_rows("t", {"day": D1})


def test_counts_by_gives_rows_per_partition_value_at_a_version(any_lake: Lake,
                                                                 spark: SparkSession) -> None:
    lake = any_lake
    with pytest.raises(TableError, match="does not exist"):
        lake.counts_by("t", "as_of_date")
    lake.replace_where("t", frame(spark, _rows(D1)), {"as_of_date": D1}, ["as_of_date"])
    lake.append("t", frame(spark, _rows(D1, "b")[:2]))  # a second file in D1
    lake.replace_where("t", frame(spark, _rows(D2, "y")[:1]), {"as_of_date": D2})
    assert lake.counts_by("t", "as_of_date") == {D1: 5, D2: 1}
    assert lake.counts_by("t", "as_of_date", version=0) == {D1: 3}
    # only the partitions a filter of the column admits
    assert lake.counts_by("t", "as_of_date", within=OneOf((D2,))) == {D2: 1}
    assert lake.counts_by("t", "as_of_date", within=Between(D1, D1)) == {D1: 5}
    assert lake.counts_by("t", "as_of_date", within=D2 + dt.timedelta(days=1)) == {}
    assert lake.counts_by("t", "as_of_date", version=0, within=Between(D1, D2)) == {D1: 3}
    if type(lake) is DeltaRsLake:  # from the Delta log alone: no Spark session needed
        assert DeltaRsLake(None, lake.root).counts_by(  # type: ignore[arg-type]
            "t", "as_of_date") == {D1: 5, D2: 1}
    # a non-partition column is counted from the rows (nulls are a value too)
    assert lake.counts_by("t", "member_id", version=0) == {"m1": 1, "m2": 1, "m3": 1}
    # an emptied partition has no entry
    lake.replace_where("t", frame(spark, []), {"as_of_date": D1})
    assert lake.counts_by("t", "as_of_date") == {D2: 1}
    with pytest.raises(TableError, match="has no column 'day'"):
        lake.counts_by("t", "day")


# ------------------------------------------------------------------ replace_partitions


def test_replace_partitions_replaces_every_value_in_one_commit(any_lake: Lake,
                                                               spark: SparkSession) -> None:
    lake = any_lake
    day0, day3 = D1 - dt.timedelta(days=1), D2 + dt.timedelta(days=1)
    # a new table: created by one commit holding both values
    commits = lake.replace_partitions(
        "t", frame(spark, _rows(day0) + _rows(D1)), "as_of_date", [day0, D1], ["as_of_date"])
    assert [(c.version, c.rows_written) for c in commits] == [(0, 3), (0, 3)]
    lake.replace_where("t", frame(spark, _rows(D2) + _rows(day3)),
                       {"as_of_date": Between(D2, day3)})
    # D1 gets new rows, D2 has none in the data and is emptied; day0 and day3 untouched
    new = frame(spark, _rows(D1, "n")[:2])
    commits = lake.replace_partitions("t", new, "as_of_date", [D1, D2])
    assert [(c.version, c.rows_written) for c in commits] == [(2, 2), (2, 0)]
    assert lake.version("t") == 2
    rows = collected(lake.read("t"))
    assert sorted((r[1], r[0]) for r in rows if r[1] in (D1, D2)) == [(D1, "m1n"), (D1, "m2n")]
    assert sum(1 for r in rows if r[1] in (day0, day3)) == 6
    before = collected(lake.read("t", version=1))
    assert sorted(r[0] for r in before if r[1] == D1) == ["m1", "m2", "m3"]


def test_replace_partitions_refuses_other_values_and_leaves_the_days_between(
        any_lake: Lake, spark: SparkSession) -> None:
    lake = any_lake
    day3 = D2 + dt.timedelta(days=1)
    lake.replace_where("t", frame(spark, _rows(D1) + _rows(D2) + _rows(day3)),
                       {"as_of_date": Between(D1, day3)}, ["as_of_date"])
    with pytest.raises(TableError, match=r"3 row\(s\).*not one of the 1 value"):
        lake.replace_partitions("t", frame(spark, _rows(D1, "x") + _rows(D2, "x")),
                                "as_of_date", [D1])
    assert lake.version("t") == 0
    # the values need not be consecutive: D2, between them, is not touched
    commits = lake.replace_partitions("t", frame(spark, _rows(D1, "y") + _rows(day3, "y")),
                                      "as_of_date", [D1, day3])
    assert [(c.version, c.rows_written) for c in commits] == [(1, 3), (1, 3)]
    rows = collected(lake.read("t"))
    assert sorted(r[0] for r in rows if r[1] == D1) == ["m1y", "m2y", "m3y"]
    assert sorted(r[0] for r in rows if r[1] == D2) == ["m1", "m2", "m3"]
    assert sorted(r[0] for r in rows if r[1] == day3) == ["m1y", "m2y", "m3y"]


def test_one_of_filters_a_set_of_values(any_lake: Lake, spark: SparkSession,
                                        tmp_path: Path) -> None:
    lake = any_lake
    day3 = D2 + dt.timedelta(days=1)
    lake.replace_where("t", frame(spark, _rows(D1) + _rows(D2) + _rows(day3)),
                       {"as_of_date": Between(D1, day3)}, ["as_of_date"])
    ends = OneOf((D1, day3))
    assert lake.count_rows("t", {"as_of_date": ends}) == 6
    exported = lake.export_partition("t", {"as_of_date": ends}, tmp_path / "ends")
    assert exported.rows == 6
    # replace the set: day3 gets new rows, D1 is emptied, D2 between them is kept
    lake.replace_where("t", frame(spark, _rows(day3, "z")), {"as_of_date": ends})
    rows = collected(lake.read("t"))
    assert sorted((str(r[1]), r[0]) for r in rows) == sorted(
        [(str(D2), f"m{i}") for i in (1, 2, 3)] + [(str(day3), f"m{i}z") for i in (1, 2, 3)])
    with pytest.raises(TableError, match="refus"):
        lake.replace_where("t", frame(spark, _rows(D2, "w")), {"as_of_date": ends})
    with pytest.raises(TableError, match="empty set"):
        OneOf(())


# ------------------------------------------------------------------ replace_rows / append_rows


def test_python_rows_are_written_like_frames(any_lake: Lake, spark: SparkSession) -> None:
    lake = any_lake
    first = lake.append_rows("t", _rows(D1), SCHEMA, ["as_of_date"])
    assert (first.version, first.rows_written) == (0, 3)
    assert {f.name: f.dataType for f in lake.read("t").schema} == \
        {f.name: f.dataType for f in SCHEMA}
    # exact decimals, the last microsecond of a UTC day, nulls
    assert collected(lake.read("t")) == collected(frame(spark, _rows(D1)))
    lake.append_rows("t", _rows(D2), SCHEMA)
    replaced = lake.replace_rows("t", _rows(D1, "r")[:1], SCHEMA, {"as_of_date": D1})
    assert (replaced.version, replaced.rows_written) == (2, 1)
    rows = collected(lake.read("t"))
    assert [r[0] for r in rows if r[1] == D1] == ["m1r"]
    assert len([r for r in rows if r[1] == D2]) == 3
    with pytest.raises(TableError, match=r"do not match|outside|conform"):
        lake.replace_rows("t", _rows(D2, "x"), SCHEMA, {"as_of_date": D1})
    with pytest.raises((TableError, TypeError, ValueError)):
        lake.append_rows("t", [("m9", "not a date", None, None, None)], SCHEMA)
    assert lake.version("t") == 2


def test_missing_nullable_columns_are_added_once(lake: Lake, spark: SparkSession) -> None:
    """A table written before a column existed gains it (null in its old rows) and
    is then writable with the new schema; a missing required column is refused."""
    lake.append_rows("t", _rows(D1), SCHEMA, ["as_of_date"])
    wider = T.StructType([*SCHEMA.fields, T.StructField("note", T.StringType(), True)])
    lake.add_missing_columns("t", wider)
    lake.add_missing_columns("t", wider)  # checked once: no second commit
    assert lake.version("t") == 1
    assert [f.name for f in lake.read("t").schema] == [*SCHEMA.names, "note"]
    lake.replace_rows("t", [(*_rows(D2)[0], "new")], wider, {"as_of_date": D2})
    assert sorted((r["member_id"], r["as_of_date"], r["note"])
                  for r in lake.read("t").collect()) == [
        ("m1", D1, None), ("m1", D2, "new"), ("m2", D1, None), ("m3", D1, None)]
    lake.add_missing_columns("absent", wider)  # no table: nothing to do
    assert not lake.exists("absent")
    required = T.StructType([*SCHEMA.fields, T.StructField("must", T.LongType(), False)])
    lake.append_rows("u", _rows(D1), SCHEMA, ["as_of_date"])
    with pytest.raises(TableError, match=r"lacks the required column\(s\) must"):
        lake.add_missing_columns("u", required)
