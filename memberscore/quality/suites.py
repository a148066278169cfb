"""The validated tables and their Great Expectations suites.

Each validated table has one suite, stored as GX 1.x's own suite JSON in the
package `memberscore.expectations` (`expectations/<table>.json` in the repository)
and named after the table.  The suites are static: everything that changes with the
run (the run date, the row-count window around the previous snapshot, the score
bands and model names from conf) is a GX suite parameter (`{"$PARAMETER": name}`)
filled in by `suite_parameters`.

Each expectation gets a *label*, derived from its type and its arguments as written
in the suite, e.g. `expect_column_values_to_be_between(txn_count_30d, min_value=0)`.
The label is what messages, the `validation_results` table and the tests call the
expectation; it is unique within a suite (checked at load).
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from pyspark.sql import types as T

from memberscore.errors import ConfigError
from memberscore.schemas import bronze_schema, bronze_table
from memberscore.tables import MEMBER_FEATURES_DAILY, MEMBER_SCORES, MEMBER_SCORES_SCHEMA

if TYPE_CHECKING:
    import datetime as dt

    from great_expectations.core.expectation_suite import ExpectationSuite

    from memberscore.config import Settings

SUITE_PACKAGE = "memberscore.expectations"
# Namespace of the stable expectation ids (uuid5 of `<suite>:<label>`), so a result
# JSON names the same expectation with the same id run after run.
_ID_NAMESPACE = uuid.UUID("6f1c2b8e-3d0a-4e7b-9a53-1c9e2f4b7d60")


def _feature_schema() -> T.StructType:
    from memberscore.feature_registry import feature_table_schema

    return feature_table_schema()


@dataclass(frozen=True)
class ValidatedTable:
    """A lake table with a suite: which column holds the day, its keys, its declared
    schema, the command that (re)produces a day of it (for error messages), and its
    lineage columns: the run that wrote a row and, where the table has one, when
    (memberscore.quality.lineage tells a rewritten day by them)."""

    name: str
    date_column: str
    keys: tuple[str, ...]
    schema: Callable[[], T.StructType]
    producer: str
    run_id_column: str = "run_id"
    written_at_column: str | None = None
    # what the day's row count is compared with: the latest earlier day's, or
    # (`same_weekday`) the median of the last four earlier days of its weekday, for a
    # table whose daily volume follows the week (quiet weekends, a busy Monday)
    row_count_reference: str = "previous_day"

    @property
    def suite_name(self) -> str:
        """The suite is named after the table; the JSON file is `<name>.json`."""
        return self.name

    def producer_command(self, run_date: dt.date) -> str:
        return f"memberscore {self.producer} --run-date {run_date.isoformat()}"


BRONZE_TRANSACTIONS = ValidatedTable(
    bronze_table("transactions"), "landing_date", ("transaction_id",),
    lambda: bronze_schema("transactions"), "ingest", row_count_reference="same_weekday",
)
FEATURES = ValidatedTable(
    MEMBER_FEATURES_DAILY.name, MEMBER_FEATURES_DAILY.date_column, MEMBER_FEATURES_DAILY.keys,
    _feature_schema, "features", written_at_column="computed_at",
)
SCORES = ValidatedTable(
    MEMBER_SCORES.name, MEMBER_SCORES.date_column, MEMBER_SCORES.keys,
    lambda: MEMBER_SCORES_SCHEMA, "score", written_at_column="scored_at",
)

VALIDATED_TABLES: dict[str, ValidatedTable] = {
    t.name: t for t in (BRONZE_TRANSACTIONS, FEATURES, SCORES)
}


def validated_table(name: str) -> ValidatedTable:
    """The spec of a validated table; ConfigError names the known ones."""
    try:
        return VALIDATED_TABLES[name]
    except KeyError:
        raise ConfigError(
            f"no expectation suite for table {name!r}; validated tables are "
            f"{', '.join(VALIDATED_TABLES)}"
        ) from None


# --------------------------------------------------------------------------- loading


def suite_json(name: str) -> dict[str, Any]:
    """The suite file `expectations/<name>.json` as packaged, parsed."""
    resource = resources.files(SUITE_PACKAGE).joinpath(f"{name}.json")
    if not resource.is_file():
        raise ConfigError(
            f"expectation suite {name}.json is not in the {SUITE_PACKAGE} package; "
            "reinstall memberscore (the suites are package data)"
        )
    try:
        data = json.loads(resource.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"expectations/{name}.json is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("name") != name:
        raise ConfigError(
            f"expectations/{name}.json must hold one GX suite whose name is {name!r}"
        )
    return data


@cache
def load_suite(name: str) -> ExpectationSuite:
    """The GX suite of table `name`, built from the packaged JSON, each expectation
    with its stable id.  Cached: callers must not modify it."""
    from great_expectations.core.expectation_suite import ExpectationSuite

    data = suite_json(name)
    try:
        suite = ExpectationSuite(**data)
    except Exception as exc:  # noqa: BLE001 - GX raises many types for a bad suite
        raise ConfigError(f"expectations/{name}.json is not a valid GX suite: {exc}") from None
    if len(suite.expectations) != len(data.get("expectations", [])):
        raise ConfigError(
            f"expectations/{name}.json: {len(data['expectations']) - len(suite.expectations)} "
            "expectation(s) could not be built by Great Expectations (see the log)"
        )
    seen: dict[str, int] = {}
    for position, expectation in enumerate(suite.expectations):
        text = label(expectation.expectation_type, expectation.configuration.kwargs)
        if text in seen:
            raise ConfigError(
                f"expectations/{name}.json: expectations {seen[text]} and {position} are "
                f"the same check ({text}); remove one"
            )
        seen[text] = position
        expectation.id = str(uuid.uuid5(_ID_NAMESPACE, f"{name}:{text}"))
    return suite


@cache
def expectation_labels(name: str) -> dict[str, str]:
    """Expectation id -> label, for the suite of table `name`."""
    return {
        str(e.id): label(e.expectation_type, e.configuration.kwargs)
        for e in load_suite(name).expectations
    }


@cache
def critical_labels(name: str) -> tuple[str, ...]:
    """The labels of the suite's critical expectations, in suite order."""
    return tuple(
        label(e.expectation_type, e.configuration.kwargs)
        for e in load_suite(name).expectations
        if str(getattr(e.severity, "value", e.severity)) == "critical"
    )


