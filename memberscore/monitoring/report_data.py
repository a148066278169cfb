"""What the run report shows, read from the lake for one day (the report's inputs).

Every section is read on its own: a missing table, or one that cannot be read, gives
an empty section and a line in `problems` instead of no report, because the report
is also written after a failed pipeline run, when it is needed most.  Everything read
here is small (counts, a day's validation rows and drift rows, a 20-bin histogram);
no table is collected.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from pyspark.sql import functions as F

from memberscore.quality.results import RESULTS_TABLE
from memberscore.schemas import bronze_table, quarantine_table
from memberscore.tables import DRIFT_METRICS, MEMBER_FEATURES_DAILY, MEMBER_SCORES

if TYPE_CHECKING:
    from memberscore.config import MonitorSettings
    from memberscore.context import RunContext

log = logging.getLogger(__name__)

HISTOGRAM_BINS = 20  # score histogram: [0, 0.05), [0.05, 0.10), ..., [0.95, 1.0]

R = TypeVar("R")


@dataclass(frozen=True)
class TableCount:
    """Rows of one table for the day (None: the table does not exist)."""

    table: str
    day_filter: str
    rows: int | None


@dataclass(frozen=True)
class QuarantineReason:
    source: str
    rule: str
    rows: int


@dataclass(frozen=True)
class ValidationRow:
    table_name: str
    expectation: str
    severity: str
    success: bool
    observed_value: str | None
    unexpected_count: int | None
    element_count: int | None
    run_id: str


@dataclass(frozen=True)
class ScoreSummary:
    """One model's scores of the day."""

    model_name: str
    model_version: str
    rows: int
    mean: float | None
    histogram: tuple[int, ...]  # HISTOGRAM_BINS counts over [0, 1]
    bands: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class DriftRow:
    model_name: str
    column_name: str
    metric: str
    value: float | None
    threshold: float | None
    status: str
    run_id: str


@dataclass
class ReportData:
    """The inputs of one run report."""

    run_date: dt.date
    env: str
    run_id: str
    generated_at: dt.datetime
    monitor: MonitorSettings
    counts: list[TableCount] = field(default_factory=list)
    quarantine: list[QuarantineReason] = field(default_factory=list)
    validations: list[ValidationRow] = field(default_factory=list)
    scores: list[ScoreSummary] = field(default_factory=list)
    drift: list[DriftRow] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def gather_report_data(ctx: RunContext, run_date: dt.date) -> ReportData:
    """Read every section of the report for D (see the module docstring)."""
    data = ReportData(run_date, ctx.env, ctx.run_id, dt.datetime.now(dt.UTC),
                      ctx.settings.monitor)

    failed: set[str] = set()

    def section(name: str, read: Callable[[], R], empty: R) -> R:
        try:
            return read()
        except Exception as exc:  # noqa: BLE001 - a report section must not sink the report
            failed.add(name)
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            data.problems.append(f"{name}: could not be read ({first[:300]})")
            log.warning("run report %s: %s could not be read: %s", run_date, name, first)
            return empty

    data.quarantine = section("quarantine", lambda: quarantine_reasons(ctx, run_date), [])
    data.validations = section("validation results",
                               lambda: validation_rows(ctx, run_date), [])
    data.scores = section("scores", lambda: score_summaries(ctx, run_date), [])
    data.drift = section("drift metrics", lambda: drift_rows(ctx, run_date), [])
    read_in_full = {"validation results": (RESULTS_TABLE, len(data.validations)),
                    "drift metrics": (DRIFT_METRICS.name, len(data.drift)),
                    "scores": (MEMBER_SCORES.name, sum(s.rows for s in data.scores))}
    known = dict(v for k, v in read_in_full.items() if k not in failed)
    data.counts = section("row counts", lambda: table_counts(ctx, run_date, known), [])
    return data


def day_tables(ctx: RunContext) -> list[tuple[str, str]]:
    """(table, its day column) of every table the report counts, in pipeline order."""
    sources = ctx.settings.ingest.sources
    return [
        *[(bronze_table(s), "landing_date") for s in sources],
        *[(quarantine_table(s), "landing_date") for s in sources],
        (MEMBER_FEATURES_DAILY.name, "as_of_date"),
        (RESULTS_TABLE, "run_date"),
        (MEMBER_SCORES.name, "as_of_date"),
        (DRIFT_METRICS.name, "as_of_date"),
    ]


