"""The run report: a self-contained HTML page whose charts and tables hold the day's
figures (parsed back with html.parser), written atomically under
$MEMBERSCORE_HOME/reports/, and rendered by headless Chromium when it is installed."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from memberscore.config import ScoreBand, Settings
from memberscore.context import RunContext
from memberscore.monitoring.report_data import (
    DriftRow,
    QuarantineReason,
    ReportData,
    ScoreSummary,
    TableCount,
    ValidationRow,
)
from memberscore.reporting import build_run_report, render_report

DAY = dt.date(2026, 3, 10)
BANDS = (ScoreBand("low", 0.0, 0.2), ScoreBand("medium", 0.2, 0.5),
         ScoreBand("high", 0.5, 1.000001))
HISTOGRAM = (5, 9, 14, 20, 11, 8, 6, 4, 3, 2, 2, 1, 1, 1, 0, 0, 1, 0, 0, 1)
STEPS = [
    {"step": "ingest", "status": "ok", "rows": 12_345, "seconds": 4.21},
    {"step": "features", "status": "ok", "rows": 2000, "seconds": 9.5},
    {"step": "validate", "status": "ok", "rows": 0, "seconds": 3.0},
    {"step": "score", "status": "ok", "rows": 2000, "seconds": 6.25},
    {"step": "publish", "status": "FAILED", "rows": None, "seconds": 1.0},
    {"step": "monitor", "status": "skipped", "rows": None, "seconds": 0.0},
]


def drift(column: str, metric: str, value: float | None, threshold: float | None,
          status: str, model: str = "member_churn") -> DriftRow:
    return DriftRow(model, column, metric, value, threshold, status, "run-7")


def report_data(settings: Settings) -> ReportData:
    rows = [
        drift("txn_count_30d", "psi", 0.4123, 0.25, "alert"),
        drift("txn_count_30d", "ks", 0.31, 0.2, "alert"),
        drift("inflow_sum_30d", "psi", 0.05, 0.1, "ok"),
        drift("inflow_sum_30d", "ks", 0.21, 0.2, "alert"),  # KS alone makes it alert
        drift("tenure_days", "psi", 0.12, 0.1, "warn"),
        drift("tenure_days", "ks", 0.02, 0.1, "ok"),
        drift("legacy_ratio", "psi", None, None, "warn"),   # missing from the day
        drift("score", "psi", 0.01, 0.1, "ok"),
        drift("score", "ks", 0.03, 0.1, "ok"),
        *[drift(f"quiet_{i:02d}", "psi", 0.001 * i, 0.1, "ok") for i in range(12)],
        drift("transactions.ingested_at", "freshness_hours", 7.5, 36.0, "ok"),
        drift("transactions.ingested_at", "late_rows", 3.0, 0.0, "warn"),
        drift("members.updated_at", "freshness_hours", 50.25, 36.0, "alert"),
    ]
    return ReportData(
        run_date=DAY, env="local", run_id="run-7",
        generated_at=dt.datetime(2026, 3, 11, 7, 0, tzinfo=dt.UTC),
        monitor=settings.monitor,
        counts=[TableCount("bronze_transactions", f"landing_date = {DAY}", 12_000),
                TableCount("quarantine_transactions", f"landing_date = {DAY}", 45),
                TableCount("member_scores", f"as_of_date = {DAY}", 200),
                TableCount("drift_metrics", f"as_of_date = {DAY}", None)],
        quarantine=[QuarantineReason("transactions", "duplicate", 30),
                    QuarantineReason("transactions", "currency_not_gbp", 15),
                    QuarantineReason("members", "required:region", 2)],
        validations=[
            ValidationRow("member_features_daily", "row count within 20%", "critical", True,
                          "2000", None, 2000, "run-7"),
            ValidationRow("member_scores", "score in [0, 1]", "critical", False, "1.2", 1,
                          200, "run-7"),
        ],
        scores=[ScoreSummary("member_churn", "3", sum(HISTOGRAM), 0.21, HISTOGRAM,
                             (("low", 48), ("medium", 27), ("high", 14)))],
        drift=rows,
    )


class Page(HTMLParser):
    """The parts of the page the tests look at: every element with an id, the
    rect/line children of each svg, and the rows of each table as cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: dict[str, dict[str, Any]] = {}
        self.svg_children: dict[str, list[tuple[str, dict[str, str]]]] = {}
        self.tables: dict[str, list[list[str]]] = {}
        self.tags: list[str] = []
        self._svg: str | None = None
        self._table: str | None = None
        self._cell: list[str] | None = None
        self._row: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        self.tags.append(tag)
        if "id" in attributes:
            self.ids[attributes["id"]] = {"tag": tag, **attributes}
        if tag == "svg":
            self._svg = attributes.get("id", "")
            self.svg_children[self._svg] = []
        elif self._svg is not None and tag in ("rect", "line", "text"):
            self.svg_children[self._svg].append((tag, attributes))
        if tag == "table":
            self._table = attributes.get("id", "")
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._svg = None
        elif tag == "table":
            self._table = None
        elif tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table is not None:
            self.tables[self._table].append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def parse(page: str) -> Page:
    parsed = Page()
    parsed.feed(page)
    parsed.close()
    return parsed


