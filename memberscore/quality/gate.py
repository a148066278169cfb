"""The data-quality gate: validate a table's day, keep the results, stop on critical
failures; and let downstream jobs refuse a day that did not pass.

`validate_table` is what `validate`, `features` and `score` call (and so `pipeline`).
`require_passed` is what `score` and `publish` call before they use a day: it refuses
a day never validated, a day whose latest validation failed critically, and a day
whose rows were rewritten or edited after they were validated (a stale validation:
memberscore.quality.lineage says how an edit is seen).
"""

from __future__ import annotations

import datetime as dt
import logging
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyspark.sql import functions as F

from memberscore.errors import QualityGateError
from memberscore.lake.base import Between, OneOf
from memberscore.quality import gx
from memberscore.quality.lineage import DayData, day_data
from memberscore.quality.outcome import ValidationOutcome, outcome, outcomes_from_result
from memberscore.quality.results import (
    RESULTS_TABLE,
    RUNS_TABLE,
    RecordedValidation,
    read_validation,
    write_outcome,
)
from memberscore.quality.suites import (
    ValidatedTable,
    expectation_labels,
    load_suite,
    suite_parameters,
    validated_table,
)
from memberscore.spark import release

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from memberscore.config import ValidationSettings
    from memberscore.context import RunContext

log = logging.getLogger(__name__)


def validate_table(ctx: RunContext, table: str, run_date: dt.date,
                   df: DataFrame | None = None, *, raise_on_critical: bool = True,
                   reuse_this_run: bool = False) -> ValidationOutcome:
    """Validate the rows of `table` for `run_date` with the table's suite and keep
    the results, then raise QualityGateError if a critical expectation failed.

    `df` is the day's rows to validate (e.g. a snapshot about to be written); when
    None, the day's rows are read from the lake at its current version (no table, or
    no rows for the day, is validated as an empty day, which fails the suite's
    row-count check).  The previous snapshot (the latest earlier day in the lake)
    sets the row-count window.  Results are persisted before anything is raised: the
    GX JSON result, the table's rows in `validation_results` and `validation_runs`
    (which rows were validated; both replace an earlier validation of the same day
    and table) and, with `validation.build_data_docs`, the Data Docs page.  Warnings
    are logged here; callers add `outcome.warning_lines()` to their JobResult
    messages.  With `raise_on_critical=False` the caller decides (the `validate`
    command validates every table before it fails).

    `reuse_this_run=True` (the `validate` command) returns the recorded outcome
    instead of validating again when this same invocation (same run id, after the
    context started) already validated the day's lake rows and they have not changed
    since: the pipeline's `features` step validates its snapshot, so its `validate`
    step does not repeat it.  The outcome then has `reused=True`.
    """
    spec = validated_table(table)
    if reuse_this_run and df is None:
        earlier = _validated_earlier_in_this_run(ctx, spec, run_date)
        if earlier is not None:
            log.info("%s", earlier.summary_line())
            if raise_on_critical:
                earlier.raise_for_critical()
            return earlier
    started = time.monotonic()
    version: int | None = None
    if df is None:
        version = ctx.lake.version(spec.name)
        frame = day_frame(ctx, spec, run_date, version)
    else:
        frame = df
    previous = previous_row_count(ctx, spec, run_date)
    parameters = suite_parameters(ctx.settings, run_date, previous)
    workspace = gx.gx_workspace(ctx.paths.reports)
    suite = load_suite(spec.suite_name)
    # One cache for both reads of the frame: which rows they are, and GX's passes.
    cache = not frame.is_cached
    if cache:
        frame.persist()
    try:
        data = day_data(frame, spec)
        engine = validation_engine(ctx.settings.validation, data.rows)
        result = gx.run_suite(workspace, spec.name, frame, suite, parameters, engine=engine)
    finally:
        if cache:
            release(frame)
    validated_at = dt.datetime.now(dt.UTC)
    key, result_path = gx.store_result(
        workspace, result, spec.suite_name, run_date, ctx.run_id, validated_at,
        meta={"run_id": ctx.run_id, "table": spec.name, "run_date": run_date.isoformat(),
              "env": ctx.env, "previous_row_count": previous, "table_version": version,
              "data": data.describe(), "engine": engine},
    )
    docs = _build_docs(ctx, workspace, key)
    found = outcome(spec, run_date, ctx.run_id, validated_at,
                    outcomes_from_result(result, expectation_labels(spec.suite_name)),
                    result_path, docs, data=data, table_version=version)
    write_outcome(ctx.lake, found)
    log.info("%s (%s, %.1fs)", found.summary_line(), engine, time.monotonic() - started)
    for line in found.warning_lines():
        log.warning("%s", line)
    if raise_on_critical:
        found.raise_for_critical()
    return found


