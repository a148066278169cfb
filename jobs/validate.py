"""`memberscore validate --run-date D [--table T]...`: the Great Expectations suites
over day D's bronze transactions and feature snapshot, and D's scores when they exist;
with `--table`, only the named tables.  The nightly job (and `pipeline`) validate
bronze and features only: the scores of D are validated by `score` when it writes
them, and an earlier run's scores of D, about to be replaced, must not stop a re-run.

Every table is validated and its results kept before the job decides: one line per
suite, warnings shown, and a QualityGateError naming the first critical failure
when any suite failed one.

A table this same invocation already validated, whose rows have not changed since,
is not validated twice: in `memberscore pipeline` the `features` step validates its
snapshot, so the `validate` step reports that outcome (marked "validated earlier in
this run") instead of running the suite again.  A separate `memberscore validate`
is a new invocation and always validates.
"""

from __future__ import annotations

import argparse

from memberscore.args import iso_date
from memberscore.context import JobResult, RunContext
from memberscore.errors import QualityGateError
from memberscore.quality import validate_table
from memberscore.quality.gate import day_rows
from memberscore.quality.suites import (
    BRONZE_TRANSACTIONS,
    FEATURES,
    SCORES,
    VALIDATED_TABLES,
)

# what the nightly `validate` step checks (score validates its own output)
PIPELINE_TABLES = (BRONZE_TRANSACTIONS.name, FEATURES.name)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run-date", type=iso_date, required=True,
                        help="the day to process, YYYY-MM-DD (UTC)")
    parser.add_argument("--table", action="append", choices=list(VALIDATED_TABLES),
                        help="validate only this table (repeatable; default: bronze "
                             "transactions, features, and scores when the day has them)")


def run(ctx: RunContext, args: argparse.Namespace) -> JobResult:
    run_date = args.run_date
    result = JobResult("validate", details={"run_date": run_date.isoformat(),
                                            "validation_warnings": []})
    if getattr(args, "table", None):
        tables = [VALIDATED_TABLES[name] for name in dict.fromkeys(args.table)]
    else:
        tables = [BRONZE_TRANSACTIONS, FEATURES]
        if day_rows(ctx, SCORES, run_date):
            tables.append(SCORES)
        else:
            result.messages.append(f"validate {SCORES.name} {run_date}: no scores for the "
                                   "day, not validated")
    failed: list[QualityGateError] = []
    for spec in tables:
        outcome = validate_table(ctx, spec.name, run_date, raise_on_critical=False,
                                 reuse_this_run=True)
        result.rows[spec.name] = outcome.row_count or 0
        result.details[spec.name] = {
            "passed": outcome.passed,
            "critical_failures": len(outcome.critical_failures),
            "warnings": len(outcome.warnings),
            "result_path": str(outcome.result_path),
            "reused": outcome.reused,
        }
        result.messages.append(outcome.summary_line())
        result.messages.extend(outcome.warning_lines())
        if not outcome.reused:  # a reused outcome's warnings were shown by its step
            result.details["validation_warnings"] += outcome.warning_lines()
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
