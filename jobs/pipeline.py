"""`memberscore pipeline --run-date D`: the nightly job's task order, in one process.

Runs ingest, features, validate, score, publish and monitor for day D with one run id
and one Spark session, stops at the first failure, and prints a summary table (step,
status, rows, seconds) either way.  After monitor, `publish --table drift_metrics`
sends D's drift rows to the warehouse (when drift_metrics is a published table), also
after a drift alert, which is a finding to publish: the alert fails the pipeline
once they are published.  The Databricks bundle runs the same steps as
separate tasks in the same order (resources/memberscore_nightly.yml; a test keeps the
two in step).

The data quality gate runs where the data is made: `features` validates its snapshot
and `score` its scores, each failing after writing when a critical expectation
failed, which stops the pipeline before anything is published.  The `validate` step
validates D's bronze transactions and reports the snapshot's validation from the
`features` step instead of repeating it (the same run, rows unchanged; see
jobs/validate.py).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from memberscore.args import iso_date
from memberscore.context import JobResult, RunContext
from memberscore.errors import DriftAlertError, MemberscoreError
from memberscore.logs import Progress
from memberscore.schemas import bronze_table
from memberscore.tables import DRIFT_METRICS, MEMBER_FEATURES_DAILY
from memberscore.text_tables import text_table

log = logging.getLogger(__name__)

STEPS: tuple[str, ...] = ("ingest", "features", "validate", "score", "publish", "monitor")
# After monitor, alert or not, D's drift rows go to the warehouse through `publish`, the
# one command that talks to it (when drift_metrics is in snowflake.published_tables).
PUBLISH_DRIFT = "publish_drift_metrics"
# the command each step runs (the step's own name unless said here)
STEP_COMMANDS: dict[str, str] = {PUBLISH_DRIFT: "publish"}
# options beyond --run-date, as in the nightly job's tasks (resources/memberscore_nightly.yml)
STEP_OPTIONS: dict[str, tuple[str, ...]] = {
    "validate": ("--table", bronze_table("transactions"), "--table", MEMBER_FEATURES_DAILY.name),
    PUBLISH_DRIFT: ("--table", DRIFT_METRICS.name),
}
# Options only this process gives its steps: it writes the day's run report itself,
# with its steps, so monitor does not (the nightly job's monitor task, with no
# pipeline around it, writes the report).
IN_PROCESS_OPTIONS: dict[str, tuple[str, ...]] = {"monitor": ("--no-report",)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run-date", type=iso_date, required=True,
                        help="the day to process, YYYY-MM-DD (UTC)")


@dataclass
class StepOutcome:
    step: str
    status: str
    rows: int | None
    seconds: float
    note: str = ""


class PipelineStepError(MemberscoreError):
    """A step failed; carries the summary so far and the step's own exit status."""

    def __init__(self, message: str, exit_code: int, summary: list[str]) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.summary = summary


def summary_table(outcomes: list[StepOutcome]) -> list[str]:
    """Fixed-width lines: step, status, rows, seconds (and a note)."""
    return text_table(("step", "status", "rows", "seconds", "note"),
                      [(o.step, o.status, o.rows, f"{o.seconds:.1f}", o.note)
                       for o in outcomes], right=(2, 3), rule=True)


def steps_for(ctx: RunContext) -> tuple[str, ...]:
    """The steps this environment runs: STEPS, then the drift publish when
    drift_metrics is a published table."""
    if DRIFT_METRICS.name in ctx.settings.snowflake.published_tables:
        return (*STEPS, PUBLISH_DRIFT)
    return STEPS


def run(ctx: RunContext, args: argparse.Namespace) -> JobResult:
    run_date: dt.date = args.run_date
    steps = steps_for(ctx)
    outcomes: list[StepOutcome] = []
    warnings: list[str] = []
    result = JobResult("pipeline", details={"steps": outcomes, "warnings": warnings})
    shown = Progress(f"pipeline {run_date}", total=len(steps), unit="steps",
                     every_seconds=float("inf"))
    failures: list[tuple[str, MemberscoreError]] = []
    event_lines: list[str] = []
    for step in steps:
        if failures and not (step == PUBLISH_DRIFT
                             and isinstance(failures[0][1], DriftAlertError)):
            outcomes.append(StepOutcome(step, "skipped", None, 0.0))
            continue
        start = time.monotonic()
        shown.announce(step)
        try:
            step_result = _run_step(ctx, step, run_date)
        except MemberscoreError as exc:
            outcomes.append(StepOutcome(step, "FAILED", None, time.monotonic() - start))
            # a drift alert is a finding: its rows are still published, then it fails
            failures.append((step, exc))
            continue
        # the data quality warnings of the validations this step ran, and drift alerts
        # when monitor.warn_only lets them through: shown, they stop nothing
        step_warnings = list(step_result.details.get("validation_warnings", []))
        step_warnings += [f"DRIFT ALERT {line}" for line in step_result.details.get("alerts", [])]
        warnings.extend(step_warnings)
        if "event" in step_result.details:  # publish's "day published" event
            result.details["event"] = step_result.details["event"]
            event_lines.extend(m for m in step_result.messages
                               if m.startswith(("event ", "no event ", "also sent ")))
        note = f"{len(step_warnings)} warning(s)" if step_warnings else ""
        outcomes.append(StepOutcome(step, "ok", step_result.total_rows,
                                    time.monotonic() - start, note))
        result.rows.update({f"{step}.{k}": v for k, v in step_result.rows.items()})
        shown.advance()
    if failures:
        (first_step, first), *later = failures
        lines = summary_table(outcomes)
        print("\n".join([*lines, *warnings]))
        _write_report(ctx, run_date, outcomes)
        also = "".join(f"; then {name} failed: {error}" for name, error in later)
        raise PipelineStepError(f"stopped at {first_step}: {first}{also}", first.exit_code,
                                lines) from first
    result.messages.extend(summary_table(outcomes))
    result.messages.extend(warnings)
    result.messages.extend(event_lines)
    report = _write_report(ctx, run_date, outcomes)
    result.messages.append(f"pipeline for {run_date} finished: run_id {ctx.run_id}")
    if report is not None:
        result.messages.append(f"run report: {report}")
    return result


def _run_step(ctx: RunContext, step: str, run_date: dt.date) -> JobResult:
    from memberscore.runner import execute, job_arguments

    command = STEP_COMMANDS.get(step, step)
    return execute(ctx, command, job_arguments(
        command, ["--run-date", str(run_date), *STEP_OPTIONS.get(step, ()),
                  *IN_PROCESS_OPTIONS.get(step, ())]))


def _write_report(ctx: RunContext, run_date: dt.date, outcomes: list[StepOutcome]) -> Path | None:
    """The run report with this run's steps; a report problem never hides the
    pipeline's own outcome, so it is logged, not raised."""
    from memberscore.reporting import build_run_report

    steps = [{"step": o.step, "status": o.status, "rows": o.rows, "seconds": o.seconds}
             for o in outcomes]
    try:
        return build_run_report(ctx, run_date, steps=steps)
    except Exception as exc:  # noqa: BLE001 - see docstring
        log.warning("run report for %s could not be written: %s", run_date, exc)
        return None
