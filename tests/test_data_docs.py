"""Data Docs that work offline (memberscore.quality.data_docs): a real validation
builds a real site, which headless Chromium then opens with the network off.

The browser tests drive Debian's `chromium` through Playwright (never a browser
Playwright downloads) and skip only when it is not installed; CI installs it.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import logging
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from memberscore.config import load_settings
from memberscore.context import RunContext
from memberscore.quality import data_docs, validate_table
from memberscore.quality.suites import SCORES
from tests.test_quality import SCORES_GOOD, frame

D = dt.date(2026, 1, 5)
GX_VIEW = Path(__import__("great_expectations").__file__).parent / "render" / "view"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Debian's chromium is not installed (apt-get install chromium): the Data Docs "
           "browser tests open the site in it")


LOCAL_REFERENCE = re.compile(
    r'<(?:script|img)\b[^>]*\bsrc="([^"]+)"|<link\b[^>]*\bhref="([^"]+)"')


@dataclass
class Site:
    root: Path
    index: Path
    page: Path
    suite: str


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, spark: Any) -> Iterator[Site]:
    """One validation of a day of scores (three rows, one out of range: the page
    shows a failure and its example), through the gate, with Data Docs: GX's pandas
    engine, the default for so few rows."""
    home = tmp_path_factory.mktemp("docs") / "home"
    home.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MEMBERSCORE_HOME", str(home))
        settings = load_settings("local")
        assert settings.validation.build_data_docs
        ctx = RunContext(settings, run_id="docs-run", spark=spark)
        rows = [{**r, "member_id": f"M{i}"} for i, r in enumerate(SCORES_GOOD)]
        rows[-1]["score"] = 1.5
        found = validate_table(ctx, SCORES.name, D, df=frame(spark, SCORES, rows),
                               raise_on_critical=False)
        assert not found.passed and found.docs_path is not None
        root = found.docs_path.parent
        (page,) = (root / "validations").rglob("*.html")
        yield Site(root, found.docs_path, page, SCORES.suite_name)


# --------------------------------------------------------------------------- the site


def test_pages_load_no_remote_file(site: Site) -> None:
    """Every remote file GX's pages load has a local copy: after a GX upgrade whose
    templates load something new, this names it (add it to the npm pins and to
    data_docs.LOCAL_COPIES)."""
    unmapped = data_docs.unmapped_urls(site.root)
    assert unmapped == [], ("Data Docs pages load remote files with no local copy in "
                            "memberscore.quality.data_docs.LOCAL_COPIES: "
                            + ", ".join(unmapped))
    for page in (site.index, site.page):
        text = page.read_text()
        assert "greatexpectations.io" not in text  # the newsletter footer and links
        assert "amazonaws.com" not in text  # the remote logo
        assert "crossorigin" not in text


def test_every_local_reference_resolves_from_its_page(site: Site) -> None:
    """Relative to each page's own folder: the index links `static/...`, a validation
    page four folders down `../../../../static/...`."""
    assert 'src="static/vendor/jquery/dist/jquery.min.js"' in site.index.read_text()
    assert ('src="../../../../static/vendor/jquery/dist/jquery.min.js"'
            in site.page.read_text())
    for page in (site.index, site.page):
        text = page.read_text()
        for ref in [a or b for a, b in LOCAL_REFERENCE.findall(text)]:
            assert (page.parent / ref.split("?")[0]).is_file(), (page, ref)


def test_local_copies_are_the_bytes_gx_pins(site: Site) -> None:
    """Where GX's template pins a CDN file by its hash (subresource integrity), the
    copy in the site is that very file: the npm versions are the ones GX names."""
    template = (GX_VIEW / "templates" / "js_script_imports.j2").read_text()
    pinned = re.findall(r'src="(https://[^"]+)" integrity="sha384-([^"]+)"', template)
    assert len(pinned) >= 2, template
    for url, digest in pinned:
        local = site.root / "static" / data_docs.LOCAL_COPIES[url]
        actual = base64.b64encode(hashlib.sha384(local.read_bytes()).digest()).decode()
        assert actual == digest, url


def test_gx_templates_name_no_remote_file_without_a_local_copy() -> None:
    """The same check on GX's templates and styles themselves, pages this project
    does not render (expectation suite pages, profiling) included."""
    sources = [*(GX_VIEW / "templates").glob("*.j2"),
               *(GX_VIEW / "static" / "styles").glob("*.css")]
    unmapped = sorted({url for source in sources
                       for url in data_docs.remote_references(source.read_text())
                       if data_docs.local_copy(url) is None})
    assert unmapped == [], "GX's templates load files with no local copy: " + ", ".join(
        unmapped)


def test_the_site_copy_is_made_once(site: Site) -> None:
    manifest = site.root / "static" / "vendor" / data_docs.MANIFEST
    before = manifest.stat().st_mtime_ns
    assert data_docs.copy_assets(site.root) == "present"
    assert manifest.stat().st_mtime_ns == before
    fonts = site.root / "static" / "vendor" / "@fortawesome" / "fontawesome-free" / "webfonts"
    assert (fonts / "fa-solid-900.woff2").is_file()  # named by font-awesome's CSS


# --------------------------------------------------------------------------- the browser


def open_offline(url: str, script: str) -> tuple[Any, list[str], list[str]]:
    """Open `url` in headless Chromium with every non-file request refused; returns
    what `script` evaluated to, every request made and every request that failed."""
    from playwright.sync_api import sync_playwright

    requested: list[str] = []
    failed: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = browser.new_page()
            page.on("request", lambda request: requested.append(request.url))
            page.on("requestfailed", lambda request: failed.append(
                f"{request.url} ({request.failure})"))
            page.route("**/*", lambda route: route.continue_()
                       if route.request.url.startswith("file://") else route.abort())
            page.goto(url, wait_until="load")
            page.wait_for_load_state("networkidle")
            value = page.evaluate(script)
        finally:
            browser.close()
    return value, requested, failed


STYLE = """() => ({
  bodyFont: getComputedStyle(document.body).fontFamily,
  navbarDisplay: getComputedStyle(document.querySelector('nav.navbar')).display,
  jquery: typeof window.jQuery,
  bootstrapTable: typeof (window.jQuery && window.jQuery.fn.bootstrapTable),
  logo: document.querySelector('.navbar-brand img').naturalWidth,
})"""


def assert_styled(found: dict[str, Any]) -> None:
    # bootstrap's body font and .navbar flex box; Chromium's own default is a serif
    assert found["bodyFont"].startswith("-apple-system"), found
    assert found["navbarDisplay"] == "flex", found
    assert found["jquery"] == "function" and found["bootstrapTable"] == "function", found
    assert found["logo"] > 0, found  # GX's logo, from the site's own static folder


@needs_chromium
def test_index_lists_the_results_offline(site: Site) -> None:
    script = STYLE.replace("({", """({
  rows: [...document.querySelectorAll('table tbody tr')]
    .filter(r => !r.classList.contains('no-records-found')).map(r => r.innerText),""", 1)
    found, requested, failed = open_offline(site.index.as_uri(), script)
    assert [u for u in requested if not u.startswith("file://")] == []
    assert failed == []
    assert any(site.suite in row and "2026-01-05" in row for row in found["rows"]), found
    assert_styled(found)


@needs_chromium
def test_validation_page_renders_offline(site: Site) -> None:
    script = STYLE.replace("({", """({
  text: document.body.innerText,
  icons: getComputedStyle(document.querySelector('.fas')).fontFamily,""", 1)
    found, requested, failed = open_offline(site.page.as_uri(), script)
    assert [u for u in requested if not u.startswith("file://")] == []
    assert failed == []
    assert "Expectation Validation Result" in found["text"], found["text"][:2000]
    assert "Font Awesome" in found["icons"], found
    assert_styled(found)


# --------------------------------------------------------------------------- the rules


def test_a_remote_file_without_a_local_copy_is_named(tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    page = tmp_path / "index.html"
    page.write_text(
        '<link rel="stylesheet" href="https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/'
        'bootstrap.min.css"/><script src="https://cdn.example.org/new.js"></script>'
        "<style>.a { background: url('https://cdn.example.org/bg.png') }</style>"
        '<img src="//cdn.example.org/logo.svg"><a href="https://example.org/">a link</a>')
    assert data_docs.asset_root() is not None, "the Data Docs assets: run `make install`"
    with caplog.at_level(logging.WARNING, logger=data_docs.__name__):
        data_docs.make_offline(tmp_path, [page])
    text = page.read_text()
    assert 'href="static/vendor/bootstrap/dist/css/bootstrap.min.css"' in text
    assert data_docs.unmapped_urls(tmp_path) == [
        "//cdn.example.org/logo.svg", "https://cdn.example.org/bg.png",
        "https://cdn.example.org/new.js"]
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "https://cdn.example.org/new.js" in warning and "LOCAL_COPIES" in warning


def test_without_installed_assets_the_pages_stay_and_the_warning_says_what_to_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(data_docs, "asset_root", lambda: None)
    page = tmp_path / "index.html"
    original = '<script src="https://code.jquery.com/jquery-3.7.1.min.js"></script>'
    page.write_text(original)
    with caplog.at_level(logging.WARNING, logger=data_docs.__name__):
        data_docs.make_offline(tmp_path, [page])
    assert page.read_text() == original  # still works online
    (warning,) = [r.getMessage() for r in caplog.records]
    assert str(data_docs.fetched_dir()) in warning and "make install" in warning


def test_static_prefix_climbs_to_the_site_root(tmp_path: Path) -> None:
    assert data_docs.static_prefix(tmp_path, tmp_path / "index.html") == "static/"
    page = tmp_path / "validations" / "s" / "2026-01-05" / "t" / "run.html"
    assert data_docs.static_prefix(tmp_path, page) == "../../../../static/"
    # GX's favicon link on such a page climbs three folders: fixed to four
    text = '<link rel="shortcut icon" href="../../../static/images/favicon.ico"/>'
    assert data_docs.localize(text, "../../../../static/") == (
        '<link rel="shortcut icon" href="../../../../static/images/favicon.ico"/>')
