"""The run report: one self-contained HTML file per run that people can open.

`build_run_report(ctx, run_date, steps)` reads the day's figures from the lake
(`memberscore.monitoring.report_data`), renders them, and writes

    $MEMBERSCORE_HOME/reports/runs/<D>/report-<run_id>.html   (one per run)
    $MEMBERSCORE_HOME/reports/runs/<D>/latest.html            (the day's latest run)
    $MEMBERSCORE_HOME/reports/latest.html                     (the latest report written)

Sections: steps and timings (from the pipeline; "not run through pipeline"
otherwise), row counts, quarantine by reason, validation results, a score histogram
per model, and the drift metrics with the worst columns charted, then the sources'
freshness.

The page is the Jinja2 template `templates/run_report.html.j2` (package data),
rendered with autoescaping and strict undefined: every value is escaped by Jinja2,
and a name the template uses but the context lacks fails the rendering.  The charts
are drawn with matplotlib (a `Figure` of its own, never pyplot) and inlined as SVG
with text kept as text; the page has no script, no style sheet or font to fetch and
no external reference of any kind, so it renders the same offline, in a mail
attachment, or years later.  Rendering (`render_report`) is a pure function of the
data, byte for byte: the same data gives the same page, whatever matplotlib's
settings in the process.  It is tested without Spark.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import logging
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
from markupsafe import Markup

from memberscore.monitoring.report_data import (
    HISTOGRAM_BINS,
    DriftRow,
    ReportData,
    ScoreSummary,
    gather_report_data,
)
from memberscore.transforms.drift import SEVERITY, worst_first_key

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from memberscore.config import ScoreBand
    from memberscore.context import RunContext

log = logging.getLogger(__name__)

RUNS_DIR = "runs"
LATEST = "latest.html"
TEMPLATE = "run_report.html.j2"
WORST_CHARTED = 10
SOURCE_METRICS = ("freshness_hours", "late_rows")
COLUMN_METRICS = ("psi", "ks")
COLOURS = {"ok": "#2e7d32", "warn": "#ef8f00", "alert": "#c62828", "bar": "#3f6fb5",
           "grid": "#d0d4da", "text": "#1f2933", "muted": "#6b7480"}
STATUS_CLASSES = {"ok": "ok", "warn": "warn", "alert": "alert", "failed": "alert",
                  "error": "alert", "skipped": "muted"}


# --------------------------------------------------------------------------- build


def build_run_report(ctx: RunContext, run_date: dt.date,
                     steps: list[dict[str, Any]] | None = None) -> Path:
    """Write the run report of D for this run and return its path.

    `steps` are the pipeline's steps, each {"step", "status", "rows", "seconds"}
    (None when the report is not written by the pipeline).  Never fails because a
    table is missing: sections without data say so.
    """
    data = gather_report_data(ctx, run_date)
    page = render_report(data, steps, ctx.settings.models.score_bands)
    path = run_report_path(ctx, run_date)
    for target in (path, path.parent / LATEST, ctx.paths.reports / LATEST):
        _write_atomic(target, page)
    log.info("run report %s: %s (%d bytes)", run_date, path, len(page.encode("utf-8")))
    return path


def run_report_path(ctx: RunContext, run_date: dt.date) -> Path:
    """Where this run's report of D is (or will be) written."""
    folder = ctx.paths.reports / RUNS_DIR / run_date.isoformat()
    return folder / f"report-{_file_part(ctx.run_id)}.html"


