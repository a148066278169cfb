"""The data-quality gate: Great Expectations suites over a day's bronze
transactions, feature snapshot and scores, with GX's severities.

Public API (used by the `validate`, `features`, `score`, `publish` and `pipeline`
jobs):

- `validate_table(ctx, table, run_date, df=None)` validates one day of a table,
  keeps the results (GX JSON, `validation_results`, `validation_runs`, Data Docs)
  and raises `QualityGateError` when a critical expectation failed;
- `require_passed(ctx, table, run_date)` refuses a day that was never validated,
  whose latest validation failed critically, or whose rows were rewritten after
  they were validated (a stale validation).

See docs/data-quality.md.
"""

from memberscore.quality.gate import (
    previous_row_count,
    recorded_validation,
    require_passed,
    validate_table,
)
from memberscore.quality.lineage import DayData
from memberscore.quality.outcome import ExpectationOutcome, ValidationOutcome
from memberscore.quality.results import (
    RESULTS_TABLE,
    RUNS_TABLE,
    VALIDATION_RESULTS_SCHEMA,
    VALIDATION_RUNS_SCHEMA,
)
from memberscore.quality.suites import VALIDATED_TABLES, ValidatedTable, load_suite

__all__ = [
    "RESULTS_TABLE",
    "RUNS_TABLE",
    "VALIDATED_TABLES",
    "VALIDATION_RESULTS_SCHEMA",
    "VALIDATION_RUNS_SCHEMA",
    "DayData",
    "ExpectationOutcome",
    "ValidatedTable",
    "ValidationOutcome",
    "load_suite",
    "previous_row_count",
    "recorded_validation",
    "require_passed",
    "validate_table",
]
