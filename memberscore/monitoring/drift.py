"""Measure a scored day's drift: every model feature and the score of every
configured model against its training baseline, plus the freshness of the sources,
as `Metric` rows ready for `drift_metrics` (see transforms/drift.py for the
statistics and docs/monitoring.md for how to read them).

Spark does the counting (one scan of D's feature snapshot for all models, one of
D's scores); only the per-interval counts, a few hundred numbers, reach the driver.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from memberscore.errors import DriftAlertError, InputError
from memberscore.feature_registry import model_feature_names
from memberscore.models.registry import ModelRegistry
from memberscore.models.tracking import configure_mlflow
from memberscore.monitoring.baselines import ModelBaseline, load_baselines, scored_versions
from memberscore.monitoring.sources import SourceTimeliness, measure_sources
from memberscore.tables import DRIFT_METRICS, MEMBER_FEATURES_DAILY, MEMBER_SCORES
from memberscore.transforms.drift import (
    ALERT,
    FRESHNESS_HOURS,
    LATE_ROWS,
    METRIC_ROWS_SCHEMA,
    SCORE_COLUMN,
    STATUSES,
    ColumnProfile,
    Metric,
    Thresholds,
    column_metrics,
    freshness_metric,
    late_rows_metric,
    prediction_drift_metric,
    shape_drift_metrics,
    threshold_counts,
    union_points,
    worst_first,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from memberscore.context import RunContext

log = logging.getLogger(__name__)

SOURCE_METRICS = (FRESHNESS_HOURS, LATE_ROWS)


@dataclass
class DriftMeasurement:
    """Everything monitor measured for one day."""

    run_date: dt.date
    metrics: list[Metric]
    baselines: list[ModelBaseline]
    sources: list[SourceTimeliness]
    notes: list[str] = field(default_factory=list)

    @property
    def alerts(self) -> list[Metric]:
        return [m for m in worst_first(self.metrics) if m.status == ALERT]

    def alert_lines(self) -> list[str]:
        """The metrics in alert, one line per model (worst first), then the sources once
        (their rows repeat for every model)."""
        lines = []
        for baseline in self.baselines:
            found = [m.describe() for m in self.alerts
                     if m.model_name == baseline.name and m.metric not in SOURCE_METRICS]
            if found:
                lines.append(f"{baseline.name}: {', '.join(found)}")
        sources = list(dict.fromkeys(m.describe() for m in self.alerts
                                     if m.metric in SOURCE_METRICS))
        if sources:
            lines.append(f"sources: {', '.join(sources)}")
        return lines

    def status_counts(self, model_name: str | None = None) -> dict[str, int]:
        counts = Counter(m.status for m in self.metrics
                         if model_name is None or m.model_name == model_name)
        return {s: counts.get(s, 0) for s in STATUSES}

    def summary_lines(self, worst: int = 5) -> list[str]:
        """A few lines for the job's output: per model the statuses and worst columns,
        then the sources."""
        lines = []
        for baseline in self.baselines:
            name = baseline.name
            counts = self.status_counts(name)
            columns = [m for m in worst_first(self.metrics) if m.model_name == name
                       and m.metric not in SOURCE_METRICS]
            top = "; ".join(m.describe() for m in columns[:worst])
            lines.append(f"drift {self.run_date} {name} version {baseline.model.version} "
                         f"against {baseline.reference}: "
                         f"{counts[ALERT]} alert, {counts['warn']} warn, {counts['ok']} ok; "
                         f"worst: {top}")
        lines.append("sources: " + "; ".join(
            f"{s.label} " + (f"{s.freshness_hours:.1f} h old at the cutoff"
                             if s.freshness_hours is not None else "no rows by the cutoff")
            + (f", {s.late_rows} late row(s)" if s.late_rows is not None else "")
            for s in self.sources))
        lines.extend(self.notes)
        return lines


def measure_drift(ctx: RunContext, run_date: dt.date) -> DriftMeasurement:
    """Drift and source metrics of D for every model in conf `models.names`."""
    conf = ctx.settings
    names = conf.models.names
    versions = scored_versions(ctx, run_date, names)
    baselines = load_baselines(ctx, ModelRegistry(configure_mlflow(ctx)), versions,
                               run_date)
    snapshot = day_snapshot(ctx, run_date)

    monitored = {b.name: monitored_features(b) for b in baselines}
    present = {c for columns in monitored.values() for c in columns if c in snapshot.columns}
    feature_points = {
        c: union_points(b.columns[c] for b in baselines if c in b.columns)
        for c in sorted(present)
    }
    feature_profiles = collect_profiles(snapshot, feature_points)
    numeric = {f.name: isinstance(f.dataType, T.NumericType) for f in snapshot.schema.fields}

    score_points = union_points(b.columns[SCORE_COLUMN] for b in baselines
                                if SCORE_COLUMN in b.columns)
    scores = (ctx.lake.read(MEMBER_SCORES.name)
              .where(F.col("as_of_date") == F.lit(run_date))
              .where(F.col("model_name").isin(list(names))))
    score_profiles = collect_profiles(scores, {SCORE_COLUMN: score_points},
                                      group_by="model_name")
    mean_scores = {r["model_name"]: r["mean"] for r in
                   scores.groupBy("model_name").agg(F.avg(SCORE_COLUMN).alias("mean")).collect()}

    sources = measure_sources(ctx, run_date)
    max_hours = conf.monitor.max_source_staleness_hours
    metrics: list[Metric] = []
    limits = Thresholds(conf.monitor.psi_warn, conf.monitor.psi_alert, conf.monitor.ks_warn,
                        conf.monitor.ks_alert)
    for baseline in baselines:
        name = baseline.name
        for column in monitored[name]:
            profile = feature_profiles.get((None, column))
            metrics += column_metrics(
                name, column, baseline.columns.get(column), profile,
                numeric.get(column, True), limits)
        metrics += column_metrics(name, SCORE_COLUMN, baseline.columns.get(SCORE_COLUMN),
                                  score_profiles.get((name, SCORE_COLUMN)), True, limits)
        metrics.append(prediction_drift_metric(name, mean_scores.get(name),
                                               baseline.label_rate))
        for source in sources:
            metrics.append(freshness_metric(name, source.label, source.freshness_hours,
                                            max_hours))
            if source.source == "transactions":
                metrics.append(late_rows_metric(name, source.label, source.late_rows))
    notes = [b.note for b in baselines if b.note]
    log.info("monitor %s: %d metrics for %s", run_date, len(metrics),
             ", ".join(f"{b.name} v{b.model.version}" for b in baselines))
    return DriftMeasurement(run_date, metrics, baselines, sources, notes)


def monitored_features(baseline: ModelBaseline) -> list[str]:
    """The features to measure for a model: the feature registry's model inputs, then
    any feature the baseline has that the registry no longer lists."""
    current = model_feature_names()
    return [*current, *[c for c in baseline.feature_columns if c not in current]]


def day_snapshot(ctx: RunContext, run_date: dt.date) -> DataFrame:
    """D's rows of the feature table (lazy); InputError when there are none."""
    table = MEMBER_FEATURES_DAILY.name
    advice = f"run `memberscore features --run-date {run_date}` first"
    if not ctx.lake.exists(table):
        raise InputError(f"there is no feature snapshot to monitor: table {table} does not "
                         f"exist; {advice}")
    if ctx.lake.count_rows(table, {"as_of_date": run_date}) == 0:
        raise InputError(f"{table} has no snapshot for {run_date}; {advice}")
    return ctx.lake.read(table).where(F.col("as_of_date") == F.lit(run_date))


