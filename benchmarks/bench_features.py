"""Member features at 20,000 members x 90 days of generated data.

Figures:
- `features_vs_floor`: the `features` job for the last day (read bronze, one
  aggregation pass, member join, Delta write, build log; not the job's own Great
  Expectations validation, which is `validate_features_seconds`) / the same-output
  floor: the fastest of the plain Spark programs in `benchmarks.features_floor`,
  which write the same partition (member scope, cutoff, late rows, windows, exact
  distinct count, one Delta replace) without the job's fingerprints, build log and
  validation.  The bench fails unless the floor's rows equal the job's.  Target <=
  1.25.  `features_floor_<variant>_seconds` times each variant;
  `features_job_with_validation_seconds` is the whole job.
- `features_vs_raw_scan` (diagnostic, not the same output): the job / one scan of the
  same transactions with a single `groupBy(member_id).sum(amount)` brought to the
  driver as Arrow.
- `features_aggregate_pass_vs_raw_scan`: the snapshot's aggregation pass alone
  (`snapshot_aggregates` to Arrow: the raw scan plus the columns the contract's rules
  read, every conditional aggregate, the exact distinct count and the input
  fingerprint) / the raw scan.
- `features_window_sums_vs_raw_scan`: only the nine additive features (counts and
  money sums over 7/30/90 days, each a `sum(when(...))` with the contract's window,
  cutoff and status rules) in the same single pass, to Arrow / the raw scan.
- `features_window_sums_and_distinct_vs_raw_scan`: the same pass plus the exact
  `distinct_counterparties_30d`, which makes Spark aggregate by member and
  counterparty first and shuffle that: the price of the exact distinct count.
- `backfill30_vs_one_day`: `backfill --force` of the last 30 days (tiles, 30 commits)
  / one `features` run, both timed the same way (below).  Target <= 4.
  `backfill30_first_run_seconds` is the first backfill of the process (its warm-up
  run), which also pays for compiling the backfill's plans.
- `features_seconds_{5000,10000,20000}_members`: one `features` run per size, to
  show how the cost grows.  The smaller sizes are the first N members (by id) of
  the same generated data, in their own homes.

The data is made once per workspace with the real commands (`generate`, then one
`ingest --start --end` over the days) in `<workdir>/features/` and reused on later
runs.  Each timed figure is the best of `REPEATS` runs after a warm-up run, so JVM
warm-up and a neighbour's CPU spike do not decide the ratio.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

from pyspark.sql import Column
from pyspark.sql import functions as F

from benchmarks import features_floor
from benchmarks.common import Measurement, Workspace
from memberscore.cli import main
from memberscore.context import RunContext
from memberscore.schemas import bronze_table

log = logging.getLogger("benchmarks.features")

MEMBERS = 20_000
DAYS = 90
SEED = 7
END = dt.date(2031, 3, 31)
SIZES = (5_000, 10_000, 20_000)
BACKFILL_DAYS = 30
REPEATS = 2


def run(ws: Workspace) -> list[Measurement]:
    home = ws.root / "features"
    prepare(ws, home)
    ctx = _ctx(ws, home, "bench-features")

    with _home(home):
        one_day, with_validation, split = _features_job(ctx)
        floors = {name: _best(partial(variant, ctx, END))
                  for name, variant in features_floor.VARIANTS.items()}
        floor_rows = features_floor.check_same_rows(ctx, END)
        best = min(floors, key=floors.__getitem__)
        floor = floors[best]
        raw_scan = _best(lambda: _raw_scan(ctx))
        aggregate = _best(lambda: _aggregate_pass(ctx))
        window_sums = _best(lambda: _window_sums_pass(ctx))
        with_distinct = _best(lambda: _window_sums_pass(ctx, distinct=True))
        first_backfill = _best(_backfill, repeats=1, warm_up=False)
        backfill = _best(_backfill, warm_up=False)
    per_size = {MEMBERS: one_day}
    for size in SIZES:
        if size == MEMBERS:
            continue
        sub_home = prepare_subset(ws, home, size)
        with _home(sub_home):
            per_size[size], _, _ = _features_job(_ctx(ws, sub_home, "bench-features"))

    note = f"{MEMBERS} members x {DAYS} days, as of {END}"
    results = [
        Measurement("features_vs_floor", one_day / floor, "x", 1.25,
                    note=f"{one_day:.1f}s / {floor:.1f}s ({best}, the same {floor_rows:,} "
                         f"rows); {note}; validation excluded"),
        *[Measurement(f"features_floor_{name}_seconds", seconds, "s")
          for name, seconds in floors.items()],
        # where the job's time goes (its best run), against the floor's whole time
        Measurement("features_job_aggregate_seconds", split["aggregate_seconds"], "s",
                    note="ingest-log check, the aggregation pass with its fingerprint, "
                         "the input totals"),
        Measurement("features_job_write_seconds", split["write_seconds"], "s",
                    note="member scope, join, assemble, the Delta replace"),
        Measurement("features_job_other_seconds", one_day - split["aggregate_seconds"]
                    - split["write_seconds"], "s",
                    note="members fingerprint, build-log commit"),
        Measurement("features_vs_raw_scan", one_day / raw_scan, "x",
                    note=f"{one_day:.1f}s / {raw_scan:.1f}s: one groupBy sum of the same "
                         "scan, a diagnostic, not the same output"),
        Measurement("features_aggregate_pass_vs_raw_scan", aggregate / raw_scan, "x",
                    note=f"{aggregate:.1f}s / {raw_scan:.1f}s: the snapshot's one aggregation "
                         "pass alone (no members, no write)"),
        Measurement("features_window_sums_vs_raw_scan", window_sums / raw_scan, "x",
                    note=f"{window_sums:.1f}s / {raw_scan:.1f}s: the nine additive features "
                         "alone, one pass, nothing else"),
        Measurement("features_window_sums_and_distinct_vs_raw_scan", with_distinct / raw_scan,
                    "x", note=f"{with_distinct:.1f}s / {raw_scan:.1f}s: the nine sums and the "
                              "exact distinct counterparty count, one pass"),
        Measurement("backfill30_vs_one_day", backfill / one_day, "x", 4.0,
                    note=f"{backfill:.1f}s / {one_day:.1f}s; {note}"),
        Measurement("backfill30_first_run_seconds", first_backfill, "s",
                    note="the process's first backfill, which also compiles its plans"),
        Measurement("features_job_with_validation_seconds", with_validation, "s",
                    note="the whole `features` job: snapshot, build log and its own "
                         "Great Expectations validation"),
    ]
    results += [Measurement(f"features_seconds_{size}_members", per_size[size], "s")
                for size in SIZES]
    for m in results:
        log.info("%s = %.3f %s %s", m.name, m.value or 0.0, m.unit, m.note)
    return results


# --------------------------------------------------------------------------- data


def prepare(ws: Workspace, home: Path) -> None:
    """Generate and ingest MEMBERS x DAYS once into `home` (reused across runs)."""
    marker = f"features_data_{MEMBERS}x{DAYS}_seed{SEED}_{END}"
    if ws.done(marker):
        return
    home.mkdir(parents=True, exist_ok=True)
    with _home(home):
        _cli("generate", "--members", str(MEMBERS), "--days", str(DAYS), "--seed", str(SEED),
             "--end-date", END.isoformat())
        first = END - dt.timedelta(days=DAYS - 1)
        _cli("ingest", "--start", first.isoformat(), "--end", END.isoformat(), allowed=(0, 7))
    ws.mark(marker)


def prepare_subset(ws: Workspace, home: Path, size: int) -> Path:
    """Bronze tables of the first `size` members (by id) in a home of their own,
    partitioned by landing day as ingest writes them (one file per day), so the
    sizes differ in rows only, not in file layout."""
    sub_home = ws.root / f"features_{size}_by_landing_date"
    marker = f"features_subset_{size}_of_{MEMBERS}x{DAYS}_seed{SEED}_{END}_by_landing_date"
    if ws.done(marker):
        return sub_home
    source = _ctx(ws, home, "bench-subset")
    target = _ctx(ws, sub_home, "bench-subset")
    members = source.lake.read(bronze_table("members"))
    chosen = (members.select("member_id").distinct().orderBy("member_id").limit(size)
              .hint("broadcast"))
    for name in ("members", "transactions"):
        table = bronze_table(name)
        if not target.lake.exists(table):
            rows = source.lake.read(table).join(chosen, on="member_id", how="left_semi")
            target.lake.append(table, rows.repartition("landing_date"), ["landing_date"])
    # the days ingest completed, which the features job requires (the counts are the
    # whole bank's: nothing here reads them)
    log_table = ws.settings.ingest.log_table
    if not target.lake.exists(log_table):
        target.lake.append(log_table, source.lake.read(log_table), [])
    ws.mark(marker)
    return sub_home


# --------------------------------------------------------------------------- timing


def _raw_scan(ctx: RunContext) -> None:
    """One scan of the transactions the snapshot reads, one groupBy sum, to Arrow."""
    end = dt.datetime(END.year, END.month, END.day, tzinfo=dt.UTC) + dt.timedelta(days=1)
    (
        ctx.lake.read(bronze_table("transactions"))
        .filter(F.col("booked_at") < F.lit(end))
        .groupBy("member_id")
        .agg(F.sum("amount").alias("amount"))
        .toArrow()
    )


def _aggregate_pass(ctx: RunContext) -> None:
    """The snapshot's aggregation pass alone, to Arrow: the same scan as the floor,
    every conditional aggregate of the contract's features and the input
    fingerprint, nothing else."""
    from memberscore.transforms.features import snapshot_aggregates

    lateness = ctx.settings.features.allowed_lateness_hours
    snapshot_aggregates(ctx.lake.read(bronze_table("transactions")), END, lateness).toArrow()


def _window_sums_pass(ctx: RunContext, distinct: bool = False) -> None:
    """Only the additive features (transforms.features.WINDOW_SUMS) in one pass over
    the same transactions, with the same window, cutoff and status rules, to Arrow;
    with `distinct`, also the exact distinct_counterparties_30d."""
    from memberscore.transforms.features import (
        COUNTERPARTY_WINDOW,
        ROW_METRICS,
        WINDOW_SUMS,
        feature_cutoff,
        settled_counterparty,
        utc_midnight,
        with_row_values,
    )

    lateness = ctx.settings.features.allowed_lateness_hours
    known = F.col("ingested_at") <= F.lit(feature_cutoff(END, lateness))

    def counted(days: int) -> Column:
        start = utc_midnight(END - dt.timedelta(days=days - 1))
        return known & (F.col("booked_at") >= F.lit(start))

    (
        ctx.lake.read(bronze_table("transactions"))
        .filter(F.col("booked_at") < F.lit(utc_midnight(END + dt.timedelta(days=1))))
        .transform(with_row_values)
        .groupBy("member_id")
        .agg(*[F.sum(F.when(counted(s.window_days), ROW_METRICS[s.metric]())).alias(s.name)
               for s in WINDOW_SUMS],
             *([F.count_distinct(F.when(counted(COUNTERPARTY_WINDOW), settled_counterparty()))
                .alias("distinct_counterparties_30d")] if distinct else []))
        .toArrow()
    )


def _features_job(ctx: RunContext, day: dt.date = END, repeats: int = REPEATS,
                  warm_up: bool = True) -> tuple[float, float, dict[str, float]]:
    """The best of `repeats` `features` runs for `day` (after a warm-up run), as
    (seconds to compute and write the snapshot and its build-log row, seconds of the
    whole job, the best run's split).  The job's own validation (benchmarked as
    `validate_features_seconds`) is timed by the job and taken out of the first figure."""
    from memberscore.runner import execute, job_arguments

    def once() -> tuple[float, float, dict[str, float]]:
        result = execute(ctx, "features", job_arguments("features",
                                                        ["--run-date", day.isoformat()]))
        timings = {k: float(v) for k, v in result.details["timings"].items()}
        total = timings["total_seconds"]
        return total - timings["validate_seconds"], total, timings

    if warm_up:
        once()
    runs = [once() for _ in range(repeats)]
    best = min(runs, key=lambda r: r[0])
    return best[0], min(r[1] for r in runs), best[2]


def _best(fn: Callable[[], object], repeats: int = REPEATS, warm_up: bool = True) -> float:
    if warm_up:
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _backfill() -> None:
    _cli("backfill", "--start", _backfill_start().isoformat(), "--end", END.isoformat(),
         "--force")


def _backfill_start() -> dt.date:
    return END - dt.timedelta(days=BACKFILL_DAYS - 1)


def _cli(*argv: str, allowed: tuple[int, ...] = (0,)) -> None:
    code = main(list(argv))
    if code not in allowed:
        raise RuntimeError(f"`memberscore {' '.join(argv)}` exited with {code}")


def _ctx(ws: Workspace, home: Path, run_id: str) -> RunContext:
    settings = dataclasses.replace(ws.settings, home=str(home))
    return RunContext(settings, run_id=run_id, spark=ws.ctx.spark)


@contextmanager
def _home(path: Path) -> Iterator[None]:
    """Run CLI commands against another $MEMBERSCORE_HOME."""
    before = os.environ.get("MEMBERSCORE_HOME")
    os.environ["MEMBERSCORE_HOME"] = str(path)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("MEMBERSCORE_HOME", None)
        else:
            os.environ["MEMBERSCORE_HOME"] = before
