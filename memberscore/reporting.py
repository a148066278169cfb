"""The run report: one self-contained HTML file per run that people can open.

`build_run_report(ctx, run_date, steps)` reads the day's figures from the lake
(`memberscore.monitoring.report_data`), renders them, and writes

    $MEMBERSCORE_HOME/reports/runs/<D>/report-<run_id>.html   (one per run)
    $MEMBERSCORE_HOME/reports/runs/<D>/latest.html            (the day's latest run)
    $MEMBERSCORE_HOME/reports/latest.html                     (the latest report written)

Sections: steps and timings (from the pipeline; "not run through pipeline"
otherwise), row counts, quarantine by reason, validation results, a score histogram
per model, and the drift metrics with the worst columns charted, then the sources'
freshness.  The charts are inline SVG drawn here; the page has no script, no style
sheet or font to fetch and no external reference of any kind, so it renders the same
offline, in a mail attachment, or years later.  Rendering (`render_report`) is a pure
function of the data, so it is tested without Spark.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
import math
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memberscore.monitoring.report_data import (
    HISTOGRAM_BINS,
    DriftRow,
    ReportData,
    ScoreSummary,
    ValidationRow,
    gather_report_data,
)
from memberscore.transforms.drift import SEVERITY, worst_first_key

if TYPE_CHECKING:
    from memberscore.config import ScoreBand
    from memberscore.context import RunContext

log = logging.getLogger(__name__)

RUNS_DIR = "runs"
LATEST = "latest.html"
WORST_CHARTED = 10
SOURCE_METRICS = ("freshness_hours", "late_rows")
COLUMN_METRICS = ("psi", "ks")
COLOURS = {"ok": "#2e7d32", "warn": "#ef8f00", "alert": "#c62828", "bar": "#3f6fb5",
           "grid": "#d0d4da", "text": "#1f2933", "muted": "#6b7480"}


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
    overall = overall_status(data, steps)
    body = "\n".join([
        _header(data, overall),
        _summary(data, steps),
        _steps_section(steps),
        _counts_section(data),
        _quarantine_section(data),
        _validation_section(data),
        _scores_section(data, bands),
        _drift_section(data),
        _sources_section(data),
        _problems_section(data),
        f'<footer>memberscore · generated {_e(_ts(data.generated_at))} · run '
        f'{_e(data.run_id)}</footer>',
    ])
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>memberscore run report {_e(data.run_date.isoformat())}</title>\n"
        f"<style>{_CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


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


def _header(data: ReportData, overall: str) -> str:
    return (
        '<header>\n'
        f'<h1>memberscore run report <span class="date">{_e(data.run_date.isoformat())}'
        f'</span> <span class="badge {overall}" id="overall-status">{overall.upper()}'
        '</span></h1>\n'
        f'<p class="meta">environment <b>{_e(data.env)}</b> · run id <code>{_e(data.run_id)}'
        f'</code> · generated {_e(_ts(data.generated_at))}</p>\n'
        '<nav><a href="#steps">steps</a> <a href="#rows">row counts</a> '
        '<a href="#quarantine">quarantine</a> <a href="#validation">validation</a> '
        '<a href="#scores">scores</a> <a href="#drift">drift</a> '
        '<a href="#sources">sources</a></nav>\n'
        '</header>'
    )


def _summary(data: ReportData, steps: Sequence[Mapping[str, Any]] | None) -> str:
    scored = sum(s.rows for s in data.scores)
    quarantined = sum(c.rows or 0 for c in data.counts if c.table.startswith("quarantine_"))
    alerts = sum(1 for d in data.drift if d.status == "alert")
    warns = sum(1 for d in data.drift if d.status == "warn")
    failed = sum(1 for v in data.validations if not v.success)
    step_text = ("not run through pipeline" if steps is None
                 else f"{sum(1 for s in steps if str(s.get('status')) == 'ok')}/{len(steps)} ok")
    cards = [
        ("steps", step_text, ""),
        ("members scored", _n(scored), ""),
        ("rows quarantined", _n(quarantined), "warn" if quarantined else ""),
        ("expectations failed", f"{failed} of {len(data.validations)}",
         "warn" if failed else ""),
        ("metrics in alert", _n(alerts), "alert" if alerts else ""),
        ("metrics in warn", _n(warns), "warn" if warns else ""),
    ]
    items = "".join(f'<div class="card {cls}"><div class="label">{_e(label)}</div>'
                    f'<div class="value">{_e(value)}</div></div>'
                    for label, value, cls in cards)
    return f'<section id="summary" class="cards">{items}</section>'


def _steps_section(steps: Sequence[Mapping[str, Any]] | None) -> str:
    if steps is None:
        return _section("steps", "Steps and timings",
                        '<p class="empty">not run through pipeline: this report was '
                        "written by a single command, so there are no step timings.</p>")
    rows = [[_e(s.get("step", "?")), _status_cell(str(s.get("status", "?"))),
             _num(s.get("rows")), _num(s.get("seconds"), "{:.1f}")] for s in steps]
    total = sum(float(s.get("seconds") or 0.0) for s in steps)
    rows.append(["<b>total</b>", "", "", f"<b>{total:.1f}</b>"])
    return _section("steps", "Steps and timings",
                    _table("steps-table", ["step", "status", "rows", "seconds"], rows,
                           numeric=(2, 3)))


def _counts_section(data: ReportData) -> str:
    if not data.counts:
        return _section("rows", "Row counts", _empty("no row counts"))
    rows = [[f"<code>{_e(c.table)}</code>", _e(c.day_filter),
             _num(c.rows) if c.rows is not None else '<span class="muted">no table</span>']
            for c in data.counts]
    return _section("rows", "Row counts of the day",
                    _table("row-counts", ["table", "rows where", "rows"], rows, numeric=(2,)))


def _quarantine_section(data: ReportData) -> str:
    if not data.quarantine:
        return _section("quarantine", "Quarantine by reason",
                        _empty("no rows were quarantined for this landing day"))
    rows = [[_e(q.source), f"<code>{_e(q.rule)}</code>", _n(q.rows)] for q in data.quarantine]
    note = ('<p class="note">A row that broke several rules is counted under each rule.'
            "</p>")
    return _section("quarantine", "Quarantine by reason",
                    _table("quarantine-table", ["source", "rule", "rows"], rows,
                           numeric=(2,)) + note)


def _validation_section(data: ReportData) -> str:
    if not data.validations:
        return _section("validation", "Validation results",
                        _empty("no validation results for this day"))
    by_table: dict[str, list[int]] = {}
    for v in data.validations:
        passed_failed = by_table.setdefault(v.table_name, [0, 0])
        passed_failed[0 if v.success else 1] += 1
    summary = _table("validation-summary", ["table", "passed", "failed"],
                     [[f"<code>{_e(t)}</code>", _n(p), _n(f)]
                      for t, (p, f) in sorted(by_table.items())], numeric=(1, 2))
    headers = ["table", "expectation", "severity", "result", "observed", "unexpected"]
    failed = [v for v in data.validations if not v.success]
    passed = [v for v in data.validations if v.success]
    detail = (_table("validation-failed", headers, [_validation_row(v) for v in failed],
                     numeric=(5,)) if failed
              else '<p class="empty">every expectation passed</p>')
    if passed:  # tens of rows: folded away, opened with a click (no script needed)
        detail += (f"<details><summary>{len(passed)} passed expectation(s)</summary>"
                   + _table("validation-passed", headers,
                            [_validation_row(v) for v in passed], numeric=(5,))
                   + "</details>")
    return _section("validation", "Validation results", summary + detail)


def _validation_row(v: ValidationRow) -> list[str]:
    return [f"<code>{_e(v.table_name)}</code>", _e(v.expectation), _e(v.severity),
            _status_cell("ok" if v.success else
                         ("alert" if v.severity == "critical" else "warn"),
                         "passed" if v.success else "failed"),
            _e(_shorten(v.observed_value or "", 80)), _num(v.unexpected_count)]


def _scores_section(data: ReportData, bands: Sequence[ScoreBand]) -> str:
    if not data.scores:
        return _section("scores", "Scores", _empty("no scores for this day"))
    parts = []
    for s in data.scores:
        band_rows = [[_e(name), _n(count), _pct(count / s.rows if s.rows else 0.0)]
                     for name, count in s.bands]
        mean = "n/a" if s.mean is None else f"{s.mean:.3f}"
        parts.append(
            f'<div class="model"><h3>{_e(s.model_name)} <span class="muted">version '
            f'{_e(s.model_version)}</span></h3>'
            f'<p>{_n(s.rows)} members scored, mean score {mean}</p>'
            f'<figure>{histogram_svg(s, bands)}<figcaption>Score histogram, '
            f'{HISTOGRAM_BINS} bins of width {1 / HISTOGRAM_BINS:g}; dashed lines are the '
            'score band boundaries.</figcaption></figure>'
            + _table(f"score-bands-{_slug(s.model_name)}", ["band", "members", "share"],
                     band_rows, numeric=(1, 2))
            + "</div>")
    return _section("scores", "Scores", "".join(parts))


def _drift_section(data: ReportData) -> str:
    columns = [d for d in data.drift if d.metric not in SOURCE_METRICS]
    if not columns:
        return _section("drift", "Drift against the training baseline",
                        _empty("no drift metrics for this day (monitor has not run)"))
    conf = data.monitor
    parts = [f'<p class="note">PSI: warn from {conf.psi_warn:g}, alert from '
             f'{conf.psi_alert:g}. KS: warn from {conf.ks_warn:g}, alert from '
             f'{conf.ks_alert:g}. <code>mean_score_vs_base_rate</code> is the day\'s mean '
             "score over the churn rate of the model's training set (prediction drift): "
             "warn outside [0.5, 2]. A value \"n/a\" with status warn means the column is "
             "missing from the baseline or from the day's data.</p>"]
    for model in sorted({d.model_name for d in columns}):
        rows = [d for d in columns if d.model_name == model]
        parts.append(f'<div class="model"><h3>{_e(model)}</h3><figure>'
                     f'{drift_chart_svg(model, rows, conf.psi_warn, conf.psi_alert)}'
                     f'<figcaption>The {WORST_CHARTED} worst columns by status, then PSI; the '
                     'bar is the PSI, coloured by the worse status of PSI and KS; dashed '
                     'lines are the warn and alert thresholds.</figcaption></figure></div>')
    ordered = sorted(columns, key=_drift_order)
    table_rows = [[_e(d.model_name), f"<code>{_e(d.column_name)}</code>", _e(d.metric),
                   _num(d.value, "{:.4f}") if d.value is not None else "n/a",
                   _num(d.threshold, "{:g}"), _status_cell(d.status)] for d in ordered]
    parts.append(_table("drift-table", ["model", "column", "metric", "value", "threshold",
                                        "status"], table_rows, numeric=(3, 4)))
    return _section("drift", "Drift against the training baseline", "".join(parts))


def _sources_section(data: ReportData) -> str:
    rows = [d for d in data.drift if d.metric in SOURCE_METRICS]
    if not rows:
        return _section("sources", "Source freshness and late rows",
                        _empty("no source metrics for this day (monitor has not run)"))
    seen: dict[tuple[str, str], DriftRow] = {}
    for d in sorted(rows, key=lambda r: r.model_name):
        seen.setdefault((d.column_name, d.metric), d)  # the same for every model
    table_rows = [[f"<code>{_e(d.column_name)}</code>", _e(d.metric),
                   _num(d.value, "{:.1f}") if d.value is not None else "n/a",
                   _num(d.threshold, "{:g}"), _status_cell(d.status)]
                  for d in sorted(seen.values(), key=_drift_order)]
    note = ('<p class="note">freshness_hours: hours between the day\'s feature cutoff and '
            'the latest row known by it (alert above the threshold). late_rows: '
            "transactions booked in the day's feature windows but ingested after the "
            "cutoff, so left out of the snapshot (warn when any).</p>")
    return _section("sources", "Source freshness and late rows",
                    _table("sources-table", ["source", "metric", "value", "threshold",
                                             "status"], table_rows, numeric=(2, 3)) + note)


def _problems_section(data: ReportData) -> str:
    if not data.problems:
        return ""
    items = "".join(f"<li>{_e(p)}</li>" for p in data.problems)
    return _section("problems", "Sections that could not be read", f"<ul>{items}</ul>")


# --------------------------------------------------------------------------- charts


def histogram_svg(summary: ScoreSummary, bands: Sequence[ScoreBand] = ()) -> str:
    """Bars of the score histogram over [0, 1], with the band boundaries."""
    width, height = 640, 260
    left, right, top, bottom = 56, 16, 16, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    counts = summary.histogram
    peak = max(counts, default=0) or 1
    step = plot_w / max(len(counts), 1)
    out = [_svg_open(f"score-histogram-{_slug(summary.model_name)}", "chart histogram",
                     width, height,
                     f"Histogram of {summary.rows} scores of {summary.model_name}")]
    out += _y_axis(left, top, plot_w, plot_h, peak)
    for i, count in enumerate(counts):
        h = plot_h * count / peak
        x = left + i * step
        lo, hi = i / len(counts), (i + 1) / len(counts)
        out.append(f'<rect class="bar" data-count="{count}" x="{x + 1:.1f}" '
                   f'y="{top + plot_h - h:.1f}" width="{max(step - 2, 1):.1f}" '
                   f'height="{h:.1f}" fill="{COLOURS["bar"]}"><title>{lo:.2f}–{hi:.2f}: '
                   f'{count} members</title></rect>')
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        x = left + plot_w * tick
        out.append(f'<text x="{x:.1f}" y="{top + plot_h + 16}" text-anchor="middle" '
                   f'class="tick">{tick:g}</text>')
    for band in sorted(bands, key=lambda b: b.lower)[1:]:
        if 0.0 < band.lower < 1.0:
            x = left + plot_w * band.lower
            out.append(f'<line class="band" x1="{x:.1f}" x2="{x:.1f}" y1="{top}" '
                       f'y2="{top + plot_h}" stroke="{COLOURS["muted"]}" '
                       'stroke-dasharray="4 3"/>')
            out.append(f'<text x="{x + 3:.1f}" y="{top + 10}" class="tick">{_e(band.name)}'
                       '</text>')
    out.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 6}" text-anchor="middle" '
               'class="axis">score</text>')
    out.append("</svg>")
    return "".join(out)


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
    ranked = sorted(by_column.items(), key=lambda kv: (
        -SEVERITY[kv[1]["status"]],
        -(kv[1]["psi"] if kv[1]["psi"] is not None else math.inf), kv[0]))
    return [(name, e["psi"], e["ks"], e["status"]) for name, e in ranked[:limit]]


def drift_chart_svg(model_name: str, rows: Sequence[DriftRow], warn: float,
                    alert: float) -> str:
    """Horizontal PSI bars of the worst columns, with the thresholds."""
    worst = worst_columns(rows)
    bar_h, gap = 22, 8
    left, right, top, bottom = 210, 150, 12, 34
    width = 760
    plot_w = width - left - right
    height = top + bottom + max(len(worst), 1) * (bar_h + gap)
    scale_max = max([alert * 1.2, *[p * 1.05 for _, p, _, _ in worst if p is not None]])
    out = [_svg_open(f"drift-worst-{_slug(model_name)}", "chart drift", width, height,
                     f"PSI of the {len(worst)} worst columns of {model_name}")]
    for i, (column, p, ks, status) in enumerate(worst):
        y = top + i * (bar_h + gap)
        w = plot_w * (p or 0.0) / scale_max
        label = "n/a" if p is None else f"{p:.3f}"
        ks_label = "" if ks is None else f" · ks {ks:.3f}"
        out.append(f'<text x="{left - 8}" y="{y + bar_h * 0.7:.1f}" text-anchor="end" '
                   f'class="label">{_e(_shorten(column, 30))}</text>')
        out.append(f'<rect class="bar {status}" data-column="{_e(column)}" '
                   f'data-psi="{label}" x="{left}" y="{y}" width="{max(w, 1.0):.1f}" '
                   f'height="{bar_h}" fill="{COLOURS[status]}"><title>{_e(column)}: psi '
                   f'{label}{ks_label} ({status})</title></rect>')
        out.append(f'<text x="{left + max(w, 1.0) + 6:.1f}" y="{y + bar_h * 0.7:.1f}" '
                   f'class="value">psi {label}{ks_label}</text>')
    base = top + len(worst) * (bar_h + gap)
    for value, name in ((warn, "warn"), (alert, "alert")):
        x = left + plot_w * value / scale_max
        out.append(f'<line class="threshold {name}" x1="{x:.1f}" x2="{x:.1f}" y1="{top - 4}" '
                   f'y2="{base}" stroke="{COLOURS[name]}" stroke-dasharray="5 3"/>')
        # warn's label to the left of its line, alert's to the right: never overlapping
        anchor, dx = ("end", -3) if name == "warn" else ("start", 3)
        out.append(f'<text x="{x + dx:.1f}" y="{base + 14}" text-anchor="{anchor}" '
                   f'class="tick">{name} {value:g}</text>')
    out.append(f'<line x1="{left}" x2="{left}" y1="{top - 4}" y2="{base}" '
               f'stroke="{COLOURS["grid"]}"/>')
    out.append("</svg>")
    return "".join(out)


def _svg_open(element_id: str, css_class: str, width: int, height: int, label: str) -> str:
    return (f'<svg id="{_e(element_id)}" class="{css_class}" role="img" '
            f'aria-label="{_e(label)}" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}">')


def _y_axis(left: int, top: int, plot_w: int, plot_h: int, peak: int) -> list[str]:
    out = []
    for frac in (0.0, 0.5, 1.0):
        y = top + plot_h * (1 - frac)
        out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" '
                   f'stroke="{COLOURS["grid"]}"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" '
                   f'class="tick">{round(peak * frac):,}</text>')
    return out


# --------------------------------------------------------------------------- helpers


def _section(anchor: str, title: str, content: str) -> str:
    return f'<section id="{anchor}">\n<h2>{_e(title)}</h2>\n{content}\n</section>'


def _table(table_id: str, headers: Sequence[str], rows: Sequence[Sequence[str]],
           numeric: Sequence[int] = ()) -> str:
    """A table; cells are already-escaped HTML."""
    head = "".join(f'<th{" class=num" if i in numeric else ""}>{_e(h)}</th>'
                   for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(f'<td{" class=num" if i in numeric else ""}>{cell}</td>'
                         for i, cell in enumerate(row)) + "</tr>"
        for row in rows)
    return (f'<table id="{_e(table_id)}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table>")


def _drift_order(d: DriftRow) -> tuple[Any, ...]:
    return worst_first_key(d.status, d.value, d.model_name, d.column_name, d.metric)


def _status_cell(status: str, text: str | None = None) -> str:
    css = {"ok": "ok", "warn": "warn", "alert": "alert", "failed": "alert",
           "error": "alert", "skipped": "muted"}.get(status.lower(), "")
    return f'<span class="status {css}">{_e(text or status)}</span>'


def _empty(text: str) -> str:
    return f'<p class="empty">{_e(text)}</p>'


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _n(value: int) -> str:
    return f"{value:,}"


def _num(value: Any, fmt: str = "{:,}") -> str:
    if value is None:
        return "–"
    try:
        return _e(fmt.format(value))
    except (TypeError, ValueError):
        return _e(value)


def _pct(share: float) -> str:
    return f"{share:.1%}"


def _ts(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", text) or "model"


_CSS = """
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: #1f2933; margin: 0 auto; max-width: 1100px; padding: 24px; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 28px 0 10px;
  border-bottom: 1px solid #d0d4da; padding-bottom: 4px; } h3 { font-size: 15px; }