def collect_profiles(frame: DataFrame, points: dict[str, tuple[float, ...]],
                     group_by: str | None = None
                     ) -> dict[tuple[str | None, str], ColumnProfile]:
    """(group, column) -> the column's profile, from one aggregation (a few hundred
    rows reach the driver)."""
    counts: dict[tuple[str | None, str], dict[int, int]] = {}
    for row in threshold_counts(frame, points, group_by).collect():
        key = (row["group"], row["column_name"])
        counts.setdefault(key, {})[int(row["interval"])] = int(row["rows"])
    return {key: ColumnProfile.from_counts(points[key[1]], found)
            for key, found in counts.items()}


def drift_metrics_frame(spark: SparkSession, measurement: DriftMeasurement,
                        run_id: str) -> DataFrame:
    """The measurement as rows of drift_metrics (declared schema)."""
    rows = spark.createDataFrame([m.as_row() for m in measurement.metrics],
                                 METRIC_ROWS_SCHEMA)
    return shape_drift_metrics(rows, measurement.run_date, run_id)


def alert_error(measurement: DriftMeasurement, report: str) -> DriftAlertError:
    """The one-line error naming every metric in alert."""
    return DriftAlertError(
        f"monitor {measurement.run_date}: {len(measurement.alerts)} metric(s) in alert: "
        f"{'; '.join(measurement.alert_lines())}. {DRIFT_METRICS.name} and the run report "
        f"({report}) were written; look at the report, fix the source or retrain the "
        "model, or set monitor.warn_only: true in conf to report drift without failing"
    )
