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
   - `features_vs_floor` (target 1.25, and 1.15 at 200,000 members): the features
     job for the last day once more on the warm session against the fastest
     same-output floor of `benchmarks.features_floor` (its rows must equal the
     job's), with the job's split (`features_job_aggregate_seconds`, `_write_`,
     `_other_`);
   - `score_vs_floor` (target 1.5 at 200,000 members): the scoring of the last day
     once more against `bench_score`'s floor (the same model's predict over the same
     rows in one process, plus the same write), the same number of rows;
   - `publish_<table>_vs_floor` (target 1.5 at 200,000 members) for the features and
     the scores of the last day, with `bench_publish`'s split and
     `publish_<table>_statements_per_table_day`: a publish against PUT + COPY of the
     same spooled files into an empty table, alternated, after a warm-up of each;
   - `validate_<table>_seconds`: each table's suite for the last day once more,
     alone on the warm session (bronze transactions, features, scores), so a miss of
     `validate_vs_features` shows which suite its time goes to;
   - per step, the peak resident memory of this Python process and of the Spark JVM
     and the JVM's peak heap in use (`<step>_driver_rss_mb`, `<step>_jvm_rss_mb`,
     `<step>_jvm_heap_used_mb`), sampled twice a second.

The bank has 90 days, too few to train on full 90-day windows, so scoring uses a quick
model registered as each of `models.names` @champion (trained on synthetic values of
the model features, as the 20,000-member score benchmark does), whose monitoring
baseline is the warm-up day's feature snapshot.

Every size (`--sizes`, default 5,000, 20,000 and 200,000 members) runs in a process
of its own; its figures are named `<figure>_<size>` (`features_one_day_seconds_200k`).
Across sizes, with the largest against 20,000 members: `features_scale_ratio`
(target 10: linear or better), `ingest_scale_ratio` (seconds per row, target 1.2)
and `driver_rss_scale_ratio` (the Python driver's peak over the steps, target 2).
Targets: `generate_peak_rss_mb` 2048 and `backfill30_vs_one_day` 3 at every size;
at 200,000 members `ingest_history_seconds` 900, `validate_vs_features` 0.10,
`features_vs_floor` 1.15, and 1.5 for `score_vs_floor` and each `publish_<table>_vs_floor`.

Writes `benchmarks/results-scale.json` (name, value, unit, target, ok, as
`results.json`) and `benchmarks/results-scale.svg` (seconds per 1,000 members against
members, one line a step), and prints the table with `bench_scale_seconds`, its own
duration (target 2400 when 200,000 members are in it).  `--sizes 2000 --days 75`
tries it out in a few minutes.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

from pyspark.sql import functions as F
from threadpoolctl import threadpool_limits

from benchmarks import features_floor
from benchmarks.bench_features import _best, _features_job
from benchmarks.bench_publish import publish_against_floor
from benchmarks.bench_score import _floor as score_floor
from benchmarks.bench_score import register_quick_model
from benchmarks.common import Measurement, Workspace, report, run_child
from memberscore.context import RunContext
from memberscore.jobs.score import score_day
from memberscore.logs import configure_logging
from memberscore.quality import VALIDATED_TABLES, validate_table
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


def run_size(members: int, days: int, workdir: Path) -> list[Measurement]:
    """Every figure of one bank size, in this process (no targets: `main` sets them)."""
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
        Measurement("generate_peak_rss_mb", generated.peak_rss_mb, "MB", note=size),
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
                    note=f"{days - 1} days, {rows:,} rows, its own process"),
        Measurement("ingest_rows", rows, "rows", note="bronze and quarantine, every source"),
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
        Measurement("backfill30_vs_one_day", backfill / seconds["features"], "ratio"),
        Measurement("validate_seconds", seconds["validate"], "s"),
        Measurement("validate_vs_features", seconds["validate"] / seconds["features"],
                    "ratio"),
        Measurement("score_seconds", seconds["score"], "s", note=f"{steps['score'].rows:,} rows"),
        Measurement("publish_seconds", seconds["publish"], "s",
                    note="the day of member_features_daily and member_scores"),
        Measurement("monitor_seconds", seconds["monitor"], "s"),
        Measurement("publish_drift_metrics_seconds", seconds["publish_drift_metrics"], "s"),
        Measurement("ingest_last_day_seconds", seconds["ingest"], "s"),
    ]
    results += features_against_floor(ctx, last)
    results += validation_split(ctx, last)
    results += score_against_floor(ctx, last, home)
    for table, step in (("member_features_daily", "features"), ("member_scores", "score")):
        results += publish_against_floor(ctx, table, last, steps[step].rows or 0, runs=1,
                                         prefix=f"publish_{table}")
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


