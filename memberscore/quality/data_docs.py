"""Data Docs that work offline.

GX renders its Data Docs pages with CSS, scripts and fonts from public CDNs
(bootstrap, jQuery, bootstrap-table, font-awesome, vega ...) and its logo from its
own web server.  Opened without a network, a page is unstyled and the index's list
of validation results is empty (bootstrap-table, a script, fills it in).

memberscore serves those files from the site itself:
- `make install` fetches the npm packages pinned in requirements/data-docs-assets/
  (the versions GX's page templates name) into
  `<venv>/share/memberscore/data-docs-assets/`, and the wheel carries the files the
  pages need as package data (setup.py copies them in when it builds the wheel);
  nothing is fetched at run time;
- after each build, `make_offline` copies those files once into the site's
  `static/vendor/` and points the pages just written at them, with paths relative
  to each page (so a site works from `file://`, any static web server or a
  Databricks volume).  GX's remote logo becomes GX's own local copy, the newsletter
  footer is removed and the link to GX's web site becomes plain text;
- `unmapped_urls` names every remote file a page still loads (a URL missing from
  `LOCAL_COPIES`, e.g. after a GX upgrade changed its templates); the build logs
  them as a warning, and tests/test_data_docs.py fails on them.

This module uses the standard library only: setup.py loads it by path (without
importing the package) to know which files the wheel carries.
"""

from __future__ import annotations

import html
import logging
import os
import re
import shutil
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

# The one place that says where each remote file of GX's pages is kept in a site,
# as a path under the site's `static/` folder.  `vendor/<path>` is <path> in the npm
# packages of requirements/data-docs-assets/ (whose package.json pins the versions
# named here, and says which versions the CDN ranges `vega@5` etc. stand for);
# anything else is one of GX's own static files, which GX copies into every site.
# Keys are URLs without their query string: GX adds a timestamp to the logo's URL.
VENDOR = "vendor/"
LOCAL_COPIES: dict[str, str] = {
    # index_page.j2, page.j2, page_minimal.j2
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css":
        "vendor/bootstrap/dist/css/bootstrap.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css":
        "vendor/bootstrap-table/dist/bootstrap-table.min.css",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/"
    "bootstrap-table-filter-control.min.css":
        "vendor/bootstrap-table-1.19.0/dist/extensions/filter-control/"
        "bootstrap-table-filter-control.min.css",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/"
    "bootstrap-table-filter-control.css":
        "vendor/bootstrap-table-1.19.0/dist/extensions/filter-control/"
        "bootstrap-table-filter-control.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/"
    "bootstrap-datepicker.min.css":
        "vendor/bootstrap-datepicker/dist/css/bootstrap-datepicker.min.css",
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/"
    "bootstrap-prefers-dark.css":
        "vendor/@forevolve/bootstrap-dark/dist/css/bootstrap-prefers-dark.css",
    # js_script_imports.j2 (a bare `vega@5` is the package's `jsdelivr` file)
    "https://cdn.jsdelivr.net/npm/vega@5": "vendor/vega/build/vega.min.js",
    "https://cdn.jsdelivr.net/npm/vega-lite@5": "vendor/vega-lite/build/vega-lite.min.js",
    "https://cdn.jsdelivr.net/npm/vega-embed@6": "vendor/vega-embed/build/vega-embed.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css":
        "vendor/@fortawesome/fontawesome-free/css/all.min.css",
    "https://code.jquery.com/jquery-3.7.1.min.js": "vendor/jquery/dist/jquery.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js":
        "vendor/popper.js/dist/umd/popper.min.js",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js":
        "vendor/bootstrap/dist/js/bootstrap.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js":
        "vendor/bootstrap-table/dist/bootstrap-table.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/"
    "bootstrap-table-filter-control.min.js":
        "vendor/bootstrap-table/dist/extensions/filter-control/"
        "bootstrap-table-filter-control.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/"
    "bootstrap-datepicker.min.js":
        "vendor/bootstrap-datepicker/dist/js/bootstrap-datepicker.min.js",
    # top_navbar.j2's logo, and the dark-mode logo of data_docs_default_styles.css
    # (GX ships no dark variant: the same logo stands in for it)
    "https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/logo-long.png":
        "images/logo-long.png",
    "https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/full_logo_dark.png":
        "images/logo-long.png",
}

