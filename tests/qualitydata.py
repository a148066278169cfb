"""Recorded validations for tests that make lake tables by hand.

`record_passed(ctx, table, day)` records, through the quality module's own writer,
that D's rows of `table` as they are now in the lake passed every expectation of the
table's suite, without running Great Expectations: for tests of jobs downstream of
the gate (publish) whose hand-made rows are not the subject (some hold only a few of
a table's columns, so the real suite would fail them on the column check).  The
record names the rows it vouches for like a real validation does, so rewriting the
day afterwards makes it stale and the gate refuses the day again.
"""

from __future__ import annotations

import datetime as dt

from memberscore.context import RunContext
from memberscore.quality.gate import current_day_data
from memberscore.quality.outcome import ExpectationOutcome, ValidationOutcome
from memberscore.quality.results import write_outcome
from memberscore.quality.suites import expectation_labels, load_suite, validated_table


def record_passed(ctx: RunContext, table: str, day: dt.date) -> ValidationOutcome:
    spec = validated_table(table)
    labels = expectation_labels(spec.suite_name)
    expectations = tuple(
        ExpectationOutcome(
            expectation=labels[str(e.id)], expectation_type=e.expectation_type, columns=None,
            severity=str(getattr(e.severity, "value", e.severity)), success=True,
            observed_value="recorded by tests/qualitydata.py")
        for e in load_suite(spec.suite_name).expectations
    )
    outcome = ValidationOutcome(
        table=spec.name, run_date=day, run_id=f"{ctx.run_id}-recorded", suite=spec.suite_name,
        validated_at=dt.datetime.now(dt.UTC), expectations=expectations,
        result_path=ctx.paths.reports / "validation" / "recorded-by-tests.json",
        producer_command=spec.producer_command(day),
        data=current_day_data(ctx, spec, day), table_version=ctx.lake.version(spec.name),
    )
    write_outcome(ctx.lake, outcome)
    return outcome