def test_report_has_the_charts_and_tables_with_the_day_s_figures(settings: Settings) -> None:
    page = parse(render_report(report_data(settings), STEPS, BANDS))

    # the score histogram: 20 bars holding the counts, band boundaries drawn
    bars = [a for tag, a in page.svg_children["score-histogram-member_churn"]
            if tag == "rect" and "bar" in a.get("class", "")]
    assert [int(a["data-count"]) for a in bars] == list(HISTOGRAM)
    tallest = max(bars, key=lambda a: float(a["height"]))
    assert tallest["data-count"] == "20"
    band_lines = [a for tag, a in page.svg_children["score-histogram-member_churn"]
                  if tag == "line" and a.get("class") == "band"]
    assert [float(a["x1"]) for a in band_lines] == pytest.approx([56 + 568 * 0.2, 56 + 568 * 0.5],
                                                                 abs=0.05)

    # the worst-drift chart: the 10 worst columns, alerts first, then by PSI
    worst = [(a["data-column"], a["class"]) for tag, a in page.svg_children[
        "drift-worst-member_churn"] if tag == "rect"]
    assert worst[:5] == [("txn_count_30d", "bar alert"), ("inflow_sum_30d", "bar alert"),
                         ("legacy_ratio", "bar warn"), ("tenure_days", "bar warn"),
                         ("quiet_11", "bar ok")]
    assert len(worst) == 10
    thresholds = {a["class"] for tag, a in page.svg_children["drift-worst-member_churn"]
                  if tag == "line" and "threshold" in a.get("class", "")}
    assert thresholds == {"threshold warn", "threshold alert"}

    # the drift table, worst first, with the values
    table = page.tables["drift-table"]
    assert table[0] == ["model", "column", "metric", "value", "threshold", "status"]
    assert table[1] == ["member_churn", "txn_count_30d", "psi", "0.4123", "0.25", "alert"]
    assert ["member_churn", "legacy_ratio", "psi", "n/a", "–", "warn"] in table
    assert all(row[1] not in ("transactions.ingested_at", "members.updated_at")
               for row in table[1:])
    assert page.tables["sources-table"][1:] == [
        ["members.updated_at", "freshness_hours", "50.2", "36", "alert"],
        ["transactions.ingested_at", "late_rows", "3.0", "0", "warn"],
        ["transactions.ingested_at", "freshness_hours", "7.5", "36", "ok"],
    ]

    # steps with timings and their total; the other sections
    assert page.tables["steps-table"][1] == ["ingest", "ok", "12,345", "4.2"]
    assert page.tables["steps-table"][5] == ["publish", "FAILED", "–", "1.0"]
    assert page.tables["steps-table"][-1] == ["total", "", "", "24.0"]
    assert page.tables["quarantine-table"][1:] == [["transactions", "duplicate", "30"],
                                                   ["transactions", "currency_not_gbp", "15"],
                                                   ["members", "required:region", "2"]]
    assert page.tables["row-counts"][-1] == ["drift_metrics", f"as_of_date = {DAY}",
                                             "no table"]
    assert page.tables["validation-summary"][1:] == [["member_features_daily", "1", "0"],
                                                     ["member_scores", "0", "1"]]
    assert page.tables["validation-failed"][1:] == [
        ["member_scores", "score in [0, 1]", "critical", "failed", "1.2", "1"]]
    assert page.tables["validation-passed"][1][:4] == [
        "member_features_daily", "row count within 20%", "critical", "passed"]
    assert page.tables["score-bands-member_churn"][1:] == [["low", "48", "53.9%"],
                                                           ["medium", "27", "30.3%"],
                                                           ["high", "14", "15.7%"]]
    assert page.ids["overall-status"]["class"] == "badge failed"  # a step failed


def test_report_is_self_contained(settings: Settings) -> None:
    page = render_report(report_data(settings), None, BANDS)
    parsed = parse(page)
    assert "script" not in parsed.tags and "link" not in parsed.tags
    assert "img" not in parsed.tags and "iframe" not in parsed.tags
    for reference in ("http:", "https:", "src=", "url(", "@import", "//cdn"):
        assert reference not in page
    assert "not run through pipeline" in page
    assert "steps-table" not in parsed.ids


def test_values_are_escaped(settings: Settings) -> None:
    data = report_data(settings)
    data.drift.append(drift("<script>alert(1)</script>", "psi", 0.5, 0.25, "alert"))
    page = render_report(data, None, BANDS)
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_report_is_written_when_nothing_has_run_yet(ctx: RunContext) -> None:
    path = build_run_report(ctx, DAY)
    assert path == ctx.paths.reports / "runs" / DAY.isoformat() / "report-test-run.html"
    text = path.read_text(encoding="utf-8")
    assert (ctx.paths.reports / "latest.html").read_text(encoding="utf-8") == text
    assert (path.parent / "latest.html").read_text(encoding="utf-8") == text
    assert not list(path.parent.glob(".*.tmp"))
    page = parse(text)
    assert page.tables["row-counts"][1][-1] == "no table"
    for message in ("not run through pipeline", "no scores for this day",
                    "no drift metrics for this day", "no validation results for this day"):
        assert message in text
    # the pipeline's report of the same run replaces this one, with the steps
    again = build_run_report(ctx, DAY, steps=STEPS)
    assert again == path and "steps-table" in parse(again.read_text(encoding="utf-8")).ids


@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="Debian's chromium is not installed (apt-get install chromium)")
def test_headless_chromium_renders_the_report(settings: Settings, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(render_report(report_data(settings), STEPS, BANDS), encoding="utf-8")
    png = tmp_path / "report.png"
    command = [
        "chromium", "--headless", "--no-sandbox", "--disable-gpu",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1200,2400", f"--screenshot={png}", page.as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HOME": str(tmp_path)}, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1200, 2400)
    # a blank page compresses to a few kB; charts, tables and text do not
    assert len(data) > 60_000, len(data)
