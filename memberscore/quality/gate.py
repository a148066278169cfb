"""The data-quality gate: validate a table's day, keep the results, stop on critical
failures; and let downstream jobs refuse a day that did not pass.

`validate_table` is what `validate`, `features`, `score` and `pipeline` call.
`require_passed` is what `score` and `publish` call before they use a day.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyspark.sql import functions as F

from memberscore.errors import QualityGateError
from memberscore.quality import gx
from memberscore.quality.outcome import (
    ExpectationOutcome,
    ValidationOutcome,
    gate_error,
    outcome,
    outcomes_from_result,
)
from memberscore.quality.results import RESULTS_TABLE, read_recorded, write_outcome
from memberscore.quality.suites import (
    ValidatedTable,
    expectation_labels,
    load_suite,
    suite_parameters,
    validated_table,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from memberscore.context import RunContext

log = logging.getLogger(__name__)


def validate_table(ctx: RunContext, table: str, run_date: dt.date,
                   df: DataFrame | None = None, *, raise_on_critical: bool = True,
                   ) -> ValidationOutcome:
    """Validate the rows of `table` for `run_date` with the table's suite and keep
    the results, then raise QualityGateError if a critical expectation failed.

    `df` is the day's rows to validate (e.g. a snapshot about to be written); when
    None, the day's rows are read from the lake (no table, or no rows for the day,
    is validated as an empty day, which fails the suite's row-count check).  The
    previous snapshot (the latest earlier day in the lake) sets the row-count
    window.  Results are persisted before anything is raised: the GX JSON result,
    the table's rows in `validation_results` (replacing an earlier validation of the
    same day and table) and, with `validation.build_data_docs`, the Data Docs page.
    Warnings are logged here; callers add `outcome.warning_lines()` to their
    JobResult messages.  With `raise_on_critical=False` the caller decides (the
    `validate` command validates every table before it fails).
    """
    spec = validated_table(table)
    started = time.monotonic()
    frame = df if df is not None else day_frame(ctx, spec, run_date)
    previous = previous_row_count(ctx, spec, run_date)
    parameters = suite_parameters(ctx.settings, run_date, previous)
    workspace = gx.gx_workspace(ctx.paths.reports)
    suite = load_suite(spec.suite_name)
    result = gx.run_suite(workspace, spec.name, frame, suite, parameters)
    validated_at = dt.datetime.now(dt.UTC)
    key, result_path = gx.store_result(
        workspace, result, spec.suite_name, run_date, ctx.run_id, validated_at,
        meta={"run_id": ctx.run_id, "table": spec.name, "run_date": run_date.isoformat(),
              "env": ctx.env, "previous_row_count": previous},
    )
    docs = _build_docs(ctx, workspace, key)
    found = outcome(spec, run_date, ctx.run_id, validated_at,
                    outcomes_from_result(result, expectation_labels(spec.suite_name)),
                    result_path, docs)
    write_outcome(ctx.lake, found)
    log.info("%s (%.1fs)", found.summary_line(), time.monotonic() - started)
    for line in found.warning_lines():
        log.warning("%s", line)
    if raise_on_critical:
        found.raise_for_critical()
    return found


def require_passed(ctx: RunContext, table: str, run_date: dt.date) -> list[str]:
    """Refuse (QualityGateError) a day of `table` whose latest validation had a
    critical failure, or that was never validated; return the warnings of that
    validation (lines for JobResult.messages) when it passed.

    The check trusts that the latest validation describes the rows now in the
    lake: a job that rewrites a day must validate it again (validate_table does
    replace the day's recorded results)."""
    spec = validated_table(table)
    recorded = read_recorded(ctx.lake, spec.name, run_date)
    if not recorded:
        raise QualityGateError(
            f"{spec.name} for {run_date} has no validation results in {RESULTS_TABLE}: "
            f"refusing to use a day that was never validated; run "
            f"`memberscore validate --run-date {run_date}` first"
        )
    outcomes = [
        ExpectationOutcome(r.expectation, "", None, r.severity, r.success, r.observed_value,
                           expected=r.expected)
        for r in recorded
    ]
    failures = [o for o in outcomes if o.is_critical_failure]
    if failures:
        raise gate_error(spec.name, run_date, failures, recorded[0].result_path,
                         spec.producer_command(run_date))
    return [
        f"{o.severity.upper()} {spec.name} {run_date}: {o.expectation} not met, "
        f"{o.observed_text} (validated by run {recorded[0].run_id})"
        for o in outcomes if not o.success
    ]


def day_frame(ctx: RunContext, spec: ValidatedTable, run_date: dt.date) -> DataFrame:
    """The lake rows of `spec`'s table for `run_date` (lazy; empty without a table)."""
    return (
        ctx.lake.read_or_empty(spec.name, spec.schema())
        .where(F.col(spec.date_column) == F.lit(run_date))
    )


def previous_row_count(ctx: RunContext, spec: ValidatedTable, run_date: dt.date) -> int | None:
    """The row count of the latest day before `run_date` in the lake, or None."""
    if not ctx.lake.exists(spec.name):
        return None
    day = F.col(spec.date_column)
    latest = (
        ctx.lake.read(spec.name)
        .where(day < F.lit(run_date))
        .groupBy(day.alias("day"))
        .count()
        .orderBy(F.col("day").desc())
        .first()
    )
    return int(latest["count"]) if latest is not None else None


def _build_docs(ctx: RunContext, workspace: gx.GxWorkspace, key: Any) -> Path | None:
    """Data Docs are a view of the stored results: a failure to render them is
    logged and never fails the validation itself."""
    if not ctx.settings.validation.build_data_docs:
        return None
    try:
        return gx.build_docs(workspace, key)
    except Exception as exc:  # noqa: BLE001 - rendering must not decide the gate
        log.warning("Data Docs were not rebuilt (%s: %s); the results are stored, "
                    "re-run validate to render them", type(exc).__name__, exc)
        return None