def features_against_floor(ctx: RunContext, day: dt.date) -> list[Measurement]:
    """`features_vs_floor`: the features job for `day` (once more, on the session the
    pipeline warmed; its own validation left out) against the fastest same-output
    floor of `benchmarks.features_floor` (each variant warmed once, then timed once),
    whose rows must equal the job's; with the job's split, for when it misses."""
    job, _, split = _features_job(ctx, day, repeats=1, warm_up=False)
    floors = {name: _best(partial(variant, ctx, day), repeats=1)
              for name, variant in features_floor.VARIANTS.items()}
    rows = features_floor.check_same_rows(ctx, day)
    best = min(floors, key=floors.__getitem__)
    return [
        Measurement("features_vs_floor", job / floors[best], "ratio",
                    note=f"{job:.1f}s / {floors[best]:.1f}s ({best}, the same {rows:,} rows)"),
        *[Measurement(f"features_floor_{name}_seconds", seconds, "s")
          for name, seconds in floors.items()],
        Measurement("features_job_aggregate_seconds", split["aggregate_seconds"], "s"),
        Measurement("features_job_write_seconds", split["write_seconds"], "s"),
        Measurement("features_job_other_seconds",
                    job - split["aggregate_seconds"] - split["write_seconds"], "s"),
    ]


def score_against_floor(ctx: RunContext, day: dt.date, home: Path) -> list[Measurement]:
    """`score_vs_floor`: the scoring of `day` (`score_day`, the job less its input
    gate) once more on the warm session, against the same model's predict over the
    same rows in one process plus the same write (`bench_score`'s floor, warmed once,
    then timed once, on one thread); both must score the same number of rows."""
    started = time.monotonic()
    scored = score_day(RunContext(ctx.settings, run_id="bench-scale-score", spark=ctx.spark),
                       day).rows["member_scores"]
    job = time.monotonic() - started
    model = ctx.settings.models.names[0]
    out = home / "score-floor"
    with threadpool_limits(limits=1):
        score_floor(ctx, out, model, day)
        started = time.monotonic()
        rows = score_floor(ctx, out, model, day)
        floor = time.monotonic() - started
    if rows != scored:
        raise RuntimeError(f"score floor scored {rows:,} rows, the job {scored:,}")
    return [
        Measurement("score_vs_floor", job / floor, "ratio",
                    note=f"{job:.1f}s / {floor:.1f}s, {rows:,} rows"),
        Measurement("score_job_seconds", job, "s"),
        Measurement("score_floor_seconds", floor, "s"),
    ]


