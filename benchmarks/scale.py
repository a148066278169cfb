"""`make bench-scale` (`python -m benchmarks.scale`): the nightly steps at production
scale, 200,000 members x 90 days by default, each timed on a warm Spark session.

1. `generate` (its own process): `generate_seconds`, `generate_peak_rss_mb` (target
   2048: the generator streams one day at a time).
2. `ingest --start <first day> --end <day before the last>` of the whole history (its
   own process): `ingest_history_seconds` (target 900 s at 200,000 members),
   `ingest_rows_per_second` over every landing row read, `ingest_peak_rss_mb` (the
   Python driver; the JVM is a process of its own).
3. In this process, one Spark session, warmed by an untimed `features` run:
   - `backfill30_seconds`: `backfill --force` of the 30 days before the last;
   - then `pipeline --run-date <last day>` (monitor warn-only, as in the demo), whose
     steps are timed by the pipeline itself: `features_one_day_seconds`,
     `validate_seconds`, `score_seconds`, `publish_seconds` (features and scores of
     the day), `monitor_seconds`, `publish_drift_metrics_seconds`, and the ingest of
     the last day;
   - ratios: `backfill30_vs_one_day` (target 3) and `validate_vs_features` (target
     0.10: validation of a day within a tenth of the features job);
   - per step, the peak resident memory of this Python process and of the Spark JVM
     and the JVM's peak heap in use (`<step>_driver_rss_mb`, `<step>_jvm_rss_mb`,
     `<step>_jvm_heap_used_mb`), sampled twice a second.

The bank has 90 days, too few to train on full 90-day windows, so scoring uses a quick
model registered as each of `models.names` @champion (trained on synthetic values of
the model features, as the 20,000-member score benchmark does), whose monitoring
baseline is the warm-up day's feature snapshot.

Writes `benchmarks/results-scale.json` (name, value, unit, target, ok, as
`results.json`) and prints the table with `bench_scale_seconds`, its own duration
(target 2400).  `--members` and `--days` run it smaller, to try it out.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import logging
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pyspark.sql import functions as F

from benchmarks.bench_score import register_quick_model
from benchmarks.common import Measurement, Workspace, report, run_child
from memberscore.context import RunContext
from memberscore.logs import configure_logging
from memberscore.runner import execute, job_arguments
from memberscore.schemas import SOURCES, bronze_table, quarantine_table

log = logging.getLogger("benchmarks.scale")

MEMBERS = 200_000
DAYS = 90
SEED = 7
END = dt.date(2031, 3, 31)
RESULTS = Path(__file__).with_name("results-scale.json")
STEPS = ("ingest", "features", "validate", "score", "publish", "monitor",
         "publish_drift_metrics")


class MemorySampler:
    """Samples, twice a second, this process's resident memory, the Spark JVM's, and
    the JVM's heap in use; `peaks(start, end)` gives the maxima of a time span."""

    def __init__(self, ctx: RunContext, every: float = 0.5) -> None:
        jvm = ctx.spark._jvm  # the session's own gateway
        assert jvm is not None
        self._runtime = jvm.java.lang.Runtime.getRuntime()
        self._jvm_pid = int(jvm.java.lang.ProcessHandle.current().pid())
        self._every = every
        self._stop = threading.Event()
        self.samples: list[tuple[float, float, float, float]] = []
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            try:
                heap = (self._runtime.totalMemory() - self._runtime.freeMemory()) / 2**20
            except Exception:  # noqa: BLE001 - the gateway may be busy closing
                heap = float("nan")
            self.samples.append((time.monotonic(), _rss_mb("self"),
                                 _rss_mb(str(self._jvm_pid)), heap))

    def peaks(self, start: float, end: float) -> tuple[float, float, float] | None:
        inside = [s for s in self.samples if start <= s[0] <= end]
        if not inside:
            return None
        return (max(s[1] for s in inside), max(s[2] for s in inside),
                max(s[3] for s in inside))