def validation_engine(settings: ValidationSettings, rows: int) -> str:
    """The GX engine for a day of `rows` rows: conf `validation.engine`, where `auto`
    means pandas up to `validation.pandas_max_rows` rows and Spark above."""
    if settings.engine != "auto":
        return settings.engine
    return "pandas" if rows <= settings.pandas_max_rows else "spark"


def require_passed(ctx: RunContext, table: str, run_date: dt.date,
                   version: int | None = None) -> list[str]:
    """Refuse (QualityGateError) a day of `table` that was never validated, whose
    latest validation is stale (the day's rows were rewritten or their values edited
    after it, or which rows it saw is unknown) or had a critical failure; return the
    warnings of that validation (lines for JobResult.messages) when it passed.  The rows checked are
    those of Delta `version` when given (what a caller pinned and will read), else
    the current ones.

    Costs one read of the two small results tables and one aggregate over the day's
    rows (memberscore.quality.lineage), never a collect of the day."""
    spec = validated_table(table)
    recorded = recorded_validation(ctx, spec.name, run_date)
    if recorded is None:
        raise QualityGateError(
            f"{spec.name} for {run_date} has no validation results in {RESULTS_TABLE}: "
            f"refusing to use a day that was never validated; run "
            f"`memberscore validate --run-date {run_date}` first"
        )
    found = recorded.outcome
    when = f"{found.validated_at:%Y-%m-%dT%H:%M:%SZ}"
    if recorded.run is None:
        raise QualityGateError(
            f"{spec.name} for {run_date}: the validation by run {found.run_id} ({when}) has "
            f"no record in {RUNS_TABLE} of which rows it saw (it was made by an older "
            "memberscore, or interrupted while it was being recorded), so it cannot vouch "
            f"for the rows now in the lake; refusing the day: run `memberscore validate "
            f"--run-date {run_date}`"
        )
    now = current_day_data(ctx, spec, run_date, version)
    validated = recorded.run.data
    if validated.content is None and validated.same_rows_as(now):
        raise QualityGateError(
            f"{spec.name} for {run_date}: the validation by run {found.run_id} ({when}) "
            "was recorded without a fingerprint of the rows' values (by an older "
            "memberscore), so it cannot vouch that they are unchanged; refusing the day: "
            f"run `memberscore validate --run-date {run_date}`"
        )
    if validated.same_rows_as(now) and now != validated:
        raise QualityGateError(
            f"{spec.name} for {run_date} changed after it was validated: the values of "
            f"its {now.rows} rows are not those run {found.run_id} validated ({when}), "
            "though their row count, run ids and write time are (an edit in place: a "
            "Delta UPDATE, MERGE or partition overwrite). Refusing rows that were never "
            f"validated: run `memberscore validate --run-date {run_date}`"
        )
    if now != validated:
        raise QualityGateError(
            f"the validation of {spec.name} for {run_date} is stale: the day was rewritten "
            f"after run {found.run_id} validated it ({when}); it validated "
            f"{recorded.run.data.describe()}, the table now holds {now.describe()}. "
            f"Refusing rows that were never validated: run `memberscore validate "
            f"--run-date {run_date}`"
        )
    found.raise_for_critical()
    return [f"{line} (validated by run {found.run_id})" for line in found.warning_lines()]


