"""The fast publish path: the Arrow checksum equals Spark's and Snowflake's on edge keys,
the guards that replaced the staging checksum still stop wrong rows before COMMIT, and
a publish leaves no staging table, staged file or spool behind (local warehouse, real
connector, no mocks)."""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import types as T

from memberscore.context import RunContext
from memberscore.errors import WarehouseError
from memberscore.tables import MEMBER_SCORES_SCHEMA
from memberscore.warehouse import publish_day
from memberscore.warehouse.checksum import (
    DayChecksum,
    arrow_checksum,
    from_sql_row,
    parquet_checksum,
    spark_aggregates,
    sql_checksum_query,
)
from memberscore.warehouse.connection import WarehouseConnection
from memberscore.warehouse.publisher import FaultPoint, Publisher

DAY = dt.date(2026, 11, 19)
SCORED_AT = dt.datetime(2026, 11, 21, 4, 31, 7, 123456, tzinfo=dt.UTC)

# Keys of every supported type, with the values most likely to print differently.
EDGE_KEYS = [
    ("m1", dt.date(2026, 3, 31), 0, True),
    ("Zoë's Ltd, Wales — 東京 🏦", dt.date(1900, 1, 1), -42, False),
    ("x" * 1000, dt.date(9999, 12, 31), 2**62, True),
    ("", dt.date(1, 1, 1), -(2**63), False),
    ("a\x1fb\x1e", dt.date(2024, 2, 29), 7, True),  # the separators inside a key
    ("null-keys", dt.date(2026, 1, 1), None, None),
]
KEY_NAMES = ["member_id", "k_date", "n", "flag"]


def reference(keys: list[tuple]) -> DayChecksum:
    """The definition in plain Python: text forms joined by U+001F, null as U+001E,
    the last 14 hex digits of the MD5, summed."""
    def text(value: object) -> str:
        if value is None:
            return "\x1e"
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, dt.date):
            return value.isoformat()
        return str(value)

    total = sum(int(hashlib.md5("\x1f".join(map(text, k)).encode()).hexdigest()[-14:], 16)
                for k in keys)
    return DayChecksum(len(keys), total)



def _edge_arrow() -> pa.Table:
    columns = list(zip(*EDGE_KEYS, strict=True))
    return pa.table({
        "member_id": pa.array(columns[0], pa.string()),
        "k_date": pa.array(columns[1], pa.date32()),
        "n": pa.array(columns[2], pa.int64()),
        "flag": pa.array(columns[3], pa.bool_()),
    })


# ------------------------------------------------------------------ checksum


