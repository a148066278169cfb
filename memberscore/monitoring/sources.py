"""How fresh the sources of a snapshot were, and how many rows arrived too late for it.

Both are measured against the run date's feature cutoff (D + 1 day 00:00 + conf
`features.allowed_lateness_hours`, the same cutoff `features` uses), from the bronze
tables, so re-running monitor for D later gives the same freshness:

- freshness of `transactions` = cutoff - the latest `ingested_at` at or before the
  cutoff; of `members` (a snapshot feed without an ingest time) = cutoff - the latest
  `updated_at` at or before it, i.e. the time since the feed last changed;
- late rows = transactions booked in D's longest feature window ([D - 89 days 00:00,
  D + 1 day 00:00)) but ingested after the cutoff: rows snapshot D left out.  They
  can only be counted once they have been ingested, so a nightly run usually sees 0
  and a re-run days later sees the real number.

`member_outcomes` (labels, weekly) is not a scoring input and is not measured.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from memberscore.feature_registry import MAX_WINDOW_DAYS
from memberscore.schemas import bronze_table
from memberscore.transforms.drift import source_timeliness
from memberscore.transforms.features import feature_cutoff, utc_midnight

if TYPE_CHECKING:
    from memberscore.context import RunContext

# source -> the column that says when a row became known, and whether late rows count
MEASURED_SOURCES: tuple[tuple[str, str, bool], ...] = (
    ("transactions", "ingested_at", True),
    ("members", "updated_at", False),
)


@dataclass(frozen=True)
class SourceTimeliness:
    """One source as snapshot D saw it."""

    source: str
    column: str
    cutoff: dt.datetime
    latest_at: dt.datetime | None  # None: no row known by the cutoff (or no table)
    freshness_hours: float | None
    late_rows: int | None  # None: not measured for this source, or no table
    table_exists: bool

    @property
    def label(self) -> str:
        """The drift_metrics column_name of this source: `transactions.ingested_at`."""
        return f"{self.source}.{self.column}"


def late_window(run_date: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of booked_at of D's longest feature window."""
    return (utc_midnight(run_date - dt.timedelta(days=MAX_WINDOW_DAYS - 1)),
            utc_midnight(run_date + dt.timedelta(days=1)))


def measure_sources(ctx: RunContext, run_date: dt.date) -> list[SourceTimeliness]:
    """Freshness (and late rows, for transactions) of each measured source for D."""
    cutoff = feature_cutoff(run_date, ctx.settings.features.allowed_lateness_hours)
    out = []
    for source, column, counts_late in MEASURED_SOURCES:
        table = bronze_table(source)
        if not ctx.lake.exists(table):
            out.append(SourceTimeliness(source, column, cutoff, None, None, None, False))
            continue
        row = source_timeliness(ctx.lake.read(table), column, cutoff,
                                late_window(run_date) if counts_late else None).first()
        assert row is not None  # a global aggregate has one row
        micros = row["latest_micros"]
        latest = (dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=micros)
                  if micros is not None else None)
        out.append(SourceTimeliness(
            source, column, cutoff, latest,
            None if row["freshness_hours"] is None else float(row["freshness_hours"]),
            int(row["late_rows"]) if counts_late else None, True))
    return out
