"""What each feature snapshot was built from, so a backfill can skip days that are
already built from the same inputs, and never skip one that is not.

The inputs of snapshot D are:
- the transactions it sees: every bronze row booked on or before D and ingested by
  D's cutoff (all statuses: a status change is a change of input);
- the members rows it sees: every bronze row with updated_at by D's cutoff;
- the allowed lateness (it moves the cutoff);
- the feature code: the registry and both transforms (`code_digest`), so a fix to
  a definition rebuilds every day on the next backfill.

The rows are fingerprinted by count and by the sum of a 64-bit hash of each row
(kept as two 32-bit halves), which is order-free and so can be cumulated day by day
from tiles: the direct job and the tiled backfill compute the same fingerprint for
the same day.  Rows that arrive late for D, rows booked after D, lineage columns
(run_id, source_file of transactions) and bronze table versions do not enter it:
re-ingesting a later day does not invalidate earlier snapshots.

`feature_build_log` (a Delta table through the lake layer) holds one row per build.
A day is up to date when its latest log row has the current fingerprint AND the
day's partition of member_features_daily is the one that build wrote (same run_id
and row count), which catches a partition rewritten or deleted by other means.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyspark.sql import functions as F
from pyspark.sql import types as T

if TYPE_CHECKING:
    from pyspark.sql import Row

    from memberscore.lake import Commit, Lake

FINGERPRINT_VERSION = 1

BUILD_LOG_SCHEMA = T.StructType([
    T.StructField("as_of_date", T.DateType(), False),
    T.StructField("input_fingerprint", T.StringType(), False),
    T.StructField("transaction_rows", T.LongType(), False),
    T.StructField("member_rows", T.LongType(), False),
    T.StructField("late_txn_count", T.LongType(), False),
    T.StructField("rows_written", T.LongType(), False),
    T.StructField("feature_table_version", T.LongType(), False),
    T.StructField("job", T.StringType(), False),
    T.StructField("run_id", T.StringType(), False),
    T.StructField("built_at", T.TimestampType(), False),
])


def code_digest() -> str:
    """sha256 over the source of the feature registry and the two feature transforms."""
    from memberscore import feature_registry
    from memberscore.transforms import features, tiles

    digest = hashlib.sha256()
    for module in (feature_registry, features, tiles):
        digest.update(module.__name__.encode())
        digest.update(Path(str(module.__file__)).read_bytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class RowsFingerprint:
    """Count and hash sums of a set of rows (order-free, additive)."""

    rows: int = 0
    hash_hi: int = 0
    hash_lo: int = 0

    def __add__(self, other: RowsFingerprint) -> RowsFingerprint:
        return RowsFingerprint(self.rows + other.rows, self.hash_hi + other.hash_hi,
                               self.hash_lo + other.hash_lo)

    @classmethod
    def from_row(cls, row: Row | Mapping[str, Any], prefix: str = "") -> RowsFingerprint:
        data = row.asDict() if hasattr(row, "asDict") else dict(row)
        return cls(int(data[f"{prefix}rows"] or 0), int(data[f"{prefix}hash_hi"] or 0),
                   int(data[f"{prefix}hash_lo"] or 0))


@dataclass(frozen=True)
class InputFingerprint:
    """Everything snapshot D is computed from, reduced to one digest."""

    as_of_date: dt.date
    transactions: RowsFingerprint
    members: RowsFingerprint
    allowed_lateness_hours: float
    code: str

    @property
    def digest(self) -> str:
        payload = {
            "version": FINGERPRINT_VERSION,
            "as_of_date": self.as_of_date.isoformat(),
            "transactions": asdict(self.transactions),
            "members": asdict(self.members),
            "allowed_lateness_hours": self.allowed_lateness_hours,
            "code": self.code,
        }
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


def cumulative(parts: Iterable[Row], days: Sequence[dt.date]) -> dict[dt.date, RowsFingerprint]:
    """Per day D of `days`: the sum of the parts whose `day` (index) is <= D.

    `parts` come from `member_fingerprints` / `transaction_fingerprints`."""
    from memberscore.transforms.features import day_index

    by_day = sorted(((int(r["day"]), RowsFingerprint.from_row(r)) for r in parts),
                    key=lambda item: item[0])
    out: dict[dt.date, RowsFingerprint] = {}
    total, i = RowsFingerprint(), 0
    for day in sorted(days):
        while i < len(by_day) and by_day[i][0] <= day_index(day):
            total = total + by_day[i][1]
            i += 1
        out[day] = total
    return out


@dataclass(frozen=True)
class BuildRecord:
    """One row of feature_build_log."""

    as_of_date: dt.date
    input_fingerprint: str
    transaction_rows: int
    member_rows: int
    late_txn_count: int
    rows_written: int
    feature_table_version: int
    job: str
    run_id: str
    built_at: dt.datetime

    @classmethod
    def of(cls, fingerprint: InputFingerprint, late_txn_count: int, commit: Commit, *,
           job: str, run_id: str, built_at: dt.datetime) -> BuildRecord:
        """The record of the snapshot of `fingerprint.as_of_date` that `commit` wrote."""
        return cls(
            as_of_date=fingerprint.as_of_date, input_fingerprint=fingerprint.digest,
            transaction_rows=fingerprint.transactions.rows,
            member_rows=fingerprint.members.rows, late_txn_count=late_txn_count,
            rows_written=commit.rows_written, feature_table_version=commit.version,
            job=job, run_id=run_id, built_at=built_at)


class BuildLog:
    """The feature build log and the up-to-date check, over the lake layer."""

    def __init__(self, lake: Lake, log_table: str, features_table: str) -> None:
        self.lake = lake
        self.log_table = log_table
        self.features_table = features_table

    def record(self, records: Sequence[BuildRecord]) -> None:
        """Append build rows (after the feature partition's own commit)."""
        if not records:
            return
        rows = [tuple(asdict(r).values()) for r in records]
        self.lake.append_rows(self.log_table, rows, BUILD_LOG_SCHEMA)

    def latest(self, start: dt.date, end: dt.date) -> dict[dt.date, BuildRecord]:
        """The latest build row of each day in [start, end] that has one."""
        if not self.lake.exists(self.log_table):
            return {}
        rows = (
            self.lake.read(self.log_table)
            .filter(F.col("as_of_date").between(start, end))
            .collect()
        )
        latest: dict[dt.date, BuildRecord] = {}
        for row in rows:
            record = BuildRecord(**row.asDict())
            current = latest.get(record.as_of_date)
            if current is None or (record.built_at, record.feature_table_version) > \
                    (current.built_at, current.feature_table_version):
                latest[record.as_of_date] = record
        return latest

    def written_partitions(self, start: dt.date,
                           end: dt.date) -> dict[dt.date, list[tuple[str, int]]]:
        """Per day in [start, end] present in the feature table: (run_id, rows) pairs."""
        if not self.lake.exists(self.features_table):
            return {}
        rows = (
            self.lake.read(self.features_table)
            .filter(F.col("as_of_date").between(start, end))
            .groupBy("as_of_date", "run_id")
            .agg(F.count(F.lit(1)).alias("rows"))
            .collect()
        )
        out: dict[dt.date, list[tuple[str, int]]] = {}
        for row in rows:
            out.setdefault(row["as_of_date"], []).append((row["run_id"], int(row["rows"])))
        return out

    def up_to_date(self, fingerprints: Mapping[dt.date, InputFingerprint]) -> set[dt.date]:
        """The days whose snapshot in the table was built from exactly these inputs."""
        if not fingerprints:
            return set()
        start, end = min(fingerprints), max(fingerprints)
        latest = self.latest(start, end)
        candidates = [day for day, fingerprint in fingerprints.items()
                      if day in latest and latest[day].input_fingerprint == fingerprint.digest]
        if not candidates:  # nothing built from these inputs: no need to read the table
            return set()
        written = self.written_partitions(min(candidates), max(candidates))
        fresh = set()
        for day, fingerprint in fingerprints.items():
            record = latest.get(day)
            if record is None or record.input_fingerprint != fingerprint.digest:
                continue
            expected = [(record.run_id, record.rows_written)] if record.rows_written else []
            if sorted(written.get(day, [])) == expected:
                fresh.add(day)
        return fresh
