"""Monitoring: how long counting a day's values against the baselines takes (the part
of `monitor` that grows with the number of members), and rendering the run report.

The snapshot is generated in Spark and cached (no lake I/O is measured here; the
lake's read and write speeds are bench_lake's).  The baselines are built by the
training code from a numpy sample of similar distributions.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
from pyspark.sql import Column
from pyspark.sql import functions as F

from benchmarks.common import Measurement, Workspace, timer
from memberscore.models.baseline import describe_column
from memberscore.monitoring.drift import collect_profiles
from memberscore.monitoring.report_data import DriftRow, ReportData, ScoreSummary
from memberscore.reporting import render_report
from memberscore.transforms.drift import BaselineColumn, column_psi, ks_statistic

ROWS = 500_000
COLUMNS = 16  # the model features, plus the score


def _column(i: int) -> Column:
    """Column i of the synthetic snapshot: counts, money-like, shares with nulls."""
    u = F.rand(seed=i)
    if i % 3 == 0:
        return F.floor(u * 100).cast("long")
    if i % 3 == 1:
        return (-F.log(u + F.lit(1e-12)) * 500).cast("decimal(18,2)")
    return F.when(u < 0.05, F.lit(None)).otherwise(F.rand(seed=100 + i)).cast("double")


def _sample(i: int, rng: np.random.Generator, n: int = 20_000) -> np.ndarray:
    if i % 3 == 0:
        return np.floor(rng.random(n) * 100)
    if i % 3 == 1:
        return np.round(rng.exponential(520.0, n), 2)  # a little shifted
    values = rng.random(n)
    values[rng.random(n) < 0.05] = np.nan
    return values


def run(ws: Workspace) -> list[Measurement]:
    spark = ws.ctx.spark
    names = [f"feature_{i:02d}" for i in range(COLUMNS)]
    frame = spark.range(ROWS).select(*[_column(i).alias(n) for i, n in enumerate(names)])
    frame = frame.cache()
    frame.count()
    rng = np.random.default_rng(7)
    baselines = {n: BaselineColumn.from_document(n, describe_column(_sample(i, rng), "feature"))
                 for i, n in enumerate(names)}
    points = {n: b.points() for n, b in baselines.items()}
    collect_profiles(frame.limit(1000), points)  # warm-up: JIT and code generation
    with timer() as counting:
        profiles = collect_profiles(frame, points)
        values = {n: (column_psi(baselines[n], profiles[(None, n)]),
                      ks_statistic(baselines[n], profiles[(None, n)])) for n in names}
    frame.unpersist()
    assert all(p is not None for p, _ in values.values())

    data = ReportData(dt.date(2026, 3, 20), "local", "bench", dt.datetime.now(dt.UTC),
                      ws.settings.monitor,
                      scores=[ScoreSummary("member_churn", "1", ROWS, 0.2,
                                           tuple(range(20)), (("low", ROWS),))],
                      drift=[DriftRow("member_churn", n, m, v, 0.25, "ok", "bench")
                             for n, (p, k) in values.items()
                             for m, v in (("psi", p), ("ks", k))])
    with timer() as rendering:
        page = render_report(data, None, ws.settings.models.score_bands)
    return [
        Measurement(f"monitor_drift_counts_{ROWS // 1000}k_members_{COLUMNS}_columns_seconds",
                    counting["seconds"], "s", target=60.0,
                    note="threshold_counts over a cached snapshot, then PSI and KS"),
        Measurement("monitor_report_render_seconds", rendering["seconds"], "s", target=1.0,
                    note=f"{len(page):,} characters"),
    ]
