"""What a validation found, in memberscore's terms: one `ExpectationOutcome` per
expectation (label, severity, success, observed value) and one `ValidationOutcome`
per table and day, which knows whether the gate passes and how to say why not.

Severities are Great Expectations' own (`critical`, `warning`, `info`, set per
expectation in the suite JSON).  A failed `critical` expectation fails the gate; a
failed `warning` or `info` one is recorded and shown and stops nothing.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memberscore.errors import QualityGateError

if TYPE_CHECKING:
    from great_expectations.core.expectation_validation_result import (
        ExpectationSuiteValidationResult,
        ExpectationValidationResult,
    )

    from memberscore.quality.lineage import DayData
    from memberscore.quality.suites import ValidatedTable

CRITICAL = "critical"

_SAMPLES_SHOWN = 5
_OBSERVED_MAX = 300


@dataclass(frozen=True)
class ExpectationOutcome:
    """One expectation's result."""

    expectation: str
    expectation_type: str
    columns: str | None
    severity: str
    success: bool
    observed_value: str | None
    unexpected_count: int | None = None
    element_count: int | None = None
    expected: str | None = None

    @property
    def observed_text(self) -> str:
        """`observed ...`, with the accepted range when the expectation has one."""
        expected = f" (expected {self.expected})" if self.expected else ""
        return f"observed {self.observed_value}{expected}"

    @property
    def is_critical_failure(self) -> bool:
        return not self.success and self.severity == CRITICAL


@dataclass(frozen=True)
class ValidationOutcome:
    """The validation of one table's rows for one day.

    `data` says which rows were validated and `table_version` the Delta version they
    were read at (see memberscore.quality.lineage); `reused` marks an outcome read
    back from the lake instead of validated again (the `validate` step of a pipeline
    whose `features` step already validated the same rows)."""

    table: str
    run_date: dt.date
    run_id: str
    suite: str
    validated_at: dt.datetime
    expectations: tuple[ExpectationOutcome, ...]
    result_path: Path
    producer_command: str
    docs_path: Path | None = None
    data: DayData | None = None
    table_version: int | None = None
    reused: bool = False

    @property
    def critical_failures(self) -> list[ExpectationOutcome]:
        return [e for e in self.expectations if e.is_critical_failure]

    @property
    def warnings(self) -> list[ExpectationOutcome]:
        """Failed expectations that do not stop the gate (severity warning or info)."""
        return [e for e in self.expectations if not e.success and e.severity != CRITICAL]

    @property
    def passed(self) -> bool:
        """True when no critical expectation failed."""
        return not self.critical_failures

    @property
    def row_count(self) -> int | None:
        """The rows validated, as GX counted them (None if no expectation counted)."""
        counts = [e.element_count for e in self.expectations if e.element_count is not None]
        return counts[0] if counts else None

    def summary_line(self) -> str:
        """One line: table, day, verdict, counts, where the result is."""
        total = len(self.expectations)
        ok = sum(e.success for e in self.expectations)
        verdict = "passed" if self.passed else f"FAILED ({len(self.critical_failures)} critical)"
        warned = f", {len(self.warnings)} warning(s)" if self.warnings else ""
        rows = f", {self.row_count} rows" if self.row_count is not None else ""
        reused = (f" (validated earlier in this run, {self.validated_at:%H:%M:%S}Z; rows "
                  "unchanged since)") if self.reused else ""
        return (f"validate {self.table} {self.run_date}: {verdict}, {ok}/{total} expectations "
                f"met{warned}{rows}{reused}; result {self.result_path}")

    def warning_lines(self) -> list[str]:
        """One line per failed non-critical expectation."""
        return [
            f"{e.severity.upper()} {self.table} {self.run_date}: {e.expectation} not met, "
            f"{e.observed_text}"
            for e in self.warnings
        ]

    def gate_error(self) -> QualityGateError:
        """The error that stops the pipeline: table, expectation, observed value, and
        where the full result is."""
        return gate_error(self.table, self.run_date, self.critical_failures,
                          str(self.result_path), self.producer_command)

    def raise_for_critical(self) -> None:
        if not self.passed:
            raise self.gate_error()


def gate_error(table: str, run_date: dt.date, failures: list[ExpectationOutcome],
               result_path: str, producer_command: str) -> QualityGateError:
    first = failures[0]
    more = ""
    if len(failures) > 1:
        others = "; ".join(f.expectation for f in failures[1:4])
        extra = f" and {len(failures) - 4} more" if len(failures) > 4 else ""
        more = f" (also failed: {others}{extra})"
    return QualityGateError(
        f"data quality gate failed for {table} on {run_date}: critical expectation "
        f"{first.expectation} failed, {first.observed_text}{more}; full result: "
        f"{result_path}; nothing downstream may use this day until it passes: fix the data, "
        f"re-run `{producer_command}` and `memberscore validate --run-date {run_date}`"
    )