def test_arrow_spark_and_snowflake_checksums_agree_on_edge_keys(
        spark, warehouse: WarehouseConnection, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    expected = reference(EDGE_KEYS)
    assert arrow_checksum([_edge_arrow()], KEY_NAMES) == expected

    pq.write_table(_edge_arrow(), tmp_path / "part-0.parquet")
    assert parquet_checksum([tmp_path / "part-0.parquet"], KEY_NAMES) == expected

    schema = T.StructType([T.StructField("member_id", T.StringType()),
                           T.StructField("k_date", T.DateType()),
                           T.StructField("n", T.LongType()),
                           T.StructField("flag", T.BooleanType())])
    row = spark.createDataFrame(EDGE_KEYS, schema).agg(*spark_aggregates(KEY_NAMES)).first()
    assert DayChecksum(row["rows"], int(row["keysum"])) == expected

    warehouse.execute("CREATE TABLE EDGE (MEMBER_ID VARCHAR, K_DATE DATE, N NUMBER(19, 0), "
                      "FLAG BOOLEAN, AS_OF_DATE DATE)", what="t")
    for key in [*EDGE_KEYS, ("other day", DAY, 1, True)]:
        day = dt.date(2026, 11, 20) if key[0] == "other day" else DAY
        warehouse.execute("INSERT INTO EDGE VALUES (?, ?, ?, ?, ?)", [*key, day], what="t")
    rows = warehouse.execute(
        sql_checksum_query("EDGE", ["MEMBER_ID", "K_DATE", "N", "FLAG"], "AS_OF_DATE"), [DAY],
        what="t")
    assert from_sql_row(rows[0]) == expected


def test_snowflake_md5_number_lower64_matches_snowflake_documentation(
        warehouse: WarehouseConnection) -> None:
    """The local warehouse's translation gives the values Snowflake documents."""
    rows = warehouse.execute(
        "SELECT TO_VARCHAR(MD5_NUMBER_LOWER64('Snowflake')), "
        "TO_VARCHAR(MD5_NUMBER_LOWER64('test')), TO_VARCHAR(MD5_NUMBER_LOWER64('hello'))",
        what="t")
    assert rows == [("9203306159527282910", "14618207765679027446", "13362634815750784402")]


def test_arrow_checksum_is_exact_beyond_2_64_and_across_batches_and_files(
        tmp_path: Path) -> None:
    keys = [(f"member-{i:05d}", DAY) for i in range(5000)]
    expected = reference(keys)
    assert expected.keysum > 2**64
    table = pa.table({"member_id": [k[0] for k in keys], "as_of_date": [k[1] for k in keys]})
    assert arrow_checksum([table], ["member_id", "as_of_date"]) == expected
    pq.write_table(table.slice(0, 1200), tmp_path / "part-0.parquet")
    pq.write_table(table.slice(1200), tmp_path / "part-1.parquet")
    files = sorted(tmp_path.glob("part-*.parquet"))
    assert parquet_checksum(files, ["member_id", "as_of_date"], batch_rows=500) == expected
    assert arrow_checksum([], ["member_id"]) == DayChecksum(0, 0)


# ------------------------------------------------------------------ publish guards


def score_rows(run: str, members: int = 4) -> list[tuple]:
    return [(f"m{i}", DAY, "member_churn", "3", round(i / 10, 2), "low", run, SCORED_AT)
            for i in range(1, members + 1)]


def write_scores(ctx: RunContext, rows: list[tuple]) -> None:
    frame = ctx.spark.createDataFrame(rows, MEMBER_SCORES_SCHEMA)
    ctx.lake.replace_where("member_scores", frame, {"as_of_date": DAY}, ["as_of_date"])


def publish_scores(ctx: RunContext, hook=None):  # type: ignore[no-untyped-def]
    return publish_day(ctx.settings, ctx.lake, ctx.spark, warehouse_dir=ctx.paths.warehouse,
                       run_id=ctx.run_id, tables=["member_scores"], day=DAY, fault_hook=hook)


def published(conn: WarehouseConnection) -> list[tuple]:
    return conn.execute("SELECT MEMBER_ID, RUN_ID FROM MEMBER_SCORES ORDER BY MEMBER_ID",
                        what="t") + conn.execute(
        "SELECT TABLE_NAME, RUN_ID, ROW_COUNT, CHECKSUM FROM PUBLISH_LOG", what="t")


def leftovers(ctx: RunContext, conn: WarehouseConnection) -> list[object]:
    """Staging tables, staged files and spool folders a publish left behind."""
    tables = conn.execute("SELECT TABLE_NAME FROM INFORMATION_SCHEMA.TABLES "
                          "WHERE TABLE_NAME LIKE '%STAGING%'", what="t")
    staged = [p for p in (ctx.paths.warehouse / "stage").rglob("*") if p.is_file()]
    spool = list((ctx.paths.warehouse / "spool").glob("*"))
    return [*tables, *staged, *spool]


def staging_table(conn: WarehouseConnection, table: str) -> str:
    """The one staging table of `table`'s day (its name is unique to the run)."""
    (name,), = conn.execute("SELECT TABLE_NAME FROM INFORMATION_SCHEMA.TABLES WHERE "
                            f"TABLE_NAME LIKE '{table}__STAGING_{DAY:%Y%m%d}_%'", what="t")
    return str(name)


def test_wrong_keys_after_copy_are_rolled_back_before_commit(
        ctx: RunContext, warehouse: WarehouseConnection) -> None:
    write_scores(ctx, score_rows("r1"))
    publish_scores(ctx)
    before = published(warehouse)
    write_scores(ctx, score_rows("r2"))

    def rename_member(point: FaultPoint, table: str, conn: WarehouseConnection) -> None:
        if point is FaultPoint.AFTER_COPY:  # same row count, one key changed
            conn.execute(f"UPDATE {staging_table(conn, table)} SET MEMBER_ID = 'm9' "
                         "WHERE MEMBER_ID = 'm1'", what="t")

    with pytest.raises(WarehouseError, match=r"MEMBER_SCORES 2026-11-19 would hold 4 rows "
                                             r"\(v1:\d+\) but .* rolled back"):
        publish_scores(ctx, rename_member)
    assert published(warehouse) == before
    assert leftovers(ctx, warehouse) == []


def test_a_row_lost_after_copy_fails_the_insert_count(
        ctx: RunContext, warehouse: WarehouseConnection) -> None:
    write_scores(ctx, score_rows("r1"))
    publish_scores(ctx)
    before = published(warehouse)
    write_scores(ctx, score_rows("r2"))

    def drop_row(point: FaultPoint, table: str, conn: WarehouseConnection) -> None:
        if point is FaultPoint.AFTER_COPY:
            conn.execute(f"DELETE FROM {staging_table(conn, table)} WHERE MEMBER_ID = 'm4'",
                         what="t")

    with pytest.raises(WarehouseError, match="wrote 3 rows, expected 4; rolled back"):
        publish_scores(ctx, drop_row)
    assert published(warehouse) == before
    publish_scores(ctx)
    assert [r[1] for r in published(warehouse)[:4]] == ["r2"] * 4


def test_a_publish_is_timed_and_leaves_nothing_behind(
        ctx: RunContext, warehouse: WarehouseConnection) -> None:
    write_scores(ctx, score_rows("r1", members=3))
    (result,) = publish_scores(ctx)
    assert set(result.seconds) == {"export", "checksum", "schema", "stage", "put", "copy",
                                   "transaction", "reconcile", "cleanup"}
    assert all(seconds >= 0 for seconds in result.seconds.values())
    assert result.checksum == reference([(f"m{i}", DAY, "member_churn")
                                         for i in (1, 2, 3)]).text
    assert leftovers(ctx, warehouse) == []


def test_the_delta_rs_lake_spools_without_spark(ctx: RunContext) -> None:
    """A table the jobs wrote with delta-spark, spooled by the delta-rs backend: its
    files come from pyarrow, not Spark."""
    from memberscore.lake.delta_rs import DeltaRsLake

    write_scores(ctx, score_rows("r1", members=2))
    assert ctx.lake.backend == "delta-spark"
    lake = DeltaRsLake(ctx.spark, Path(ctx.lake.location("member_scores")).parent)
    publisher = Publisher(lake, spool_root=ctx.paths.warehouse / "spool", run_id="t")
    prepared = publisher.prepare("member_scores", DAY)
    try:
        created_by = {pq.ParquetFile(f).metadata.created_by for f in prepared.files}
        assert all(c.startswith("parquet-cpp-arrow") for c in created_by), created_by
        assert prepared.expected == reference([("m1", DAY, "member_churn"),
                                               ("m2", DAY, "member_churn")])
    finally:
        publisher.discard(prepared)
    assert not prepared.spool.exists()


def test_copy_results_are_checked(ctx: RunContext) -> None:
    """COPY's own result must list every file as LOADED with the lake's row count."""
    write_scores(ctx, score_rows("r1", members=2))
    publisher = Publisher(ctx.lake, spool_root=ctx.paths.warehouse / "spool", run_id="t")
    prepared = publisher.prepare("member_scores", DAY)
    rows = [pq.ParquetFile(f).metadata.num_rows for f in prepared.files]
    publisher.discard(prepared)
    ok = [(f.name, "LOADED", n, n, 1, 0, None, None, None, None)
          for f, n in zip(prepared.files, rows, strict=True)]
    assert sum(rows) == 2
    publisher._check_copy(prepared, "S", ok)
    first, n = prepared.files[0].name, rows[0]
    bad = {
        "partial": [(first, "PARTIALLY_LOADED", n, n - 1, 1, 1, "bad date", 2, 1, "D"),
                    *ok[1:]],
        "short": [(first, "LOADED", n - 1, n - 1, 1, 0, None, None, None, None), *ok[1:]],
        "no files": [("Copy executed with 0 files processed.",)],
        "extra file": [*ok, ok[0]],
    }
    for result in bad.values():
        with pytest.raises(WarehouseError, match="the target is unchanged"):
            publisher._check_copy(prepared, "S", result)


def test_local_statements_are_not_delayed_by_nagle(warehouse: WarehouseConnection) -> None:
    """The local server sets TCP_NODELAY: without it every statement waited ~40 ms for
    the client's delayed ACK, so even the fastest of 20 took over 40 ms."""
    fastest = float("inf")
    for _ in range(20):
        start = time.perf_counter()
        warehouse.execute("SELECT 1", what="t")
        fastest = min(fastest, time.perf_counter() - start)
    assert fastest < 0.035, fastest
