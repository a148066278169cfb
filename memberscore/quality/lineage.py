"""Which rows a validation saw, told cheaply: `DayData`.

A validation is only good for the rows it validated.  `member_features_daily` and
`member_scores` rows carry the run that wrote them (`run_id`) and when
(`computed_at`, `scored_at`); bronze rows carry `run_id`.  A day is always rewritten
as a whole (one `replace_where` per day), so the day's row count, the run ids and the
latest write time identify its rows: a re-run of `features`, a `backfill --force` or a
re-`score` of the day changes the write time (and, in a new process, the run id) even
when the values come out the same.

Those identify a rewrite, not an edit: a Delta `UPDATE`, `MERGE` or an overwrite of
the partition with the same lineage values changes values without them.  So `DayData`
also carries a content fingerprint, `content`: the sum over rows of a 56-bit integer
from the MD5 of the row's every column (the reconciliation checksum of
`memberscore.warehouse.checksum`, over all columns instead of the keys).  Any changed
value, row added, removed or duplicated changes it, except with probability about
2**-56.

`day_data` is one Spark aggregate over the day's rows (one partition of the table):
a single row reaches the driver, never the frame.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyspark.sql import functions as F

from memberscore.warehouse.checksum import spark_key_value

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from memberscore.quality.suites import ValidatedTable

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def from_micros(micros: int | None) -> dt.datetime | None:
    """Microseconds since the epoch as a UTC datetime (exact, whatever the Spark
    session's time zone)."""
    return None if micros is None else _EPOCH + dt.timedelta(microseconds=micros)


def to_micros(moment: dt.datetime) -> int:
    """A timezone-aware datetime as microseconds since the epoch (exact)."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@dataclass(frozen=True)
class DayData:
    """The identity of one table's rows for one day.

    `written_at_micros` is the latest write time of the rows (the table's
    `ValidatedTable.written_at_column`), in microseconds since the epoch, None when
    the table has no such column or the day has no rows.  `content` is the content
    fingerprint (0 for no rows; None when unknown: recorded by an older memberscore).
    Two DayData are equal only when the day holds the same number of rows, written by
    the same run(s) at the same moment, with the same values."""

    rows: int
    run_ids: int
    first_run_id: str | None
    last_run_id: str | None
    written_at_micros: int | None
    content: int | None

    def same_rows_as(self, other: DayData) -> bool:
        """Equal but for the content: the same rows by lineage."""
        return (self.rows, self.run_ids, self.first_run_id, self.last_run_id,
                self.written_at_micros) == (other.rows, other.run_ids, other.first_run_id,
                                            other.last_run_id, other.written_at_micros)

    @property
    def written_at(self) -> dt.datetime | None:
        return from_micros(self.written_at_micros)

    def describe(self) -> str:
        """`3 rows written by run R at 2026-01-05T06:00:00Z`, for messages."""
        if self.rows == 0:
            return "0 rows"
        if self.run_ids == 1:
            by = f"run {self.first_run_id}"
        else:
            by = f"{self.run_ids} runs ({self.first_run_id} .. {self.last_run_id})"
        moment = self.written_at
        at = f" at {moment:%Y-%m-%dT%H:%M:%S.%fZ}" if moment is not None else ""
        return f"{self.rows} rows written by {by}{at}"


def day_data(frame: DataFrame, spec: ValidatedTable) -> DayData:
    """The DayData of `frame` (one day's rows of `spec`'s table), in one aggregate.

    A lineage column missing from the frame (a malformed table: the suite's column
    check fails on it) counts as null rather than failing here."""
    columns = set(frame.columns)
    run_id = F.col(spec.run_id_column) if spec.run_id_column in columns \
        else F.lit(None).cast("string")
    written = spec.written_at_column
    written_at = F.unix_micros(F.col(written)) if written and written in columns \
        else F.lit(None).cast("long")
    row = frame.agg(
        F.count(F.lit(1)).alias("rows"),
        F.countDistinct(run_id).alias("run_ids"),
        F.min(run_id).alias("first_run_id"),
        F.max(run_id).alias("last_run_id"),
        F.max(written_at).alias("written_at_micros"),
        F.sum(spark_key_value(sorted(frame.columns))).alias("content"),
    ).first()
    assert row is not None  # a global aggregate always returns one row
    return DayData(
        rows=int(row["rows"]),
        run_ids=int(row["run_ids"]),
        first_run_id=row["first_run_id"],
        last_run_id=row["last_run_id"],
        written_at_micros=None if row["written_at_micros"] is None
        else int(row["written_at_micros"]),
        content=int(row["content"] or 0),
    )