# --------------------------------------------------------------------------- from GX


def outcomes_from_result(result: ExpectationSuiteValidationResult,
                         labels: Mapping[str, str]) -> tuple[ExpectationOutcome, ...]:
    """Our outcome of each expectation in GX's suite result, in suite order when
    `labels` (id -> label) is in suite order."""
    order = {eid: i for i, eid in enumerate(labels)}

    def position(item: ExpectationValidationResult) -> int:
        config = item.expectation_config
        return order.get(str(config.id), len(order)) if config is not None else len(order)

    return tuple(_outcome(r, labels) for r in sorted(result.results, key=position))


def _outcome(item: ExpectationValidationResult,
             labels: Mapping[str, str]) -> ExpectationOutcome:
    config = item.expectation_config
    if config is None:  # GX logs this as its own error; never let it pass the gate
        return ExpectationOutcome("expectation without configuration", "unknown", None,
                                  CRITICAL, False, "GX returned a result without its "
                                  "expectation configuration")
    kwargs = dict(config.kwargs)
    severity = str(getattr(config.severity, "value", config.severity) or CRITICAL)
    result: dict[str, Any] = dict(item.result or {})
    unexpected = result.get("unexpected_count")
    elements = result.get("element_count")
    if "observed_value" in result and elements is None \
            and config.type == "expect_table_row_count_to_be_between":
        elements = result["observed_value"]
    return ExpectationOutcome(
        expectation=labels.get(str(config.id), config.type),
        expectation_type=config.type,
        columns=_columns(kwargs),
        severity=severity,
        success=bool(item.success),
        observed_value=_observed(item, result),
        unexpected_count=int(unexpected) if unexpected is not None else None,
        element_count=int(elements) if elements is not None else None,
        expected=_expected(kwargs),
    )


def _expected(kwargs: Mapping[str, Any]) -> str | None:
    """The accepted range of a between-style expectation, as run (parameters filled)."""
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    if low is None and high is None:
        return None
    if low is None:
        return f"at most {_number(high)}"
    if high is None:
        return f"at least {_number(low)}"
    return f"between {_number(low)} and {_number(high)}"


def _number(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _columns(kwargs: Mapping[str, Any]) -> str | None:
    if kwargs.get("column"):
        return str(kwargs["column"])
    if kwargs.get("column_list"):
        return ",".join(str(c) for c in kwargs["column_list"])
    if kwargs.get("column_A"):
        return f"{kwargs['column_A']},{kwargs['column_B']}"
    return None


def _observed(item: ExpectationValidationResult, result: Mapping[str, Any]) -> str | None:
    """A short human reading of what GX observed."""
    error = _exception_message(item.exception_info)
    if error:
        return _clip(f"not computed: {error}")
    if "unexpected_count" in result:
        count, total = result.get("unexpected_count") or 0, result.get("element_count") or 0
        share = f" ({100.0 * count / total:.2f}%)" if total else ""
        text = f"{count} of {total} rows unexpected{share}"
        samples = result.get("partial_unexpected_list") or []
        if count and samples:
            text += f", e.g. {_json(samples[:_SAMPLES_SHOWN])}"
        return _clip(text)
    if "observed_value" in result:
        text = _json(result["observed_value"])
        mismatched = (result.get("details") or {}).get("mismatched")
        if mismatched:
            text += f", mismatched {_json(mismatched)}"
        return _clip(text)
    return None


def _exception_message(info: Any) -> str | None:
    """GX reports an error either flat or keyed by the metric that raised it."""
    if not isinstance(info, Mapping):
        return None
    if info.get("raised_exception"):
        return str(info.get("exception_message") or "error")
    for value in info.values():
        if isinstance(value, Mapping) and value.get("exception_message"):
            return str(value["exception_message"]).splitlines()[0]
    return None


def _json(value: Any) -> str:
    return json.dumps(value, default=str, separators=(", ", ": "))


def _clip(text: str) -> str:
    return text if len(text) <= _OBSERVED_MAX else text[: _OBSERVED_MAX - 3] + "..."


def outcome(table: ValidatedTable, run_date: dt.date, run_id: str,
            validated_at: dt.datetime, expectations: Iterable[ExpectationOutcome],
            result_path: Path, docs_path: Path | None, *, data: DayData | None = None,
            table_version: int | None = None) -> ValidationOutcome:
    return ValidationOutcome(
        table=table.name, run_date=run_date, run_id=run_id, suite=table.suite_name,
        validated_at=validated_at, expectations=tuple(expectations), result_path=result_path,
        producer_command=table.producer_command(run_date), docs_path=docs_path,
        data=data, table_version=table_version,
    )