def recorded_validation(ctx: RunContext, table: str,
                        run_date: dt.date) -> RecordedValidation | None:
    """The latest recorded validation of `table` on `run_date` (None: never validated)."""
    spec = validated_table(table)
    order = {name: i for i, name in enumerate(expectation_labels(spec.suite_name).values())}
    return read_validation(ctx.lake, spec, run_date, order)


def current_day_data(ctx: RunContext, spec: ValidatedTable, run_date: dt.date,
                     version: int | None = None) -> DayData:
    """Which rows `spec`'s table holds for `run_date` at `version` (default: now), in
    one aggregate."""
    pinned = ctx.lake.version(spec.name) if version is None else version
    return day_data(day_frame(ctx, spec, run_date, pinned), spec)


def _validated_earlier_in_this_run(ctx: RunContext, spec: ValidatedTable,
                                   run_date: dt.date) -> ValidationOutcome | None:
    """The recorded outcome when this invocation already validated the day's current
    rows (see validate_table), else None."""
    recorded = recorded_validation(ctx, spec.name, run_date)
    if recorded is None or recorded.run is None:
        return None
    found = recorded.outcome
    if found.run_id != ctx.run_id or found.validated_at < ctx.started_at:
        return None
    if current_day_data(ctx, spec, run_date) != recorded.run.data:
        return None
    return replace(found, reused=True)


def day_frame(ctx: RunContext, spec: ValidatedTable, run_date: dt.date,
              version: int | None = None) -> DataFrame:
    """The lake rows of `spec`'s table for `run_date` (lazy), at `version` when given,
    else at the current version; empty without a table."""
    frame = (ctx.lake.read(spec.name, version=version) if version is not None
             else ctx.lake.read_or_empty(spec.name, spec.schema()))
    return frame.where(F.col(spec.date_column) == F.lit(run_date))


def day_rows(ctx: RunContext, spec: ValidatedTable, run_date: dt.date,
             version: int | None = None) -> int:
    """How many rows `spec`'s table has for `run_date` (at `version`, when given);
    0 without a table.  From the Delta log where the backend can (no data read)."""
    if version is None and not ctx.lake.exists(spec.name):
        return 0
    return ctx.lake.count_rows(spec.name, {spec.date_column: run_date}, version=version)


def previous_row_count(ctx: RunContext, spec: ValidatedTable, run_date: dt.date) -> int | None:
    """The row count the day's is compared with, or None: that of the latest of the
    PREVIOUS_DAYS days before `run_date` that has rows, or, when the table's
    `row_count_reference` is `same_weekday`, the median of the latest SAME_WEEKDAYS
    of `run_date`'s weekday among the SAME_WEEKDAY_WEEKS weeks before (one month end
    or holiday among them does not move it).  Only those days' partitions are
    counted: the table's whole history, which grows by a day every night, is never
    read (the delta-rs backend answers from the Delta log)."""
    if not ctx.lake.exists(spec.name):
        return None
    if spec.row_count_reference == "same_weekday":
        weeks = [run_date - dt.timedelta(weeks=n) for n in range(SAME_WEEKDAY_WEEKS, 0, -1)]
        counts = ctx.lake.counts_by(spec.name, spec.date_column, within=OneOf(tuple(weeks)))
        days = sorted(counts)[-SAME_WEEKDAYS:]
        return round(statistics.median(counts[d] for d in days)) if days else None
    counts = ctx.lake.counts_by(spec.name, spec.date_column, within=Between(
        run_date - dt.timedelta(days=PREVIOUS_DAYS), run_date - dt.timedelta(days=1)))
    return counts[max(counts)] if counts else None


PREVIOUS_DAYS = 31
SAME_WEEKDAYS = 4
SAME_WEEKDAY_WEEKS = 8


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