def _rss_mb(pid: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@contextmanager
def _span(spans: dict[str, tuple[float, float]], name: str) -> Iterator[None]:
    start = time.monotonic()
    try:
        yield
    finally:
        spans[name] = (start, time.monotonic())


def run(members: int, days: int, workdir: Path) -> list[Measurement]:
    home = workdir / f"scale-{members}x{days}"
    if home.exists():
        import shutil

        shutil.rmtree(home)
    home.mkdir(parents=True)
    first, last = END - dt.timedelta(days=days - 1), END
    size = f"{members:,} members x {days} days"
    results: list[Measurement] = []

    log.info("scale: generate %s", size)
    generated = run_child("generate", "--members", str(members), "--days", str(days),
                          "--seed", str(SEED), "--end-date", END.isoformat(), home=home)
    results += [
        Measurement("generate_seconds", generated.seconds, "s", note=size),
        Measurement("generate_peak_rss_mb", generated.peak_rss_mb, "MB", 2048.0, note=size),
    ]

    log.info("scale: ingest the history %s..%s", first, last - dt.timedelta(days=1))
    ingested = run_child("ingest", "--start", first.isoformat(),
                         "--end", (last - dt.timedelta(days=1)).isoformat(), home=home,
                         allowed=(0, 7))

    ws = Workspace(home)
    ctx = ws.ctx
    rows = sum(ctx.lake.read(table(source)).count()
               for source in SOURCES for table in (bronze_table, quarantine_table)
               if ctx.lake.exists(table(source)))
    results += [
        Measurement("ingest_history_seconds", ingested.seconds, "s",
                    900.0 if members >= MEMBERS else None,
                    note=f"{days - 1} days, {rows:,} rows, its own process"),
        Measurement("ingest_rows_per_second", rows / ingested.seconds, "rows/s",
                    higher_is_better=True),
        Measurement("ingest_peak_rss_mb", ingested.peak_rss_mb, "MB",
                    note="the Python driver of the ingest process"),
    ]

    warm_day = last - dt.timedelta(days=31)
    log.info("scale: warm the session (features for %s, untimed)", warm_day)
    execute(ctx, "features", job_arguments("features", ["--run-date", str(warm_day)]))
    baseline_rows = (ctx.lake.read("member_features_daily")
                     .filter(F.col("as_of_date") == F.lit(warm_day)).toPandas())
    for name in ctx.settings.models.names:
        register_quick_model(ctx, name, last, baseline_rows)
    del baseline_rows

    spans: dict[str, tuple[float, float]] = {}
    with MemorySampler(ctx) as sampler:
        log.info("scale: backfill the 30 days before %s", last)
        with _span(spans, "backfill30"):
            execute(ctx, "backfill", job_arguments("backfill", [
                "--start", str(last - dt.timedelta(days=30)),
                "--end", str(last - dt.timedelta(days=1)), "--force"]))
        settings = dataclasses.replace(
            ctx.settings, monitor=dataclasses.replace(ctx.settings.monitor, warn_only=True))
        pipeline_ctx = RunContext(settings, run_id="bench-scale", spark=ctx.spark)
        log.info("scale: pipeline for %s", last)
        started = time.monotonic()
        pipeline = execute(pipeline_ctx, "pipeline",
                           job_arguments("pipeline", ["--run-date", str(last)]))
    steps = {o.step: o for o in pipeline.details["steps"]}
    failed = [f"{o.step} {o.status}" for o in steps.values() if o.status != "ok"]
    if failed:
        raise RuntimeError(f"pipeline for {last}: {', '.join(failed)}")
    at = started
    for step in STEPS:  # the steps ran one after another: rebuild their spans
        spans[step] = (at, at + steps[step].seconds)
        at += steps[step].seconds

    backfill = spans["backfill30"][1] - spans["backfill30"][0]
    seconds = {step: steps[step].seconds for step in STEPS}
    results += [
        Measurement("backfill30_seconds", backfill, "s", note="30 days, --force"),
        Measurement("features_one_day_seconds", seconds["features"], "s", note=size),
        Measurement("backfill30_vs_one_day", backfill / seconds["features"], "ratio", 3.0),
        Measurement("validate_seconds", seconds["validate"], "s"),
        Measurement("validate_vs_features", seconds["validate"] / seconds["features"],
                    "ratio", 0.10),
        Measurement("score_seconds", seconds["score"], "s", note=f"{steps['score'].rows:,} rows"),
        Measurement("publish_seconds", seconds["publish"], "s",
                    note="the day of member_features_daily and member_scores"),
        Measurement("monitor_seconds", seconds["monitor"], "s"),
        Measurement("publish_drift_metrics_seconds", seconds["publish_drift_metrics"], "s"),
        Measurement("ingest_last_day_seconds", seconds["ingest"], "s"),
    ]
    for step in ("backfill30", *STEPS):
        peaks = sampler.peaks(*spans[step])
        if peaks is None:  # a step shorter than a sample
            continue
        driver, jvm, heap = peaks
        results += [
            Measurement(f"{step}_driver_rss_mb", driver, "MB"),
            Measurement(f"{step}_jvm_rss_mb", jvm, "MB"),
            Measurement(f"{step}_jvm_heap_used_mb", heap, "MB"),
        ]
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale")
    parser.add_argument("--members", type=int, default=MEMBERS)
    parser.add_argument("--days", type=int, default=DAYS)
    parser.add_argument("--workdir", type=Path, default=Path(".memberscore-bench"),
                        help="where the bank is generated (replaced on every run)")
    args = parser.parse_args(argv)
    configure_logging()
    start = time.monotonic()
    try:
        results = run(args.members, args.days, args.workdir.resolve())
    except Exception:  # noqa: BLE001 - print what failed, write what was measured
        import traceback

        print(f"bench-scale failed:\n{traceback.format_exc()}", file=sys.stderr)
        results = [Measurement("bench_scale_failed", None, "error")]
    results.append(Measurement("bench_scale_seconds", time.monotonic() - start, "s",
                               2400.0 if args.members >= MEMBERS else None,
                               note=f"{args.members:,} members x {args.days} days"))
    return report(results, RESULTS)


if __name__ == "__main__":
    raise SystemExit(main())