# The fetched folder and the wheel's copy have one layout: the npm packages' files
# under node_modules/, and this manifest (the sha256 of the package-lock.json they
# were installed from), written last.  A site's static/vendor/ gets a copy of the
# manifest after its files: equal manifests mean the site's copy is complete and
# current.
MANIFEST = "package-lock.sha256"
NODE_MODULES = "node_modules"
PACKAGED = Path(__file__).with_name("data_docs_assets")
INSTALL_HINT = "make install"

# <script src>, <link href>, <img src>, and CSS url() (GX inlines its styles).
_TAG = re.compile(r"<(script|link|img)\b[^>]*>", re.IGNORECASE)
_ATTRIBUTE = {"script": "src", "link": "href", "img": "src"}
_CSS_URL = re.compile(r"""url\(\s*(["']?)([^"')\s]+)\1\s*\)""", re.IGNORECASE)
_REMOTE = re.compile(r"^(?:https?:)?//", re.IGNORECASE)
# A relative reference to a file in the site's static folder.
_OWN_STATIC = re.compile(r"^(?:\./)?(?:\.\./)*static/(.+)$")
# Subresource-integrity attributes of a CDN tag: a file:// page is an opaque origin,
# where a `crossorigin` script fails its CORS check; the local files are the very
# bytes these hashes name (tests/test_data_docs.py checks).
_SRI = re.compile(r"""\s+(?:integrity|crossorigin)\s*=\s*(["']).*?\1""", re.IGNORECASE)
# GX's page chrome: the newsletter footer, and links to GX's web site.
_NEWSLETTER = re.compile(
    r"\s*<footer\b[^>]*>(?:(?!</footer>).)*?greatexpectations\.io/newsletter"
    r"(?:(?!</footer>).)*</footer>", re.IGNORECASE | re.DOTALL)
_GX_LINK = re.compile(
    r"""<a\s[^>]*href=(["'])https?://(?:www\.)?greatexpectations\.io[^"']*\1[^>]*>"""
    r"(.*?)</a>", re.IGNORECASE | re.DOTALL)

State = Literal["copied", "present", "missing"]


def fetched_dir() -> Path:
    """Where `make install` puts the npm packages:
    `<venv>/share/memberscore/data-docs-assets`."""
    return Path(sys.prefix) / "share" / "memberscore" / "data-docs-assets"


def asset_root() -> Path | None:
    """The folder the site's copies come from: the wheel's package data, else the
    fetched folder; None when neither finished installing."""
    for root in (PACKAGED, fetched_dir()):
        if (root / MANIFEST).is_file():
            return root
    return None


def local_copy(url: str) -> str | None:
    """The path under a site's `static/` that stands for `url`, if any."""
    return LOCAL_COPIES.get(_bare(html.unescape(url)))


def vendor_files(node_modules: Path) -> list[str]:
    """The files (paths under `node_modules`) a site needs: every vendor file of
    `LOCAL_COPIES`, and the files their CSS loads by relative url() (font-awesome's
    webfonts)."""
    files: set[str] = set()
    for target in LOCAL_COPIES.values():
        if not target.startswith(VENDOR):
            continue
        name = target.removeprefix(VENDOR)
        files.add(name)
        if name.endswith(".css") and (node_modules / name).is_file():
            text = (node_modules / name).read_text(encoding="utf-8", errors="replace")
            for ref in {m.group(2) for m in _CSS_URL.finditer(text)}:
                if ref.startswith(("data:", "#")) or _REMOTE.match(ref):
                    continue
                files.add(os.path.normpath(
                    os.path.join(os.path.dirname(name), _bare(ref))).replace(os.sep, "/"))
    return sorted(files)


def copy_assets(site: Path) -> State:
    """Copy the vendor files into `site/static/vendor/` unless the site already has
    this set: `copied`, `present`, or `missing` (no installed assets to copy, and
    the site has none)."""
    vendor = site / "static" / VENDOR
    have = _read(vendor / MANIFEST)
    root = asset_root()
    if root is None:
        return "present" if have is not None else "missing"
    want = _read(root / MANIFEST)
    if have == want:
        return "present"
    (vendor / MANIFEST).unlink(missing_ok=True)
    source = root / NODE_MODULES
    absent = []
    for name in vendor_files(source):
        if not (source / name).is_file():
            absent.append(name)
            continue
        (vendor / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / name, vendor / name)
    if absent:
        raise FileNotFoundError(f"{source} lacks {', '.join(absent)}; run `{INSTALL_HINT}`")
    (vendor / MANIFEST).write_text(want or "", encoding="utf-8")
    return "copied"


