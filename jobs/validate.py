"""`memberscore validate --run-date D`: the Great Expectations suites over day D's
bronze transactions and feature snapshot, and D's scores when they exist.

Every table is validated and its results kept before the job decides: one line per
suite, warnings shown, and a QualityGateError naming the first critical failure
when any suite failed one.
"""

from __future__ import annotations

import argparse

from memberscore.args import iso_date
from memberscore.context import JobResult, RunContext
from memberscore.errors import QualityGateError
from memberscore.quality import validate_table
from memberscore.quality.gate import day_frame
from memberscore.quality.suites import BRONZE_TRANSACTIONS, FEATURES, SCORES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run-date", type=iso_date, required=True,
                        help="the day to process, YYYY-MM-DD (UTC)")


def run(ctx: RunContext, args: argparse.Namespace) -> JobResult:
    run_date = args.run_date
    result = JobResult("validate", details={"run_date": run_date.isoformat()})
    tables = [BRONZE_TRANSACTIONS, FEATURES]
    if day_frame(ctx, SCORES, run_date).limit(1).count():
        tables.append(SCORES)
    else:
        result.messages.append(f"validate {SCORES.name} {run_date}: no scores for the day, "
                               "not validated")
    failed: list[QualityGateError] = []
    for spec in tables:
        outcome = validate_table(ctx, spec.name, run_date, raise_on_critical=False)
        result.rows[spec.name] = outcome.row_count or 0
        result.details[spec.name] = {
            "passed": outcome.passed,
            "critical_failures": len(outcome.critical_failures),
            "warnings": len(outcome.warnings),
            "result_path": str(outcome.result_path),
        }
        result.messages.append(outcome.summary_line())
        result.messages.extend(outcome.warning_lines())
        if outcome.docs_path is not None:
            result.details["data_docs"] = str(outcome.docs_path)
        if not outcome.passed:
            failed.append(outcome.gate_error())
    if "data_docs" in result.details:
        result.messages.append(f"Data Docs: {result.details['data_docs']}")
    if failed:
        others = f" ({len(failed) - 1} other table(s) also failed)" if len(failed) > 1 else ""
        raise QualityGateError(f"{failed[0]}{others}")
    return result