def table_counts(ctx: RunContext, run_date: dt.date,
                 known: dict[str, int] | None = None) -> list[TableCount]:
    """Rows of the day in each of `day_tables`; `known` gives the counts of tables
    already read in full for the report (not counted twice)."""
    known = known or {}
    out = []
    for table, column in day_tables(ctx):
        if not ctx.lake.exists(table):
            rows = None
        elif table in known:
            rows = known[table]
        else:
            rows = ctx.lake.read(table).where(F.col(column) == F.lit(run_date)).count()
        out.append(TableCount(table, f"{column} = {run_date}", rows))
    return out


def quarantine_reasons(ctx: RunContext, run_date: dt.date) -> list[QuarantineReason]:
    """Quarantined rows of landing day D by rule (a row breaking two rules counts under
    both), largest first."""
    out = []
    for source in ctx.settings.ingest.sources:
        table = quarantine_table(source)
        if not ctx.lake.exists(table):
            continue
        rows = (
            ctx.lake.read(table)
            .where(F.col("landing_date") == F.lit(run_date))
            .select(F.explode("rules").alias("rule"))
            .groupBy("rule").count()
            .collect()
        )
        out += [QuarantineReason(source, r["rule"], int(r["count"])) for r in rows]
    return sorted(out, key=lambda q: (q.source, -q.rows, q.rule))


def validation_rows(ctx: RunContext, run_date: dt.date) -> list[ValidationRow]:
    """The latest validation of each table on D (tens of rows): failures first."""
    if not ctx.lake.exists(RESULTS_TABLE):
        return []
    rows = (
        ctx.lake.read(RESULTS_TABLE)
        .where(F.col("run_date") == F.lit(run_date))
        .select("table_name", "expectation", "severity", "success", "observed_value",
                "unexpected_count", "element_count", "run_id")
        .collect()
    )
    found = [ValidationRow(**row.asDict()) for row in rows]
    return sorted(found, key=lambda v: (v.success, v.severity != "critical", v.table_name,
                                        v.expectation))


def score_summaries(ctx: RunContext, run_date: dt.date) -> list[ScoreSummary]:
    """Per model of D's scores: rows, mean, a HISTOGRAM_BINS-bin histogram, bands."""
    if not ctx.lake.exists(MEMBER_SCORES.name):
        return []
    day = ctx.lake.read(MEMBER_SCORES.name).where(F.col("as_of_date") == F.lit(run_date))
    bin_of = F.least(F.floor(F.col("score") * HISTOGRAM_BINS).cast("int"),
                     F.lit(HISTOGRAM_BINS - 1))
    bins = (day.groupBy("model_name", "model_version", bin_of.alias("bin"))
            .agg(F.count(F.lit(1)).alias("rows"), F.sum("score").alias("total"))
            .collect())
    bands = day.groupBy("model_name", "score_band").count().collect()
    models: dict[tuple[str, str], dict[str, Any]] = {}
    for r in bins:
        entry = models.setdefault((r["model_name"], str(r["model_version"])),
                                  {"hist": [0] * HISTOGRAM_BINS, "rows": 0, "total": 0.0})
        if r["bin"] is not None and 0 <= r["bin"] < HISTOGRAM_BINS:
            entry["hist"][r["bin"]] += int(r["rows"])
        entry["rows"] += int(r["rows"])
        entry["total"] += float(r["total"] or 0.0)
    band_counts: dict[str, list[tuple[str, int]]] = {}
    for r in bands:
        band_counts.setdefault(r["model_name"], []).append((str(r["score_band"]),
                                                            int(r["count"])))
    order = {b.name: i for i, b in enumerate(ctx.settings.models.score_bands)}
    return [
        ScoreSummary(name, version, e["rows"], e["total"] / e["rows"] if e["rows"] else None,
                     tuple(e["hist"]),
                     tuple(sorted(band_counts.get(name, []),
                                  key=lambda b: order.get(b[0], len(order)))))
        for (name, version), e in sorted(models.items())
    ]


def drift_rows(ctx: RunContext, run_date: dt.date) -> list[DriftRow]:
    if not ctx.lake.exists(DRIFT_METRICS.name):
        return []
    rows = (
        ctx.lake.read(DRIFT_METRICS.name)
        .where(F.col("as_of_date") == F.lit(run_date))
        .select("model_name", "column_name", "metric", "value", "threshold", "status",
                "run_id")
        .collect()
    )
    return [DriftRow(**row.asDict()) for row in rows]