.meta, .muted, .note, figcaption, footer { color: #6b7480; }
.note, figcaption { font-size: 12px; }
nav a { margin-right: 12px; color: #3f6fb5; text-decoration: none; }
code { font: 12px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
.badge { font-size: 13px; padding: 2px 10px; border-radius: 10px; color: #fff;
  vertical-align: middle; background: #2e7d32; }
.badge.warn { background: #ef8f00; } .badge.alert, .badge.failed { background: #c62828; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin-top: 16px; }
.card { border: 1px solid #d0d4da; border-radius: 6px; padding: 10px 14px; min-width: 140px; }
.card .label { color: #6b7480; font-size: 12px; } .card .value { font-size: 20px; }
.card.warn { border-color: #ef8f00; } .card.alert { border-color: #c62828; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 13px; }
th, td { border-bottom: 1px solid #e4e7eb; padding: 4px 10px; text-align: left; }
th { background: #f5f7fa; } td.num, th.num { text-align: right;
  font-variant-numeric: tabular-nums; }
.status { font-weight: 600; } .status.ok { color: #2e7d32; }
.status.warn { color: #b86e00; } .status.alert { color: #c62828; }
.empty { color: #6b7480; font-style: italic; }
details summary { cursor: pointer; color: #3f6fb5; margin: 4px 0 8px; }
figure { margin: 8px 0; } svg.chart { max-width: 100%; height: auto; }
svg text { font: 11px system-ui, sans-serif; fill: #1f2933; }
svg text.tick, svg text.axis { fill: #6b7480; }
footer { margin-top: 32px; font-size: 12px; }
@media print { body { max-width: none; } nav { display: none; } }
"""
