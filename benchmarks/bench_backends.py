"""The two lake backends side by side, in one run, on the same data and session.

delta-spark is the engine of every environment (Databricks, and locally since
Delta's jars come with `make install`); delta-rs (`deltalake`) is the alternative
that can be named in `lake.backend`.  These figures are what decides whether it stays
(docs/lake.md).  For each backend:

- `lake_replace_partition_<backend>_seconds`: replace one day of a 20,000-row,
  features-shaped table (best of 3 after a warm-up);
- `lake_replace_30_partitions_<backend>_seconds`: `replace_partitions` of 30 such
  days in one commit, as a backfill chunk writes them (best of 2);
- `lake_small_rows_<backend>_seconds`: one `replace_rows` of a build-log row plus one
  `append_rows` of 25 validation-result rows (median of 10);
- `lake_export_partition_<backend>_seconds`: `export_partition` of one 20,000-row day
  to Parquet, what publish spools before its PUT (best of 3);
- `features_job_<backend>_seconds`: the `features` job on the 20,000 x 90 bank of
  bench_features, without its validation (best of 2 after a warm-up);
- `backfill30_<backend>_seconds`: `backfill --force` of its last 30 days (best of 2);
- `demo_<backend>_seconds`: `memberscore demo` (its default size, 2,000 members x
  160 days: generate, ingest, backfill, train, validate, score, publish, monitor) in
  a fresh home: the whole pipeline.

Every figure is informational (no target): the ratios between the two columns are
the point, and they are measured in one process, one after the other.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import shutil
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from benchmarks import bench_features
from benchmarks.common import Measurement, Workspace
from memberscore.config import Settings
from memberscore.context import RunContext
from memberscore.lake import Lake

Backend = Literal["delta-spark", "delta-rs"]

log = logging.getLogger("benchmarks.backends")

BACKENDS: tuple[Backend, ...] = ("delta-spark", "delta-rs")
ROWS = 20_000
DAYS = 30
FIRST_DAY = dt.date(2031, 1, 1)
BUILD_LOG = T.StructType([
    T.StructField("as_of_date", T.DateType()),
    T.StructField("run_id", T.StringType()),
    T.StructField("input_fingerprint", T.StringType()),
    T.StructField("rows_written", T.LongType()),
    T.StructField("built_at", T.TimestampType()),
])
RESULTS = T.StructType([
    T.StructField("as_of_date", T.DateType()),
    T.StructField("suite", T.StringType()),
    T.StructField("expectation", T.StringType()),
    T.StructField("success", T.BooleanType()),
    T.StructField("unexpected_count", T.LongType()),
])


def run(ws: Workspace) -> list[Measurement]:
    features_home = ws.root / "features"
    bench_features.prepare(ws, features_home)
    results: list[Measurement] = []
    for backend in BACKENDS:
        with _backend(backend):
            settings = _settings(ws, backend)
            results += _lake_figures(ws, settings, backend)
            results += _job_figures(ws, settings, features_home, backend)
    for backend in BACKENDS:
        with _backend(backend):
            results.append(_demo(ws, backend))
    for m in results:
        log.info("%s = %.3f %s %s", m.name, m.value or 0.0, m.unit, m.note)
    return results


# --------------------------------------------------------------------------- lake


def _lake_figures(ws: Workspace, settings: Settings, backend: str) -> list[Measurement]:
    root = ws.root / "backends" / backend
    shutil.rmtree(root, ignore_errors=True)
    ctx = RunContext(dataclasses.replace(settings, home=str(root)), run_id="bench-backends",
                     spark=ws.ctx.spark)
    lake = ctx.lake
    assert lake.backend == backend, (lake.backend, backend)
    days = [FIRST_DAY + dt.timedelta(days=i) for i in range(DAYS)]
    month = _features_shaped(ctx, days).cache()
    month.count()
    one_day = month.filter(F.col("as_of_date") == F.lit(days[0])).cache()
    one_day.count()

    lake.replace_where("bench_day", one_day, {"as_of_date": days[0]}, ["as_of_date"])
    replace = _best(lambda: lake.replace_where("bench_day", one_day,
                                               {"as_of_date": days[0]}), 3)
    chunk = _best(lambda: lake.replace_partitions("bench_month", month, "as_of_date",
                                                  days, ["as_of_date"]), 2,
                  warm_up=False)
    small = _median(lambda: _small_rows(lake, days[0]), 10)
    folder = root / "export"
    export = _best(lambda: lake.export_partition("bench_day", {"as_of_date": days[0]},
                                                 folder), 3)
    month.unpersist()
    one_day.unpersist()
    note = f"{ROWS:,} rows a day"
    return [
        Measurement(f"lake_replace_partition_{backend}_seconds", replace, "s", note=note),
        Measurement(f"lake_replace_30_partitions_{backend}_seconds", chunk, "s",
                    note=f"{DAYS} days in one commit, {note}"),
        Measurement(f"lake_small_rows_{backend}_seconds", small, "s",
                    note="one build-log row replaced + 25 validation rows appended"),
        Measurement(f"lake_export_partition_{backend}_seconds", export, "s", note=note),
    ]


def _features_shaped(ctx: RunContext, days: list[dt.date]) -> DataFrame:
    """ROWS members x `days`, with the kinds of columns member_features_daily has."""
    spark = ctx.spark
    day_frame = spark.createDataFrame([(d,) for d in days], "as_of_date date")
    money = [f"money_{i}" for i in range(7)]
    counts = [f"count_{i}" for i in range(8)]
    return (
        spark.range(ROWS)
        .crossJoin(day_frame)
        .select(
            F.format_string("M%07d", F.col("id")).alias("member_id"),
            F.col("as_of_date"),
            *[((F.col("id") * (i + 3)) % 100_000 / 100).cast("decimal(18,2)").alias(c)
              for i, c in enumerate(money)],
            *[((F.col("id") + i) % 97).cast("long").alias(c) for i, c in enumerate(counts)],
            (F.col("id") % 7 / 7).cast("double").alias("card_spend_share_30d"),
            F.lit("bench-run").alias("run_id"),
            F.current_timestamp().alias("computed_at"),
        )
    )


def _small_rows(lake: Lake, day: dt.date) -> None:
    now = dt.datetime.now(dt.UTC)
    lake.replace_rows("bench_build_log", [(day, "bench", "f" * 64, ROWS, now)], BUILD_LOG,
                      {"as_of_date": day})
    lake.append_rows("bench_results", [(day, "member_features_daily", f"e{i}", True, 0)
                                       for i in range(25)], RESULTS)


# --------------------------------------------------------------------------- jobs


def _job_figures(ws: Workspace, settings: Settings, home: Path,
                 backend: str) -> list[Measurement]:
    ctx = RunContext(dataclasses.replace(settings, home=str(home)),
                     run_id=f"bench-backends-{backend}", spark=ws.ctx.spark)
    with bench_features._home(home):
        one_day, _, _ = bench_features._features_job(ctx)
        backfill = _best(bench_features._backfill, 2, warm_up=False)
    note = f"{bench_features.MEMBERS:,} members x {bench_features.DAYS} days"
    return [
        Measurement(f"features_job_{backend}_seconds", one_day, "s",
                    note=f"{note}; validation excluded"),
        Measurement(f"backfill30_{backend}_seconds", backfill, "s", note=note),
    ]


def _demo(ws: Workspace, backend: str) -> Measurement:
    home = ws.root / "backends" / f"demo-{backend}"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    with bench_features._home(home):
        start = time.perf_counter()
        bench_features._cli("demo")
        seconds = time.perf_counter() - start
    return Measurement(f"demo_{backend}_seconds", seconds, "s",
                       note="memberscore demo, default size, fresh home, warm session")


# --------------------------------------------------------------------------- helpers


def _settings(ws: Workspace, backend: Backend) -> Settings:
    return dataclasses.replace(ws.settings,
                               lake=dataclasses.replace(ws.settings.lake, backend=backend))


@contextmanager
def _backend(backend: str) -> Iterator[None]:
    """CLI commands of the block open their lake with `backend`."""
    key = "MEMBERSCORE__LAKE__BACKEND"
    before = os.environ.get(key)
    os.environ[key] = backend
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before


def _best(fn: Callable[[], object], repeats: int, warm_up: bool = True) -> float:
    return bench_features._best(fn, repeats=repeats, warm_up=warm_up)


def _median(fn: Callable[[], object], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)

