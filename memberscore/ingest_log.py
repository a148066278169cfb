"""Which landing days ingest has completed: the `ingest_log` Delta table (conf
`ingest.log_table`).

One row per landing day per successful `ingest` (a range writes one row per day, in
one commit; a re-run replaces the day's row).  `features` and `backfill` read it to
refuse a day ingest has not run for: without it, a snapshot of a day whose files were
never loaded would be written, validated and published as if that day had no
transactions.  A run that fails (bad files, too many quarantined rows) records
nothing, so the day counts as not ingested until a run succeeds.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING

from pyspark.sql import functions as F
from pyspark.sql import types as T

from memberscore.errors import InputError
from memberscore.lake import Between

if TYPE_CHECKING:
    from memberscore.lake import Lake

INGEST_LOG_SCHEMA = T.StructType([
    T.StructField("landing_date", T.DateType(), False),
    T.StructField("rows_read", T.LongType(), False),
    T.StructField("rows_quarantined", T.LongType(), False),
    T.StructField("run_id", T.StringType(), False),
    T.StructField("ingested_at", T.TimestampType(), False),
])


def record_ingested(lake: Lake, table: str, run_id: str,
                    days: Mapping[dt.date, tuple[int, int]]) -> None:
    """Record `days` ({landing day: (rows read, rows quarantined)}, consecutive) as
    ingested by `run_id`, replacing their earlier rows, in one commit."""
    now = dt.datetime.now(dt.UTC)
    rows = [(day, read, bad, run_id, now) for day, (read, bad) in sorted(days.items())]
    lake.replace_rows(table, rows, INGEST_LOG_SCHEMA,
                      {"landing_date": Between(min(days), max(days))})


def ingested_days(lake: Lake, table: str) -> set[dt.date]:
    """Every landing day ingest has completed (empty: none, or no log yet)."""
    if not lake.exists(table):
        return set()
    return {r[0] for r in lake.read(table).select(F.col("landing_date")).collect()}


def require_ingested(lake: Lake, table: str, days: list[dt.date], what: str) -> None:
    """Raise InputError naming the first missing days and the newest ingested day
    unless ingest has completed every day of `days`."""
    done = ingested_days(lake, table)
    missing = [day for day in days if day not in done]
    if not missing:
        return
    shown = ", ".join(map(str, missing[:5])) + (", ..." if len(missing) > 5 else "")
    newest = (f"the newest ingested day is {max(done)}" if done
              else f"no day has been ingested yet ({lake.location(table)} is empty or absent)")
    command = (f"`memberscore ingest --run-date {missing[0]}`" if len(missing) == 1
               else f"`memberscore ingest --start {missing[0]} --end {missing[-1]}`")
    raise InputError(f"{what} refused: ingest has not run for {shown}; {newest}. "
                     f"Run {command} first")