def _file_part(run_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", run_id) or "run"


def _write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file and rename: a reader never sees half a page."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------- render


def render_report(data: ReportData, steps: Sequence[Mapping[str, Any]] | None,
                  bands: Sequence[ScoreBand] = ()) -> str:
    """The whole page (pure)."""
    return template().render(report_context(data, steps, bands))


@functools.cache
def template() -> jinja2.Template:
    """The page's template, from the package data, escaping every value."""
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("memberscore", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters.update(number=_number, clip=_shorten, slug=_slug,
                               status_class=_status_class)
    return environment.get_template(TEMPLATE)


@dataclass(frozen=True)
class Step:
    step: str
    status: str
    rows: Any
    seconds: Any


@dataclass(frozen=True)
class Chart:
    """A chart inline in the page: the SVG's content as matplotlib wrote it (markup,
    escaped by matplotlib) and the attributes of the <svg> element around it."""

    element_id: str
    label: str
    width: int
    height: int
    view_box: str
    body: Markup


@dataclass(frozen=True)
class ScoreView:
    summary: ScoreSummary
    chart: Chart
    bands: list[tuple[str, int, float]]  # (band, members, share of the day's scores)


def report_context(data: ReportData, steps: Sequence[Mapping[str, Any]] | None,
                   bands: Sequence[ScoreBand] = ()) -> dict[str, Any]:
    """What the template shows: the data, and what the page derives from it."""
    columns = [d for d in data.drift if d.metric not in SOURCE_METRICS]
    seen: dict[tuple[str, str], DriftRow] = {}
    for d in sorted((d for d in data.drift if d.metric in SOURCE_METRICS),
                    key=lambda r: r.model_name):
        seen.setdefault((d.column_name, d.metric), d)  # the same for every model
    by_table: dict[str, list[int]] = {}
    for v in data.validations:
        by_table.setdefault(v.table_name, [0, 0])[0 if v.success else 1] += 1
    step_rows = None if steps is None else [
        Step(str(s.get("step", "?")), str(s.get("status", "?")), s.get("rows"),
             s.get("seconds")) for s in steps]
    return {
        "data": data,
        "overall": overall_status(data, steps),
        "generated": _ts(data.generated_at),
        "cards": _cards(data, steps),
        "steps": step_rows,
        "steps_total": sum(float(s.get("seconds") or 0.0) for s in steps or ()),
        "validation_by_table": [(t, p, f) for t, (p, f) in sorted(by_table.items())],
        "failed_validations": [v for v in data.validations if not v.success],
        "passed_validations": [v for v in data.validations if v.success],
        "scores": [ScoreView(s, histogram_chart(s, bands),
                             [(name, count, count / s.rows if s.rows else 0.0)
                              for name, count in s.bands]) for s in data.scores],
        "histogram_bins": HISTOGRAM_BINS,
        "drift_charts": [(model, drift_chart(model, [d for d in columns
                                                      if d.model_name == model],
                                             data.monitor.psi_warn, data.monitor.psi_alert))
                         for model in sorted({d.model_name for d in columns})],
        "drift_rows": sorted(columns, key=_drift_order),
        "source_rows": sorted(seen.values(), key=_drift_order),
        "worst_charted": WORST_CHARTED,
    }


def overall_status(data: ReportData, steps: Sequence[Mapping[str, Any]] | None) -> str:
    """failed (a step failed), alert, warn, or ok."""
    if steps and any(str(s.get("status", "")).lower() in ("failed", "error") for s in steps):
        return "failed"
    worst = max((SEVERITY.get(d.status, 0) for d in data.drift), default=0)
    failed_checks = any(not v.success for v in data.validations)
    if worst == 2:
        return "alert"
    if worst == 1 or failed_checks or data.problems:
        return "warn"
    return "ok"


def _cards(data: ReportData, steps: Sequence[Mapping[str, Any]] | None
           ) -> list[tuple[str, str, str]]:
    """(label, value, css class) of the summary's cards."""
    scored = sum(s.rows for s in data.scores)
    quarantined = sum(c.rows or 0 for c in data.counts if c.table.startswith("quarantine_"))
    alerts = sum(1 for d in data.drift if d.status == "alert")
    warns = sum(1 for d in data.drift if d.status == "warn")
    failed = sum(1 for v in data.validations if not v.success)
    step_text = ("not run through pipeline" if steps is None
                 else f"{sum(1 for s in steps if str(s.get('status')) == 'ok')}/{len(steps)} ok")
    return [
        ("steps", step_text, ""),
        ("members scored", f"{scored:,}", ""),
        ("rows quarantined", f"{quarantined:,}", "warn" if quarantined else ""),
        ("expectations failed", f"{failed} of {len(data.validations)}",
         "warn" if failed else ""),
        ("metrics in alert", f"{alerts:,}", "alert" if alerts else ""),
        ("metrics in warn", f"{warns:,}", "warn" if warns else ""),
    ]


# --------------------------------------------------------------------------- charts


def histogram_chart(summary: ScoreSummary, bands: Sequence[ScoreBand] = ()) -> Chart:
    """Bars of the score histogram over [0, 1], with the band boundaries.  In the SVG:
    the bars are the groups `<id>-bin-00`, ..., the boundaries `<id>-band-<band>`."""
    from matplotlib.ticker import MaxNLocator

    element_id = f"score-histogram-{_slug(summary.model_name)}"
    counts = summary.histogram
    width = 1 / max(len(counts), 1)
    with _chart_style(element_id):
        figure = _figure(640, 260)
        axes = figure.add_subplot()
        bars = axes.bar([i * width for i in range(len(counts))], counts, width=width,
                        align="edge", color=COLOURS["bar"], edgecolor="white",
                        linewidth=1)
        for i, bar in enumerate(bars):
            bar.set_gid(f"bin-{i:02d}")
        for band in sorted(bands, key=lambda b: b.lower)[1:]:
            if 0.0 < band.lower < 1.0:
                axes.axvline(band.lower, color=COLOURS["muted"], linewidth=1,
                             linestyle=(0, (4, 3)), gid=f"band-{_slug(band.name)}")
                axes.text(band.lower, 1.0, f" {band.name}", color=COLOURS["muted"],
                          transform=axes.get_xaxis_transform(), ha="left", va="bottom",
                          gid=f"band-label-{_slug(band.name)}")
        axes.set_xlim(0.0, 1.0)
        axes.set_xticks([0.0, 0.25, 0.5, 0.75, 1.0], labels=["0", "0.25", "0.5", "0.75", "1"])
        axes.yaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
        axes.yaxis.set_major_formatter("{x:,.0f}")
        axes.set_ylim(0, max(max(counts, default=0), 1))
        axes.grid(axis="y", color=COLOURS["grid"], linewidth=0.8)
        axes.set_xlabel("score")
        axes.set_ylabel("members")
        return _svg(figure, element_id,
                    f"Histogram of {summary.rows} scores of {summary.model_name}")


def worst_columns(rows: Iterable[DriftRow], limit: int = WORST_CHARTED
                  ) -> list[tuple[str, float | None, float | None, str]]:
    """(column, psi, ks, worse status) of the `limit` worst columns of one model."""
    by_column: dict[str, dict[str, Any]] = {}
    for d in rows:
        if d.metric not in COLUMN_METRICS:
            continue
        entry = by_column.setdefault(d.column_name, {"psi": None, "ks": None, "status": "ok"})
        entry[d.metric] = d.value
        if SEVERITY.get(d.status, 0) > SEVERITY[entry["status"]]:
            entry["status"] = d.status
    ranked = sorted(by_column.items(),
                    key=lambda kv: worst_first_key(kv[1]["status"], kv[1]["psi"], kv[0]))
    return [(name, e["psi"], e["ks"], e["status"]) for name, e in ranked[:limit]]


def drift_chart(model_name: str, rows: Sequence[DriftRow], warn: float,
                alert: float) -> Chart | None:
    """Horizontal PSI bars of the worst columns, worst at the top, with the warn and
    alert thresholds; None when the model has no PSI or KS metric.  In the SVG: the
    bars are the groups `<id>-bar-0`, ..., their columns `<id>-column-0`, ..., their
    values `<id>-value-0`, ..., the thresholds `<id>-threshold-warn` and `-alert`."""
    worst = worst_columns(rows)
    if not worst:
        return None
    element_id = f"drift-worst-{_slug(model_name)}"
    psis = [p for _, p, _, _ in worst if p is not None]
    scale_max = max([alert * 1.2, *[p * 1.05 for p in psis]])
    positions = list(range(len(worst)))
    with _chart_style(element_id):
        figure = _figure(760, 64 + 26 * len(worst))
        axes = figure.add_subplot()
        bars = axes.barh(positions, [p or 0.0 for _, p, _, _ in worst], height=0.72,
                         color=[COLOURS[status] for *_, status in worst])
        for i, bar in enumerate(bars):
            bar.set_gid(f"bar-{i}")
        axes.set_yticks(positions, labels=[_shorten(c, 30) for c, *_ in worst])
        values = axes.secondary_yaxis("right")
        values.set_yticks(positions, labels=[
            ("psi n/a" if p is None else f"psi {p:.3f}")
            + ("" if ks is None else f" · ks {ks:.3f}") for _, p, ks, _ in worst])
        axes.invert_yaxis()  # worst first: at the top
        for i, (label, value) in enumerate(zip(axes.get_yticklabels(),
                                               values.get_yticklabels(), strict=True)):
            label.set_gid(f"column-{i}")
            value.set_gid(f"value-{i}")
        values.tick_params(length=0)
        values.spines["right"].set_visible(False)
        axes.tick_params(axis="y", length=0)
        for threshold, name in ((warn, "warn"), (alert, "alert")):
            axes.axvline(threshold, color=COLOURS[name], linewidth=1,
                         linestyle=(0, (5, 3)), gid=f"threshold-{name}")
            # warn's label to the left of its line, alert's to the right: never overlapping
            axes.text(threshold, 1.0, f" {name} {threshold:g} ", color=COLOURS[name],
                      transform=axes.get_xaxis_transform(), va="bottom",
                      ha="right" if name == "warn" else "left",
                      gid=f"threshold-label-{name}")
        axes.set_xlim(0.0, scale_max)
        axes.grid(axis="x", color=COLOURS["grid"], linewidth=0.8)
        axes.set_xlabel("PSI")
        return _svg(figure, element_id,
                    f"PSI of the {len(worst)} worst columns of {model_name}")


@contextmanager
def _chart_style(element_id: str) -> Iterator[None]:
    """matplotlib's settings for one chart, from its defaults (a site's or a user's
    matplotlibrc changes nothing), restored afterwards.  Text stays text (`svg.fonttype:
    none`: no glyph paths) and is never read as math; the ids matplotlib derives for
    clip paths and markers are salted with the chart's id: fixed, so the same data
    gives the same bytes, and distinct between the charts of one page."""
    import matplotlib.style

    with matplotlib.style.context({
        "svg.fonttype": "none",
        "svg.hashsalt": f"memberscore-{element_id}",
        "text.parse_math": False,
        "font.family": "sans-serif",
        "font.sans-serif": ["DejaVu Sans"],
        "font.size": 11,
        "text.color": COLOURS["text"],
        "axes.labelcolor": COLOURS["muted"],
        "axes.edgecolor": COLOURS["grid"],
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.axisbelow": True,
        "xtick.color": COLOURS["muted"],
        "ytick.color": COLOURS["muted"],
        "ytick.labelcolor": COLOURS["text"],
    }, after_reset=True):
        yield


def _figure(width: int, height: int) -> Figure:
    """A figure of width x height pixels of the page (a point of the SVG is a pixel),
    laid out by matplotlib's constrained layout."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width / 72, height / 72), dpi=72, layout="constrained",
                  facecolor="white")


_SVG_ROOT = re.compile(r"<svg\b[^>]*>")
_SVG_STYLE = re.compile(r"<defs>\s*<style[^>]*>[^<]*</style>\s*</defs>\s*")


def _svg(figure: Figure, element_id: str, label: str) -> Chart:
    """The figure as inline SVG: matplotlib's document without its prologue and root
    element (the template writes the <svg> element), without its style sheet (the
    page has its rule, `svg.chart *`), and its group ids prefixed with the chart's id
    so that they are unique in the page.  No metadata: no date, no creator."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg",
                   metadata={"Creator": None, "Date": None, "Format": None, "Type": None})
    text = buffer.getvalue()
    root = _SVG_ROOT.search(text)
    view_box = re.search(r'viewBox="([^"]*)"', root.group()) if root else None
    if root is None or view_box is None:
        raise ValueError("matplotlib wrote an SVG document without a root viewBox")
    body = text[root.end():text.rindex("</svg>")]
    body = _SVG_STYLE.sub("", body, count=1)
    body = body.replace('<g id="', f'<g id="{element_id}-')
    _, _, width, height = (float(v) for v in view_box.group(1).split())
    # markup as it is: matplotlib's SVG, whose text matplotlib escaped
    return Chart(element_id, label, round(width), round(height), view_box.group(1),
                 Markup(body))


# --------------------------------------------------------------------------- helpers


def _drift_order(d: DriftRow) -> tuple[Any, ...]:
    return worst_first_key(d.status, d.value, d.model_name, d.column_name, d.metric)


def _status_class(status: str) -> str:
    return STATUS_CLASSES.get(str(status).lower(), "")


def _number(value: Any, spec: str = ",") -> str:
    """`value` formatted with the format spec, "–" for none, itself when not a number."""
    if value is None:
        return "–"
    try:
        return format(value, spec)
    except (TypeError, ValueError):
        return str(value)


def _ts(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", text) or "model"
