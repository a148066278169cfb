"""Feature snapshots of many days at once: the engine of `backfill` (and of `train`,
which builds the snapshots its labels need), with what the one-day `features` job
shares with it (the bronze inputs, the build log, the build time).

Days are processed in chunks (`features.backfill_chunk_days`).  For each chunk the
transactions are read once into per-member daily tiles (transforms/tiles.py); the
input fingerprint of every day comes from the tiles, and days whose snapshot in the
table was built from the same inputs are skipped (unless `force`).  The other days'
snapshots are computed together from the tiles and written in one commit (a chunk
is all there or not at all), followed by their build-log rows, so an interrupted
backfill resumes at the chunk it stopped in and a reader never sees half a day.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from memberscore.context import JobResult, RunContext
from memberscore.errors import InputError
from memberscore.feature_builds import (
    BuildLog,
    BuildRecord,
    InputFingerprint,
    code_digest,
    cumulative,
)
from memberscore.ingest_log import require_ingested
from memberscore.logs import Progress
from memberscore.schemas import bronze_table
from memberscore.spark import release
from memberscore.tables import MEMBER_FEATURES_DAILY
from memberscore.transforms.features import (
    assemble_features,
    day_index,
    member_days,
    member_fingerprints,
)
from memberscore.transforms.tiles import (
    counterparty_counts,
    daily_tiles,
    history_by_day,
    late_counts,
    tiled_aggregates,
    transaction_fingerprints,
)

log = logging.getLogger(__name__)


def read_bronze(ctx: RunContext, as_of: dt.date) -> tuple[DataFrame, DataFrame]:
    """(transactions, members) bronze tables; a clear error when ingest has not run."""
    frames = []
    for source in ("transactions", "members"):
        table = bronze_table(source)
        if not ctx.lake.exists(table):
            raise InputError(
                f"features need the bronze table {table!r}, which does not exist at "
                f"{ctx.lake.location(table)}; run `memberscore ingest --run-date "
                f"{as_of.isoformat()}` (and the days before it) first"
            )
        frames.append(ctx.lake.read(table))
    return frames[0], frames[1]


def build_log(ctx: RunContext) -> BuildLog:
    """The feature build log of this environment."""
    conf = ctx.settings.features
    return BuildLog(ctx.lake, conf.build_log_table, MEMBER_FEATURES_DAILY.name)


def now_utc() -> dt.datetime:
    """computed_at / built_at: now, UTC, to the microsecond Spark keeps."""
    return dt.datetime.now(dt.UTC)


@dataclass
class Tally:
    """What the backfill did, day by day."""

    built: list[dt.date] = field(default_factory=list)
    skipped: list[dt.date] = field(default_factory=list)
    rows: int = 0
    late: dict[str, int] = field(default_factory=dict)


def days_between(start: dt.date, end: dt.date) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def chunks(days: list[dt.date], size: int) -> list[list[dt.date]]:
    """`days` (sorted) in groups that each span at most `size` calendar days: one tile
    computation per group, however sparse the days in it are."""
    groups: list[list[dt.date]] = []
    for day in days:
        if groups and (day - groups[-1][0]).days < size:
            groups[-1].append(day)
        else:
            groups.append([day])
    return groups


def build_days(ctx: RunContext, days: list[dt.date], force: bool = False) -> JobResult:
    """The snapshots of `days` (any set of days; `train` passes exactly the days its
    labels need), chunk by chunk: each chunk spans at most `backfill_chunk_days`
    calendar days and is built from one tile computation."""
    days = sorted(set(days))
    if not days:
        raise InputError("backfill: no days to build")
    start, end = days[0], days[-1]
    conf = ctx.settings.features
    span = str(start) if start == end else f"{start}..{end}"
    require_ingested(ctx.lake, ctx.settings.ingest.log_table, days, f"backfill {span}")
    started = time.perf_counter()
    transactions, members = read_bronze(ctx, end)
    code = code_digest()
    done = Tally()
    parts = chunks(days, conf.backfill_chunk_days)
    with Progress(f"backfill {span}", total=len(days)) as shown:
        for chunk in parts:
            rows_before = done.rows
            _backfill_chunk(ctx, transactions, members, chunk, code, force, done)
            shown.advance(len(chunk), rows=done.rows - rows_before)
    seconds = time.perf_counter() - started

    log.info("backfill %s..%s built=%d skipped=%d rows=%d seconds=%.1f", start, end,
             len(done.built), len(done.skipped), done.rows, seconds)
    late_total = sum(done.late.values())
    return JobResult(
        job="backfill",
        rows={MEMBER_FEATURES_DAILY.name: done.rows},
        details={
            "start": start.isoformat(),
            "end": end.isoformat(),
            "days_built": [d.isoformat() for d in done.built],
            "days_skipped": [d.isoformat() for d in done.skipped],
            "late_txn_count": done.late,
            "seconds": round(seconds, 3),
        },
        messages=[
            f"{MEMBER_FEATURES_DAILY.name} {start}..{end}: built {len(done.built)} day(s), skipped "
            f"{len(done.skipped)} already built from the same inputs"
            + (" (--force rebuilds them)" if done.skipped else ""),
            f"{done.rows} member rows written, {late_total} late row(s) left out across "
            f"the built days, {seconds:.1f}s",
            *([f"the built days are not validated: score and publish refuse a day until "
               f"`memberscore validate --run-date D` passed for it (first built "
               f"{done.built[0]}, last {done.built[-1]})"] if done.built else []),
        ],
    )


def _backfill_chunk(ctx: RunContext, transactions: DataFrame, members: DataFrame,
                    chunk: list[dt.date], code: str, force: bool, done: Tally) -> None:
    conf = ctx.settings.features
    lateness = conf.allowed_lateness_hours
    first, last = chunk[0], chunk[-1]
    daily = daily_tiles(transactions, first, last, lateness).persist()
    try:
        txn_rows = transaction_fingerprints(daily, last).collect()
        txn_parts = cumulative(txn_rows, chunk)
        member_parts = cumulative(member_fingerprints(members, first, last, lateness).collect(),
                                  chunk)
        fingerprints = {d: InputFingerprint(d, txn_parts[d], member_parts[d], lateness, code)
                        for d in chunk}
        journal = build_log(ctx)
        fresh = set() if force else journal.up_to_date(fingerprints)
        todo = [d for d in chunk if d not in fresh]
        done.skipped.extend(d for d in chunk if d in fresh)
        if fresh:
            log.info("backfill %s..%s: %d day(s) already built from the same inputs",
                     first, last, len(fresh))
        if not todo:
            return
        late = {int(r["day"]): int(r["late_txn_count"])
                for r in late_counts(daily, first, last).collect()}

        todo_days = [day_index(d) for d in todo]
        days = member_days(members, first, last, lateness).filter(
            F.col("day").isin(todo_days))
        counterparties = counterparty_counts(transactions, first, last, lateness)
        aggregates = tiled_aggregates(daily, counterparties, days, first, last)
        computed_at = now_utc()
        # computed once for the chunk, written in one commit
        snapshots = assemble_features(aggregates, lateness, ctx.run_id, computed_at,
                                      history_by_day(txn_rows, todo))
        log.info("backfill %s..%s: building %d day(s)", first, last, len(todo))
        commits = ctx.lake.replace_partitions(MEMBER_FEATURES_DAILY.name, snapshots,
                                              "as_of_date", todo,
                                              list(MEMBER_FEATURES_DAILY.partition_by))
        built_at = now_utc()
        records = []
        for day, commit in zip(todo, commits, strict=True):
            fingerprint = fingerprints[day]
            late_rows = late.get(day_index(day), 0)
            records.append(BuildRecord.of(fingerprint, late_rows, commit, job="backfill",
                                          run_id=ctx.run_id, built_at=built_at))
            done.built.append(day)
            done.rows += commit.rows_written
            done.late[day.isoformat()] = late_rows
        journal.record(records)
    finally:
        release(daily)