def validation_split(ctx: RunContext, day: dt.date) -> list[Measurement]:
    """`validate_<table>_seconds`: each suite of `day` validated once more, alone, on
    the warm session (results kept, as the job keeps them): where the pipeline's
    validation time goes, table by table.  The pipeline's `validate` step runs the
    bronze suite and reuses the features step's validation of its snapshot; `score`
    validates the scores it writes."""
    results = []
    for table in VALIDATED_TABLES:
        started = time.monotonic()
        outcome = validate_table(ctx, table, day, raise_on_critical=False)
        results.append(Measurement(
            f"validate_{table}_seconds", time.monotonic() - started, "s",
            note=f"{outcome.row_count or 0:,} rows, {len(outcome.expectations)} "
                 "expectations, alone on the warm session"))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale")
    parser.add_argument("--sizes", default=",".join(str(s) for s in SIZES),
                        help="bank sizes in members, comma-separated (default "
                             f"{','.join(str(s) for s in SIZES)}); each runs in a process "
                             "of its own")
    parser.add_argument("--days", type=int, default=DAYS)
    parser.add_argument("--workdir", type=Path, default=Path(".memberscore-bench"),
                        help="where the banks are generated (replaced on every run)")
    parser.add_argument("--one-size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    configure_logging()
    workdir = args.workdir.resolve()
    if args.one_size:  # a child: one size, raw figures to --out
        figures = run_size(args.one_size, args.days, workdir)
        args.out.write_text(json.dumps([dataclasses.asdict(m) for m in figures]))
        return 0

    start = time.monotonic()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    by_size: dict[int, dict[str, Measurement]] = {}
    failed: list[Measurement] = []
    for members in sizes:
        log.info("scale: %s members x %d days", f"{members:,}", args.days)
        out = workdir / f"scale-{members}.json"
        out.unlink(missing_ok=True)
        code = subprocess.call([sys.executable, "-m", "benchmarks.scale", "--one-size",
                                str(members), "--days", str(args.days), "--workdir",
                                str(workdir), "--out", str(out)])
        if code != 0 or not out.exists():
            print(f"bench-scale at {members:,} members failed (exit {code})", file=sys.stderr)
            failed.append(Measurement(f"bench_scale_{_label(members)}_failed", None, "error"))
            continue
        by_size[members] = {m["name"]: Measurement(**m) for m in json.loads(out.read_text())}
    results = [*_with_targets(by_size), *failed]
    results.append(Measurement("bench_scale_seconds", time.monotonic() - start, "s",
                               2400.0 if MEMBERS in by_size else None,
                               note=f"{args.sizes} members x {args.days} days"))
    if by_size:
        chart = RESULTS.with_suffix(".svg")
        chart.write_text(cost_chart(by_size))
        print(f"wrote {chart}")
    return report(results, RESULTS)


SIZES = (5_000, 20_000, MEMBERS)
CHART_STEPS = ("generate_seconds", "ingest_history_seconds", "backfill30_seconds",
               "features_one_day_seconds", "validate_seconds", "score_seconds",
               "publish_seconds", "monitor_seconds")


def _label(members: int) -> str:
    return f"{members // 1000}k" if members % 1000 == 0 else str(members)


def _with_targets(by_size: dict[int, dict[str, Measurement]]) -> list[Measurement]:
    """Every size's figures (named `<figure>_<size>`), then the ratios between the
    largest size and 20,000 members (else the smallest), with their targets."""
    targets = {"generate_peak_rss_mb": 2048.0, "backfill30_vs_one_day": 3.0}
    at_20k = {"features_vs_floor": 1.25}
    big_only = {"ingest_history_seconds": 900.0, "validate_vs_features": 0.10,
                "features_vs_floor": 1.15, "score_vs_floor": 1.5,
                "publish_member_features_daily_vs_floor": 1.5,
                "publish_member_scores_vs_floor": 1.5}
    results = []
    for members, figures in by_size.items():
        for m in figures.values():
            target = targets.get(m.name)
            if members == 20_000:
                target = at_20k.get(m.name, target)
            if members >= MEMBERS:
                target = big_only.get(m.name, target)
            results.append(dataclasses.replace(m, name=f"{m.name}_{_label(members)}",
                                               target=target))
    if len(by_size) < 2:
        return results
    reference = 20_000 if 20_000 in by_size else min(by_size)
    small, big = by_size[reference], by_size[max(by_size)]
    if big is not small:
        def value(figures: dict[str, Measurement], name: str) -> float:
            found = figures[name].value
            assert found is not None, name
            return found

        def per_row(figures: dict[str, Measurement]) -> float:
            return value(figures, "ingest_history_seconds") / value(figures, "ingest_rows")

        def driver_peak(figures: dict[str, Measurement]) -> float:
            return max(m.value or 0.0 for m in figures.values()
                       if m.name.endswith("_driver_rss_mb"))

        scale = f"{_label(max(by_size))} / {_label(reference)}"
        results += [
            Measurement("features_scale_ratio", value(big, "features_one_day_seconds")
                        / value(small, "features_one_day_seconds"), "ratio", 10.0, note=scale),
            Measurement("ingest_scale_ratio", per_row(big) / per_row(small), "ratio", 1.2,
                        note=f"seconds per row, {scale}"),
            Measurement("driver_rss_scale_ratio", driver_peak(big) / driver_peak(small),
                        "ratio", 2.0, note=f"peak Python driver RSS over the steps, {scale}"),
        ]
    return results


def cost_chart(by_size: dict[int, dict[str, Measurement]]) -> str:
    """An SVG line chart: seconds per 1,000 members against members, one line a step."""
    import io

    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, NullFormatter

    figure = Figure(figsize=(8, 4.2))
    axes = figure.subplots()
    sizes = sorted(by_size)
    for step in CHART_STEPS:
        points = [(m, value / (m / 1000)) for m in sizes
                  if step in by_size[m] and (value := by_size[m][step].value) is not None]
        if points:
            axes.plot([p[0] for p in points], [p[1] for p in points], marker="o",
                      label=step.removesuffix("_seconds"))
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xticks(sizes, [f"{m:,}" for m in sizes])
    axes.xaxis.set_minor_formatter(NullFormatter())
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    axes.yaxis.set_major_formatter(plain)
    axes.yaxis.set_minor_formatter(plain)
    axes.set_xlabel("members")
    axes.set_ylabel("seconds per 1,000 members")
    axes.set_title("memberscore steps: cost per 1,000 members (lower is better)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.01, 0.5))
    figure.tight_layout()
    out = io.StringIO()
    figure.savefig(out, format="svg", metadata={"Date": None})
    return out.getvalue()


if __name__ == "__main__":
    raise SystemExit(main())