# Domain arguments come first and unnamed; these add nothing to a label.
_DOMAIN_KEYS = ("column", "column_list", "column_A", "column_B")
_SILENT_KEYS = {"batch_id", "ignore_row_if", "result_format", "catch_exceptions"}
_LIST_SHOWN = 8


def label(expectation_type: str, kwargs: Mapping[str, Any]) -> str:
    """`type(domain, key=value, ...)` from the arguments as written in the suite:
    columns first, then the other arguments, `$name` for a suite parameter and
    `[N values]` for a long list."""
    parts: list[str] = []
    for key in _DOMAIN_KEYS:
        value = kwargs.get(key)
        if isinstance(value, (list, tuple)):
            parts.extend(str(v) for v in value)
        elif value is not None:
            parts.append(str(value))
    for key, value in kwargs.items():
        if key in _DOMAIN_KEYS or key in _SILENT_KEYS:
            continue
        parts.append(f"{key}={_show(value)}")
    return f"{expectation_type}({', '.join(parts)})"


def _show(value: Any) -> str:
    if isinstance(value, Mapping) and "$PARAMETER" in value:
        return f"${value['$PARAMETER']}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple, set)):
        items = list(value)
        if len(items) > _LIST_SHOWN:
            return f"[{len(items)} values]"
        return "[" + ", ".join(str(v) for v in items) + "]"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# --------------------------------------------------------------------------- parameters


def row_count_window(previous: int | None, tolerance: float) -> tuple[int | None, int | None]:
    """The accepted row counts around the previous snapshot's count, both ends
    included: `[ceil(p * (1 - t)), floor(p * (1 + t))]`; unbounded without one."""
    if previous is None:
        return None, None
    # Rounding first keeps 100 * 0.8 (= 80.00000000000001) from becoming 81.
    low = math.ceil(round(previous * (1 - tolerance), 6))
    high = math.floor(round(previous * (1 + tolerance), 6))
    return max(low, 0), high


def suite_parameters(settings: Settings, run_date: dt.date,
                     previous_row_count: int | None) -> dict[str, Any]:
    """The values of every `$PARAMETER` used by the suites, for one run."""
    low, high = row_count_window(previous_row_count, settings.validation.row_count_tolerance)
    return {
        "run_date": [run_date],
        "min_row_count": low,
        "max_row_count": high,
        "score_bands": [band.name for band in settings.models.score_bands],
        "model_names": list(settings.models.names),
    }