def localize(text: str, static: str) -> str:
    """`text` (a page) with every remote file of `LOCAL_COPIES` replaced by its local
    copy under `static` (the site's static folder, relative to the page: `static/`
    or `../../static/`...), its own references to the static folder made relative
    to the page the same way, and without GX's newsletter footer and links."""

    def tag(match: re.Match[str]) -> str:
        element = match.group(0)
        attribute = _ATTRIBUTE[match.group(1).lower()]
        found = re.search(rf"""\b{attribute}\s*=\s*(["'])(.*?)\1""", element,
                          re.IGNORECASE | re.DOTALL)
        if found is None:
            return element
        start, end = found.span(2)
        target = local_copy(found.group(2))
        if target is None:
            # GX's own static files, with the page's depth recomputed: GX's favicon
            # link on a validation page climbs one folder too few
            own = _OWN_STATIC.match(found.group(2))
            if own is None:
                return element
            return element[:start] + static + own.group(1) + element[end:]
        element = element[:start] + static + target + element[end:]
        return _SRI.sub("", element)

    def css(match: re.Match[str]) -> str:
        target = local_copy(match.group(2))
        if target is None:
            return match.group(0)
        return f"url('{static}{target}')"

    text = _TAG.sub(tag, text)
    text = _CSS_URL.sub(css, text)
    text = _NEWSLETTER.sub("", text)
    return _GX_LINK.sub(r"\2", text)


def remote_references(text: str) -> list[str]:
    """The remote URLs a page loads: `<script src>`, `<link href>`, `<img src>` and
    CSS `url()`, in order of appearance."""
    found = []
    for match in _TAG.finditer(text):
        attribute = _ATTRIBUTE[match.group(1).lower()]
        value = re.search(rf"""\b{attribute}\s*=\s*(["'])(.*?)\1""", match.group(0),
                          re.IGNORECASE | re.DOTALL)
        if value is not None and _REMOTE.match(value.group(2)):
            found.append(html.unescape(value.group(2)))
    found.extend(html.unescape(m.group(2)) for m in _CSS_URL.finditer(text)
                 if _REMOTE.match(m.group(2)))
    return found


def unmapped_urls(site: Path, pages: Iterable[Path] | None = None) -> list[str]:
    """The remote URLs that `pages` (default: every page of the site) still load,
    each once, sorted: after `make_offline`, the ones without a local copy."""
    urls: set[str] = set()
    for page in site.rglob("*.html") if pages is None else pages:
        urls.update(remote_references(page.read_text(encoding="utf-8")))
    return sorted(urls)


def static_prefix(site: Path, page: Path) -> str:
    """The site's static folder as seen from `page`: `static/` for the index,
    `../../../../static/` for a validation page four folders down."""
    depth = len(page.relative_to(site).parts) - 1
    return "../" * depth + "static/"


def make_offline(site: Path, pages: Iterable[Path]) -> None:
    """After GX built `site`: copy the vendor files into it (once) and point `pages`
    (every page of the site, the first time) at the local copies.  Logs a warning,
    and raises nothing, when the assets are not installed or a page still loads a
    remote file: Data Docs never fail a validation."""
    try:
        state = copy_assets(site)
    except OSError as exc:
        log.warning("Data Docs assets were not copied into %s (%s: %s): the pages load "
                    "their CSS and scripts from CDNs", site / "static" / VENDOR,
                    type(exc).__name__, exc)
        return
    if state == "missing":
        log.warning("Data Docs assets are not installed (no %s in %s): the pages load "
                    "their CSS and scripts from CDNs and do not work offline; run `%s` "
                    "in the memberscore repository (it fetches them with npm), and build "
                    "the wheel after it", MANIFEST, fetched_dir(), INSTALL_HINT)
        return
    todo = sorted(site.rglob("*.html")) if state == "copied" else list(pages)
    for page in todo:
        text = page.read_text(encoding="utf-8")
        offline = localize(text, static_prefix(site, page))
        if offline != text:
            _write(page, offline)
    unmapped = unmapped_urls(site, todo)
    if unmapped:
        log.warning("Data Docs pages still load %d remote file(s) with no local copy in "
                    "memberscore.quality.data_docs.LOCAL_COPIES: %s", len(unmapped),
                    ", ".join(unmapped))


def _bare(url: str) -> str:
    return url.split("#", 1)[0].split("?", 1)[0]


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None


def _write(path: Path, text: str) -> None:
    """Replace `path` whole: a reader never sees half a page (and two processes
    building the same site never share a partial file)."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)
