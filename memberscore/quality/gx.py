"""Great Expectations behind one small interface: run a suite on a Spark DataFrame,
keep the result in GX's own store, build the Data Docs site.

One GX Data Context per results folder and process (`gx_workspace`), made without a
`great_expectations.yml`: suites come from the package, not from a GX project.  It
has in-memory stores for suites and definitions, a filesystem validation-results
store under `<reports>/validation/` (GX's JSON results, the files the gate's
messages point at) and a local Data Docs site under `<reports>/data_docs/` rendered
from that store, whose pages load nothing from the network (`build_docs`;
memberscore.quality.data_docs).

Two engines compute GX's metrics, chosen per validation (`validation.engine`):
- `pandas`: the day's rows are collected once (Arrow) and GX evaluates every
  expectation in pandas on the driver.  For a day of 20,000 feature rows this takes
  about 0.7 s, against 3.3-4.4 s on Spark, where GX issues about a dozen small Spark
  jobs and thousands of py4j calls.  Its cost grows with the rows (decimals are
  Python `Decimal`s, kept exact) while Spark's is mostly fixed, so `auto` uses it
  only up to `validation.pandas_max_rows` rows (the measured crossover is between
  100,000 and 200,000; docs/data-quality.md).
- `spark`: every metric is a Spark aggregate, and only bounded things reach the
  driver (counts, and with failures at most `SAMPLE_SIZE` unexpected values per
  expectation).  GX's own `persist=True` would cache every validated frame and never
  release it, so the datasource is built with `persist=False` and `run_suite` caches
  the frame itself for the duration of one validation (GX passes over it about a
  dozen times) and releases it afterwards.
The suites are the same for both, and so are the results: every suite test in
tests/test_quality.py runs once per engine with the same assertions (which
expectations fail, unexpected and element counts, example and observed values).

A validation is run in two passes: the first with no unexpected-value samples, which
lets Spark answer each expectation with aggregates only; when something failed, the
failed expectations alone are run again with samples, and their results replace the
first pass's.  On good data (the nightly case) this saves one Spark job per
expectation; on bad data the result still shows example values.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import unquote, urlparse

from memberscore.spark import release

if TYPE_CHECKING:
    import pandas as pd
    from great_expectations.core.expectation_suite import ExpectationSuite
    from great_expectations.core.expectation_validation_result import (
        ExpectationSuiteValidationResult,
    )
    from great_expectations.data_context import AbstractDataContext
    from great_expectations.data_context.types.resource_identifiers import (
        ValidationResultIdentifier,
    )
    from pyspark.sql import DataFrame

log = logging.getLogger(__name__)

DATASOURCE = "memberscore"
PANDAS_DATASOURCE = "memberscore_pandas"
ENGINES = ("spark", "pandas")
BATCH_DEFINITION = "day"
SITE = "local_site"
# How many unexpected values a failed expectation shows (GX's own default is 20).
SAMPLE_SIZE = 20
# The Data Docs index lists the newest N results.  Every validation rebuilds the
# index, which reads each result it lists (6-7 ms a file locally, more on cloud
# storage): 100 is about a month of nightly runs (three validations a night) and
# caps that at under a second; older pages stay in the site, and every result stays
# in `validation_results`.
DOCS_INDEX_LIMIT = 100

_SAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass
class GxWorkspace:
    """A Data Context bound to one reports folder, with one dataframe asset per table."""

    context: AbstractDataContext
    results_dir: Path
    docs_dir: Path

    def batch_definition(self, table: str, engine: str = "spark") -> Any:
        datasource = self.context.data_sources.get(
            PANDAS_DATASOURCE if engine == "pandas" else DATASOURCE)
        try:
            asset = datasource.get_asset(table)
        except LookupError:
            asset = datasource.add_dataframe_asset(table)  # type: ignore[attr-defined]
        try:
            return asset.get_batch_definition(BATCH_DEFINITION)
        except KeyError:
            return asset.add_batch_definition_whole_dataframe(BATCH_DEFINITION)


_WORKSPACES: dict[Path, GxWorkspace] = {}


def gx_workspace(reports: Path) -> GxWorkspace:
    """The Data Context for `reports` (made once per process: creating one costs a
    little, registering the datasource and assets a little more)."""
    reports = reports.resolve()
    workspace = _WORKSPACES.get(reports)
    if workspace is None:
        workspace = _new_workspace(reports)
        _WORKSPACES[reports] = workspace
    return workspace


def _new_workspace(reports: Path) -> GxWorkspace:
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    results_dir = reports / "validation"
    docs_dir = reports / "data_docs"
    defaults = InMemoryStoreBackendDefaults()
    stores = dict(defaults.stores)
    stores[defaults.validation_results_store_name] = {
        "class_name": "ValidationResultsStore",
        "store_backend": {
            "class_name": "TupleFilesystemStoreBackend",
            "base_directory": str(results_dir),
        },
    }
    config = DataContextConfig(
        store_backend_defaults=defaults,
        stores=stores,
        data_docs_sites={
            SITE: {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(docs_dir),
                },
                "site_index_builder": {
                    "class_name": "DefaultSiteIndexBuilder",
                    "validation_results_limit": DOCS_INDEX_LIMIT,
                },
            }
        },
        progress_bars=ProgressBarsConfig(globally=False),
        analytics_enabled=False,
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    context.data_sources.add_spark(DATASOURCE, persist=False)
    context.data_sources.add_pandas(PANDAS_DATASOURCE)
    return GxWorkspace(context, results_dir, docs_dir)


def run_suite(workspace: GxWorkspace, table: str, df: DataFrame, suite: ExpectationSuite,
              parameters: dict[str, Any], samples: bool = True,
              engine: str = "spark") -> ExpectationSuiteValidationResult:
    """Validate `df` against `suite` with `engine` (see the module docstring) and
    return GX's result.

    `samples=False` skips the second pass (no example values for failures)."""
    if engine not in ENGINES:
        raise ValueError(f"unknown validation engine {engine!r}; expected one of {ENGINES}")
    if engine == "pandas":
        result = _validate(workspace.batch_definition(table, "pandas"), to_pandas(df), suite,
                           parameters, samples)
        _nulls_as_none(result)
        return result
    cache = not df.is_cached
    if cache:
        df.persist()
    try:
        return _validate(workspace.batch_definition(table, "spark"), df, suite, parameters,
                         samples)
    finally:
        if cache:
            release(df)


def to_pandas(df: DataFrame) -> pd.DataFrame:
    """The rows of `df` as pandas (one Spark job, Arrow), for GX's pandas engine.

    An integer column with nulls stays integer (pandas' nullable Int64) instead of
    becoming float64 with NaN, so its values, and the examples a failure shows, are
    the integers Spark has."""
    from pyspark.sql import types as T

    frame = cast("pd.DataFrame", df.toPandas())
    for field in df.schema.fields:
        if isinstance(field.dataType, T.IntegralType) and frame[field.name].dtype.kind == "f":
            frame[field.name] = frame[field.name].astype("Int64")
    return frame


def _nulls_as_none(result: ExpectationSuiteValidationResult) -> None:
    """pandas shows a null as NaT or NaN where Spark shows None: example values
    read the same whichever engine found them."""
    import pandas as pd

    for item in result.results:
        found = item.result or {}
        values = found.get("partial_unexpected_list")
        if values:
            found["partial_unexpected_list"] = [
                None if not isinstance(v, (list, dict)) and pd.isna(v) else v for v in values]


def _validate(batch_definition: Any, data: Any, suite: ExpectationSuite,
              parameters: dict[str, Any], samples: bool) -> ExpectationSuiteValidationResult:
    """The two passes of a validation (module docstring) on one batch."""
    batch = batch_definition.get_batch(batch_parameters={"dataframe": data})
    result = batch.validate(
        suite, expectation_parameters=parameters,
        result_format={"result_format": "BASIC", "partial_unexpected_count": 0},
    )
    failed_ids = {str(r.expectation_config.id) for r in result.results
                  if not r.success and r.expectation_config is not None
                  and "unexpected_count" in (r.result or {})}
    if samples and failed_ids:
        _add_samples(batch, suite, parameters, result, failed_ids)
    return result


def _add_samples(batch: Any, suite: ExpectationSuite, parameters: dict[str, Any],
                 result: ExpectationSuiteValidationResult, failed_ids: set[str]) -> None:
    """Re-run the failed expectations with unexpected-value samples, in place."""
    from great_expectations.core.expectation_suite import ExpectationSuite

    failed = ExpectationSuite(
        name=suite.name,
        expectations=[e.configuration for e in suite.expectations if str(e.id) in failed_ids],
    )
    sampled = batch.validate(
        failed, expectation_parameters=parameters,
        result_format={"result_format": "BASIC", "partial_unexpected_count": SAMPLE_SIZE},
    )
    by_id = {_id(r): r for r in sampled.results}
    result.results = [by_id.get(_id(r), r) for r in result.results]


def _id(item: Any) -> str | None:
    config = item.expectation_config
    return None if config is None else str(config.id)


def store_result(workspace: GxWorkspace, result: ExpectationSuiteValidationResult,
                 suite_name: str, run_date: dt.date, run_id: str,
                 validated_at: dt.datetime, meta: dict[str, Any]) -> tuple[Any, Path]:
    """Keep `result` in GX's validation-results store and return its key and file:
    `<reports>/validation/<suite>/<run_date>/<validated_at>/<run_id>.json`."""
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    identifier = RunIdentifier(run_name=run_date.isoformat(), run_time=validated_at)
    key = ValidationResultIdentifier(
        expectation_suite_identifier=ExpectationSuiteIdentifier(name=suite_name),
        run_id=identifier,
        batch_identifier=_SAFE.sub("_", run_id),
    )
    # What GX's ValidationDefinition.run records, plus our own lineage.
    result_meta = cast(dict[str, Any], result.meta)
    result_meta["run_id"] = identifier
    result_meta["validation_time"] = validated_at.isoformat()
    result_meta["memberscore"] = meta
    # Data Docs title a page with the batch's asset name, which GX's dataframe assets
    # leave out of the batch spec; the asset is named after the table.
    batch_spec = result_meta.get("batch_spec")
    if isinstance(batch_spec, dict):
        batch_spec.setdefault("data_asset_name", suite_name)
    store = workspace.context.validation_results_store
    store.set(key, result)
    url = store.store_backend.get_url_for_key(store.key_to_tuple(key))
    return key, Path(unquote(urlparse(url).path))


def build_docs(workspace: GxWorkspace, key: ValidationResultIdentifier) -> Path:
    """Render the page of one stored result and refresh the site index, both made
    to work offline (memberscore.quality.data_docs); returns the index file."""
    from memberscore.quality.data_docs import make_offline

    context = workspace.context
    context.build_data_docs(site_names=[SITE], resource_identifiers=[key])
    index = workspace.docs_dir / "index.html"
    (found,) = context.get_docs_sites_urls(resource_identifier=key, site_name=SITE)
    url = found["site_url"]
    pages = [index] if url is None else [index, Path(unquote(urlparse(url).path))]
    make_offline(workspace.docs_dir, pages)
    return index
