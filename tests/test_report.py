"""The run report: a self-contained HTML page, rendered from its Jinja2 template, whose
matplotlib charts (inline SVG, text kept as text) and tables hold the day's figures
(parsed back with html.parser), written atomically under $MEMBERSCORE_HOME/reports/,
the same bytes for the same data, and rendered by headless Chromium when it is
installed."""

from __future__ import annotations

import datetime as dt
import io
import re
import shutil
from dataclasses import fields
from pathlib import Path
from types import SimpleNamespace

import jinja2
import matplotlib
import pytest
from reportpage import parse

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
from memberscore.reporting import (
    COLOURS,
    build_run_report,
    render_report,
    report_context,
    template,
)

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


CHROMIUM = shutil.which("chromium")
WORST = ["txn_count_30d", "inflow_sum_30d", "legacy_ratio", "tenure_days", "quiet_11",
         "quiet_10", "score", "quiet_09", "quiet_08", "quiet_07"]  # worst first
WORST_STATUS = ["alert", "alert", "warn", "warn", *["ok"] * 6]


def test_report_has_the_charts_and_tables_with_the_day_s_figures(settings: Settings) -> None:
    page = parse(render_report(report_data(settings), STEPS, BANDS))

    # the score histogram: 20 bars side by side over [0, 1], their heights the counts
    histogram = page.charts["score-histogram-member_churn"]
    assert histogram.attrs["class"] == "chart" and histogram.attrs["role"] == "img"
    assert histogram.attrs["aria-label"] == "Histogram of 89 scores of member_churn"
    bars = [histogram.box(f"bin-{i:02d}") for i in range(len(HISTOGRAM))]
    assert not histogram.has(f"bin-{len(HISTOGRAM):02d}")
    left, right, base = bars[0][0], bars[-1][1], bars[0][3]
    assert [x0 for x0, *_ in bars] == pytest.approx(
        [left + (right - left) * i / len(HISTOGRAM) for i in range(len(HISTOGRAM))])
    assert all(y1 == pytest.approx(base) for *_, y1 in bars)  # on one baseline
    unit = (bars[3][3] - bars[3][2]) / 20  # the tallest bar, 20 members
    assert [y1 - y0 for *_, y0, y1 in bars] == pytest.approx([unit * c for c in HISTOGRAM])
    assert {histogram.style(f"bin-{i:02d}", "fill") for i in range(20)} == {COLOURS["bar"]}
    # the band boundaries (not the lowest band's, at 0), dashed, named
    for band, lower in (("medium", 0.2), ("high", 0.5)):
        x0, x1, _, _ = histogram.box(f"band-{band}")
        assert x0 == x1 == pytest.approx(left + (right - left) * lower)
        assert "stroke-dasharray" in histogram.group(f"band-{band}")[0].attrs["style"]
        assert histogram.text(f"band-label-{band}").text.strip() == band
    assert not histogram.has("band-low")
    assert {"score", "members", "0", "0.25", "0.5", "0.75", "1", "20"} <= set(
        histogram.texts())

    # the worst-drift chart: the 10 worst columns, alerts first, then by PSI, from the
    # top down; the bar is the PSI, coloured by the worse status of PSI and KS
    chart = page.charts["drift-worst-member_churn"]
    assert chart.attrs["aria-label"] == "PSI of the 10 worst columns of member_churn"
    assert [chart.text(f"column-{i}").text for i in range(10)] == WORST
    assert not chart.has("column-10") and not chart.has("bar-10")
    tops = [float(chart.text(f"column-{i}").attrs["y"]) for i in range(10)]
    assert tops == sorted(tops) and len(set(tops)) == 10
    assert [chart.style(f"bar-{i}", "fill") for i in range(10)] == [
        COLOURS[s] for s in WORST_STATUS]
    boxes = [chart.box(f"bar-{i}") for i in range(10)]
    assert [y0 for _, _, y0, _ in boxes] == sorted(y0 for _, _, y0, _ in boxes)
    for (_, _, y0, y1), label_y in zip(boxes, tops, strict=True):
        assert y0 < label_y < y1 + 5  # each bar beside its column's label
    origin, full = boxes[0][0], boxes[0][1] - boxes[0][0]  # txn_count_30d: psi 0.4123
    assert [x1 - x0 for x0, x1, _, _ in boxes[:4]] == pytest.approx(
        [full, full * 0.05 / 0.4123, 0.0, full * 0.12 / 0.4123])  # legacy_ratio: n/a
    assert [chart.text(f"value-{i}").text for i in (0, 2, 4)] == [
        "psi 0.412 · ks 0.310", "psi n/a", "psi 0.011"]
    # the thresholds, where PSI 0.1 and 0.25 are, in their colours, named
    for name, value in (("warn", 0.1), ("alert", 0.25)):
        x0, x1, _, _ = chart.box(f"threshold-{name}")
        assert x0 == x1 == pytest.approx(origin + full * value / 0.4123)
        assert chart.style(f"threshold-{name}", "stroke") == COLOURS[name]
        assert chart.text(f"threshold-label-{name}").text.strip() == f"{name} {value:g}"
    assert "PSI" in chart.texts()

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
    assert "image" not in parsed.tags and "foreignobject" not in parsed.tags
    for reference in ("http:", "https:", "src=", "@import", "//cdn", "<metadata"):
        assert reference not in page
    # the charts' references are to their own parts (clip paths, tick marks): every
    # url() and every href names an element of the page
    references = re.findall(r"url\(([^)]*)\)", page) + re.findall(r'href="([^"]*)"', page)
    assert references
    for reference in references:
        assert reference.startswith("#") and reference[1:] in parsed.ids, reference
    # text stays text: no glyph drawn as a path
    assert "DejaVuSans-" not in page and "<text" in page
    assert "not run through pipeline" in page
    assert "steps-table" not in parsed.ids
    # each chart's own style sheet left out: the page's rules are the only ones
    assert page.count("<style") == 1


def test_values_are_escaped(settings: Settings) -> None:
    data = report_data(settings)
    data.drift.append(drift("<script>alert(1)</script>", "psi", 0.5, 0.25, "alert"))
    data.scores.append(ScoreSummary('churn "&<blink>', "4", 3, None, (1, 2), ()))
    page = render_report(data, None, BANDS)
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<blink>" not in page and "churn &#34;&amp;&lt;blink&gt;" in page  # by Jinja2
    parsed = parse(page)
    # the worst column, first in its chart, escaped in the SVG by matplotlib
    assert parsed.charts["drift-worst-member_churn"].text("column-0").text == \
        "<script>alert(1)</script>"
    # in attributes too: the chart's label, and its id made of safe characters
    chart = parsed.charts["score-histogram-churn----blink-"]
    assert chart.attrs["aria-label"] == 'Histogram of 3 scores of churn "&<blink>'
    assert 'aria-label="Histogram of 3 scores of churn &#34;&amp;&lt;blink&gt;"' in page


def test_the_template_is_strict_about_what_it_shows(settings: Settings) -> None:
    """Every value the template names must be in the context: a missing one fails
    the rendering instead of leaving a blank in the page."""
    context = report_context(report_data(settings), STEPS, BANDS)
    page = template().render(context)
    assert page == render_report(report_data(settings), STEPS, BANDS)
    for key in context:  # every key is used, and none may be left out
        with pytest.raises(jinja2.UndefinedError, match=f"'{key}' is undefined"):
            template().render({k: v for k, v in context.items() if k != key})
    data = context["data"]  # an attribute missing from an object fails too
    without_env = SimpleNamespace(**{f.name: getattr(data, f.name) for f in fields(data)
                                     if f.name != "env"})
    with pytest.raises(jinja2.UndefinedError, match="no attribute 'env'"):
        template().render({**context, "data": without_env})
    assert template().environment.autoescape is True


def test_the_same_data_renders_the_same_bytes(settings: Settings) -> None:
    first = render_report(report_data(settings), STEPS, BANDS)
    # whatever the process's matplotlib settings, which the report leaves as they were
    custom = {"font.size": 30.0, "svg.fonttype": "path", "svg.hashsalt": None,
              "axes.facecolor": "red", "text.parse_math": True}
    with matplotlib.rc_context(custom):
        second = render_report(report_data(settings), STEPS, BANDS)
        assert {k: matplotlib.rcParams[k] for k in custom} == custom
    assert second == first
    # and a figure that changes changes the page
    data = report_data(settings)
    data.scores[0] = ScoreSummary("member_churn", "3", sum(HISTOGRAM) + 1, 0.21,
                                  (6, *HISTOGRAM[1:]), data.scores[0].bands)
    third = render_report(data, STEPS, BANDS)
    assert third != first
    assert parse(third).charts["drift-worst-member_churn"].elements == \
        parse(first).charts["drift-worst-member_churn"].elements


def test_a_model_without_psi_or_ks_has_no_chart(settings: Settings) -> None:
    data = report_data(settings)
    data.drift.append(drift("score", "mean_score_vs_base_rate", 1.1, None, "ok", "other"))
    text = render_report(data, None, BANDS)
    page = parse(text)
    assert set(page.charts) == {"score-histogram-member_churn", "drift-worst-member_churn"}
    assert "<h3>other</h3>\n<p class=\"empty\">no PSI or KS metrics to chart</p>" in text
    assert ["other", "score", "mean_score_vs_base_rate", "1.1000", "–", "ok"] in \
        page.tables["drift-table"]


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


RENDERED = """() => [...document.querySelectorAll('svg.chart')].map(svg => {
  const box = e => { const r = e.getBoundingClientRect();
                     return {x: r.x, y: r.y, width: r.width, height: r.height}; };
  const part = gid => svg.querySelector(`[id="${svg.id}-${gid}"] path`);
  const bars = [];
  for (let i = 0; part(`bin-${String(i).padStart(2, '0')}`); i++)
    bars.push(box(part(`bin-${String(i).padStart(2, '0')}`)));
  for (let i = 0; part(`bar-${i}`); i++) bars.push(box(part(`bar-${i}`)));
  const labels = [...svg.querySelectorAll('[id*="-column-"] text')].map(t => ({
    text: t.textContent, top: t.getBoundingClientRect().top,
    length: t.getComputedTextLength()}));
  return {id: svg.id, box: box(svg), bars, labels,
          texts: svg.querySelectorAll('text').length};
})"""


@pytest.mark.skipif(CHROMIUM is None,
                    reason="Debian's chromium is not installed (apt-get install chromium)")
def test_headless_chromium_renders_the_report(settings: Settings, tmp_path: Path) -> None:
    """Debian's chromium (through Playwright, never a browser of its own) lays the
    charts out and paints them: bars where the figures put them, in their colours,
    labels in a font; and the page asks for nothing but itself."""
    from PIL import Image
    from playwright.sync_api import sync_playwright

    page_file = tmp_path / "report.html"
    page_file.write_text(render_report(report_data(settings), STEPS, BANDS),
                         encoding="utf-8")
    requested: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            tab = browser.new_page(viewport={"width": 1200, "height": 900},
                                   device_scale_factor=1)
            tab.on("request", lambda request: requested.append(request.url))
            tab.route("**/*", lambda route: route.continue_()
                      if route.request.url.startswith("file://") else route.abort())
            tab.goto(page_file.as_uri(), wait_until="load")
            charts = {c["id"]: c for c in tab.evaluate(RENDERED)}
            png = tab.screenshot(full_page=True)
        finally:
            browser.close()
    assert requested == [page_file.as_uri()]
    assert set(charts) == {"score-histogram-member_churn", "drift-worst-member_churn"}

    histogram = charts["score-histogram-member_churn"]
    assert histogram["box"]["width"] == pytest.approx(640, abs=1)  # its own size
    assert histogram["box"]["height"] == pytest.approx(260, abs=1)
    heights = [bar["height"] for bar in histogram["bars"]]
    assert heights == pytest.approx([heights[3] * c / 20 for c in HISTOGRAM], abs=0.5)
    assert histogram["texts"] >= 10

    drift_chart = charts["drift-worst-member_churn"]
    assert [label["text"] for label in drift_chart["labels"]] == WORST
    tops = [label["top"] for label in drift_chart["labels"]]
    assert tops == sorted(tops) and len(set(tops)) == 10  # laid out top down
    assert all(label["length"] > 20 for label in drift_chart["labels"])  # drawn in a font
    widths = [bar["width"] for bar in drift_chart["bars"]]
    assert widths[1] / widths[0] == pytest.approx(0.05 / 0.4123, abs=0.01)

    # the screenshot: the bars painted in their colours where the layout put them
    image = Image.open(io.BytesIO(png)).convert("RGB")
    assert image.width == 1200

    def colour(bar: dict[str, float]) -> str:
        pixel = image.getpixel((int(bar["x"] + bar["width"] / 2),
                                int(bar["y"] + bar["height"] / 2)))
        return "#{:02x}{:02x}{:02x}".format(*pixel)
    assert colour(histogram["bars"][3]) == COLOURS["bar"]
    assert [colour(bar) for i, bar in enumerate(drift_chart["bars"]) if i != 2] == [
        COLOURS[s] for i, s in enumerate(WORST_STATUS) if i != 2]  # 2: n/a, no bar
