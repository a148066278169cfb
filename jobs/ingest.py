"""`memberscore ingest --run-date D`: the landing files of day D -> bronze Delta tables,
every bad row quarantined with the rules it broke, nothing dropped.

`memberscore ingest --start D1 --end D2` ingests every landing day of [D1, D2] with
exactly the outcome of ingesting the days one by one in date order: the way to load
history (the demo, a backfill of a new environment) without paying a job's fixed costs
per day.  The range goes in chunks of consecutive days, oldest first, each holding at
most `ingest.range_chunk_mb` of landing files: each chunk is read once, written (one
commit per table), checked against the gate and recorded as ingested before the next
is read, so memory is bounded by the chunk, not the range, and a load that fails or
is killed keeps the chunks before it (re-run the range from the first day not
recorded).

1. Read every file of D for every source (conf `ingest.sources`) and check its
   columns.  A file missing a declared column, or a file in the day's folder that is
   not Parquet, CSV or JSONL, fails the job before anything is written, naming every
   such file (and the missing columns).
2. Per source: type each file's rows against the declared schema and evaluate every
   rule (`memberscore.transforms.ingest`); transaction_ids kept on an earlier landing
   day, or repeated within D, are duplicates.
3. Replace D's rows of `bronze_<source>` with the clean rows and D's rows of
   `quarantine_<source>` with the others (also when there are none, so a re-run
   clears what an earlier run of D wrote; an existing table with neither rows to
   write nor rows of D to clear gets no commit, and a source that has never
   delivered a file gets no tables yet).
4. Report rows read, kept and quarantined by rule, per file (per day for a range).
   When the quarantined share of a day's rows (all sources together) exceeds
   `ingest.max_bad_row_share`, fail with QualityGateError, after the writes, so the
   rows are there to inspect.
5. Otherwise record the days as ingested (`ingest.log_table`, see
   memberscore.ingest_log): features refuse a day without that record.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pyspark.sql import functions as F

from memberscore import landing
from memberscore.args import iso_date
from memberscore.context import JobResult, RunContext
from memberscore.errors import InputError, QualityGateError
from memberscore.ingest_log import record_ingested
from memberscore.lake import Between
from memberscore.logs import Progress
from memberscore.schemas import (
    SOURCES,
    bronze_table,
    ingest_partition_by,
    quarantine_table,
)
from memberscore.spark import release, session_conf
from memberscore.text_tables import text_table
from memberscore.transforms import ingest

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, Row

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    when = parser.add_mutually_exclusive_group(required=True)
    when.add_argument("--run-date", type=iso_date,
                      help="the landing day to process, YYYY-MM-DD (UTC)")
    when.add_argument("--start", type=iso_date,
                      help="first landing day of a range (with --end): every day of "
                           "[start, end] in one pass, as if ingested day by day in order")
    parser.add_argument("--end", type=iso_date, help="last landing day of the range")


def landing_days(args: argparse.Namespace) -> list[dt.date]:
    """The landing days an ingest covers: [--run-date], or [--start .. --end]."""
    start, end = getattr(args, "start", None), getattr(args, "end", None)
    if args.run_date is not None:
        if end is not None:
            raise InputError("ingest: --end goes with --start, not with --run-date")
        return [args.run_date]
    if start is None or end is None:
        raise InputError("ingest: give --run-date D, or both --start D1 and --end D2")
    if start > end:
        raise InputError(f"ingest --start {start} is after --end {end}; give the first "
                         "day first")
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


@dataclass
class FileReport:
    """What ingest did with one landing file."""

    source: str
    file: str
    format: str
    rows_read: int = 0
    rows_kept: int = 0
    rows_quarantined: int = 0
    rules: dict[str, int] = field(default_factory=dict)
    extra_columns: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        return {"source": self.source, "file": self.file, "format": self.format,
                "rows_read": self.rows_read, "rows_kept": self.rows_kept,
                "rows_quarantined": self.rows_quarantined, "rules": dict(self.rules),
                "extra_columns": list(self.extra_columns)}


@dataclass
class SourceReport:
    """What ingest did with one source's files of the day (or days)."""

    source: str
    files: list[FileReport]
    kept: int
    quarantined: int
    later_day_duplicates: int = 0
    # landing day -> (rows read, rows quarantined)
    per_day: dict[dt.date, tuple[int, int]] = field(default_factory=dict)

    @property
    def read(self) -> int:
        return self.kept + self.quarantined

    def add(self, other: SourceReport) -> None:
        """Fold in the report of the same source for later days (the next chunk)."""
        self.files.extend(other.files)
        self.kept += other.kept
        self.quarantined += other.quarantined
        self.later_day_duplicates += other.later_day_duplicates
        self.per_day.update(other.per_day)


def run(ctx: RunContext, args: argparse.Namespace) -> JobResult:
    days = landing_days(args)
    first, last = days[0], days[-1]
    span = _span(first, last)
    conf = ctx.settings.ingest
    sources = list(conf.sources)  # sources of the contract (checked at load)
    root = ctx.paths.landing

    strays = [p for source in sources for day in days
              for p in landing.unreadable_files(root, source, day)]
    if strays:
        raise InputError(
            f"ingest {span}: landing folder(s) hold files ingest cannot read, so nothing "
            f"was ingested: {', '.join(map(str, strays))}. Landing files must be "
            f"{', '.join('*.' + f for f in landing.FORMATS)}; move other files out, or "
            "give in-flight uploads a name starting with '.' or '_'"
        )
    raw = {source: landing.inspect_landing_files(ctx.spark, root, source, days,
                                                 SOURCES[source])
           for source in sources}
    _check_columns(raw, span)
    delivered = {f.day for files in raw.values() for f in files}
    empty = [day for day in days if day not in delivered]
    if empty and len(days) == 1:
        raise InputError(
            f"no landing files for {first} under {root}/<source>/{first}/ for any of "
            f"{', '.join(sources)}; check that the day's feeds were delivered "
            "(or run `memberscore generate` locally)"
        )
    if empty:
        raise InputError(
            f"ingest {span}: {len(empty)} day(s) have no landing files for any of "
            f"{', '.join(sources)} under {root}/<source>/<day>/ "
            f"({', '.join(map(str, empty[:5]))}{', ...' if len(empty) > 5 else ''}); "
            "nothing was ingested. Deliver those days' feeds, or ingest a range without them"
        )

    # A range goes in chunks of days, oldest first, each chunk written and recorded
    # before the next is read: memory is bounded by the chunk, not the range, and a
    # failed or killed load keeps the chunks before it.
    parts = chunk_days(days, {day: sum(f.path.stat().st_size for files in raw.values()
                                       for f in files if f.day == day) for day in days},
                       int(conf.range_chunk_mb * 1024 * 1024))
    delivered_sources = {source for source in sources if raw[source]}
    totals = {source: SourceReport(source, [], 0, 0) for source in sources}
    rules: Counter[str] = Counter()
    shown = Progress(f"ingest {span}", total=len(days)) if len(days) > 1 else None
    with shown or contextlib.nullcontext():
        for part in parts:
            part_span = _span(part[0], part[-1])
            reports = [_ingest_source(ctx, source, part,
                                      [f for f in raw[source] if f.day in set(part)],
                                      range_end=last,
                                      delivered=source in delivered_sources)
                       for source in sources]
            for report in reports:
                totals[report.source].add(report)
                for f in report.files:
                    rules.update({f"{report.source}:{rule}": n for rule, n in f.rules.items()})
            shares = _day_shares(part, reports)
            over = [(day, s) for day, s in shares.items() if s > conf.max_bad_row_share]
            if over:
                _refuse(ctx, span, part, over, list(totals.values()), rules, days)
            record_ingested(ctx.lake, conf.log_table, ctx.run_id, {
                day: _day_counts(day, reports) for day in part})
            if shown is not None:
                shown.advance(len(part), rows=sum(r.read for r in reports), note=part_span)

    reports = list(totals.values())
    read = sum(r.read for r in reports)
    quarantined = sum(r.quarantined for r in reports)
    share = quarantined / read if read else 0.0
    if len(days) == 1:
        messages = _table(first, reports, share, conf.max_bad_row_share)
    else:
        messages = _day_table(span, days, reports, _day_shares(days, reports),
                              conf.max_bad_row_share)
    for report in reports:
        if report.later_day_duplicates:
            warning = (
                f"{report.later_day_duplicates} transaction_id(s) of {span} were also kept "
                f"on later landing days: ingest those days again (in date order) so they "
                "are quarantined there as duplicates"
            )
            log.warning(warning)
            messages.append(f"warning: {warning}")

    rows: dict[str, int] = {}
    for report in reports:
        rows[bronze_table(report.source)] = report.kept
        rows[quarantine_table(report.source)] = report.quarantined
    span_details: dict[str, object] = (
        {"run_date": first.isoformat()} if len(days) == 1
        else {"start": first.isoformat(), "end": last.isoformat(), "days": len(days)})
    return JobResult(
        job="ingest",
        rows=rows,
        details={
            **span_details,
            "landing": str(root),
            "rows_read": read,
            "rows_quarantined": quarantined,
            "quarantined_share": share,
            "max_bad_row_share": conf.max_bad_row_share,
            "rules": dict(rules),
            "files": [f.as_dict() for r in reports for f in r.files],
            "later_day_duplicates": {r.source: r.later_day_duplicates for r in reports
                                     if r.later_day_duplicates},
        },
        messages=messages,
    )


def _refuse(ctx: RunContext, span: str, part: list[dt.date], over: list[tuple[dt.date, float]],
            reports: list[SourceReport], rules: Counter[str], days: list[dt.date]) -> None:
    """Fail the load after writing `part` (the chunk whose days have too many rows
    quarantined): its rows are there to inspect, its days are not recorded as
    ingested, and the chunks before it are (they passed)."""
    conf = ctx.settings.ingest
    root = ctx.paths.landing
    top = ", ".join(f"{rule} {n:,}" for rule, n in rules.most_common(3))
    where = "; ".join(
        f"{ctx.lake.location(quarantine_table(r.source))} ({r.quarantined:,})"
        for r in reports if r.quarantined
    )
    if len(days) == 1:
        day_read, bad = _day_counts(part[0], reports)
        what = f"{bad:,} of {day_read:,} rows quarantined ({bad / day_read:.2%})"
    else:
        worst = ", ".join(f"{day} {s:.2%}" for day, s in sorted(over, key=lambda kv: -kv[1])[:5])
        what = f"{len(over)} day(s) with too many rows quarantined ({worst})"
    part_span = _span(part[0], part[-1])
    done = days[:days.index(part[0])]
    kept = (f"; {_span(done[0], done[-1])} passed and are recorded as ingested"
            if done else "")
    rerun = (f"`memberscore ingest --run-date {part[0]}`" if len(days) == 1 else
             f"`memberscore ingest --start {part[0]} --end {days[-1]}`")
    raise QualityGateError(
        f"ingest {span}: {what}, above ingest.max_bad_row_share "
        f"{conf.max_bad_row_share:.2%}; top reasons: {top}. Bronze and quarantine for "
        f"{part_span} were written{kept}: inspect the rows with landing_date "
        f"{'= ' + str(part[0]) if len(part) == 1 else 'in ' + part_span} in {where}, fix or "
        f"re-deliver the landing files under {root}/<source>/<day>/ and re-run {rerun}"
    )


def _check_columns(raw: dict[str, list[landing.RawFile]], span: str) -> None:
    """Fail, before writing anything, when any file lacks declared columns."""
    problems = [f"{f.path} lacks {', '.join(f.missing)} (has: {', '.join(f.columns) or '-'})"
                for files in raw.values() for f in files if f.missing]
    if problems:
        raise InputError(
            f"ingest {span}: {len(problems)} landing file(s) miss required columns, so "
            f"nothing was ingested for {span}: {'; '.join(problems)}. Re-deliver the "
            "file(s) with every column of the source's contract (or move them out of "
            "the landing folder) and re-run"
        )


def _ingest_source(ctx: RunContext, source: str, days: list[dt.date],
                   files: list[landing.RawFile], range_end: dt.date,
                   delivered: bool) -> SourceReport:
    """Type, check and write one source's rows of the days (a chunk of a load that
    ends on `range_end`); report per file and day.  `delivered`: the source has files
    somewhere in the load (a chunk without any is normal for a weekly feed)."""
    lake = ctx.lake
    first, last = days[0], days[-1]
    span = _span(first, last)
    missing_days = sorted(set(days) - {f.day for f in files})
    if files and missing_days:  # normal for a weekly feed in a range: not a warning
        log.info("ingest %s: no %s files on %d day(s) (%s%s); %s's rows of those days "
                 "are cleared", span, source, len(missing_days),
                 ", ".join(map(str, missing_days[:5])),
                 ", ..." if len(missing_days) > 5 else "", source)
    checked, later, cached = _checked_rows(ctx, source, first, last, files, range_end,
                                           delivered)
    where = {"landing_date": first if first == last else Between(first, last)}
    written: dict[str, int] = {}
    try:
        outcomes = ingest.outcome_counts(checked).collect() if files else []
        strays = {r["source_file"] for r in outcomes} - {f.relative for f in files}
        if strays:  # the scan named a file ingest did not list: never guess
            raise InputError(
                f"ingest {span}: rows of {source} came from {sorted(strays)}, which are not "
                "among the listed landing files; nothing was written. Check the landing "
                "folder layout (<source>/<YYYY-MM-DD>/<file>)")
        bad = sum(int(r["rows"]) for r in outcomes if r[ingest.RULES])
        expected = {bronze_table(source): sum(int(r["rows"]) for r in outcomes) - bad,
                    quarantine_table(source): bad}
        for table, rows in ((bronze_table(source), ingest.bronze_rows(checked, source)),
                            (quarantine_table(source),
                             ingest.quarantine_rows(checked, ctx.started_at))):
            exists = lake.exists(table)
            empty = not lake.count_rows(table, where) if exists else not files
            if not expected[table] and empty:
                # nothing to write and nothing to clear (a weekly feed's other days, a
                # day without bad rows, a source never delivered): no empty commit
                written[table] = 0
                continue
            written[table] = lake.replace_where(table, rows, where,
                                                ingest_partition_by(table)).rows_written
    finally:
        release(*cached)
    reports = _file_reports(source, span, files, outcomes)
    per_day: dict[dt.date, tuple[int, int]] = {}
    for r in outcomes:
        rows_read, bad = per_day.get(r["landing_date"], (0, 0))
        n = int(r["rows"])
        per_day[r["landing_date"]] = (rows_read + n, bad + (n if r[ingest.RULES] else 0))
    return SourceReport(source, reports, written[bronze_table(source)],
                        written[quarantine_table(source)], later, per_day)


def _checked_rows(ctx: RunContext, source: str, first: dt.date, last: dt.date,
                  files: list[landing.RawFile], range_end: dt.date, delivered: bool
                  ) -> tuple[DataFrame, int, list[DataFrame]]:
    """The rows of a source's files with every rule evaluated (from cached frames),
    how many of their transaction_ids landing days after the load (`range_end`)
    already kept, and the frames to unpersist.

    Duplicates are judged against bronze outside [first, range_end]: the days before
    this chunk (earlier chunks of the load included, already written) hold ids these
    rows repeat; the days of later chunks are about to be replaced, so they are
    neither, exactly as when the whole range is read at once."""
    batches = landing.read_landing_batches(ctx.spark, files)
    if not files and not delivered:
        span = _span(first, last)
        log.warning("ingest %s: no %s files under %s; %s's rows of %s are cleared", span,
                    source, landing.day_dir(ctx.paths.landing, source, first).parent, source,
                    "the day" if first == last else "these days")
    if not batches:  # no files, or only JSONL files without a record
        return ctx.spark.createDataFrame([], ingest.parsed_schema(source)), 0, []
    # Built once, here, without the cache's column compression: compressing the rows
    # (raw records and all) cost about as much as reading and parsing the files (2.6
    # million rows, alternating runs: 30-38 s compressed, 22-25 s not, for 1.0 GB of
    # cache instead of 0.76 GB; a chunk is at most `ingest.range_chunk_mb` of files).
    with session_conf(ctx.spark, "spark.sql.inMemoryColumnarStorage.compressed", "false"):
        rows = ingest.union_files([
            ingest.parse_rows(batch.frame, source, run_id=ctx.run_id,
                              max_abs_amount=ctx.settings.ingest.max_abs_amount)
            for batch in batches
        ]).cache()
        rows.count()
    # every later step reads the cached rows: their file positions (one row per file
    # block) and, for transactions, the rows that are duplicates (a narrow shuffle of
    # the id columns) are computed once, cached, and joined back; the wide rows with
    # their raw records are never shuffled or sorted
    blocks = ingest.file_blocks(rows).cache()
    cached = [rows, blocks]
    numbered = ingest.number_rows(rows, blocks)
    if source != "transactions":
        return numbered, 0, cached
    if not ctx.lake.exists(bronze_table(source)):
        # the first ingest: no other day to have seen an id
        seen, later = ingest.no_ids_seen(ctx.spark), 0
    else:
        # checkpointed, not cached: a cached plan that reads bronze is dropped from
        # the cache when this job writes bronze (Spark re-caches plans over a path
        # written to), and would then be computed again, bronze and all
        seen = ingest.ids_seen_outside(ctx.lake.read(bronze_table(source)), rows, first,
                                       range_end).localCheckpoint(eager=True)
        later = seen.where(F.col("seen_after")).count()
    duplicates = ingest.duplicate_rows(rows, seen).cache()
    cached.append(duplicates)
    small = duplicates.count() <= DUPLICATES_BROADCAST_ROWS
    return ingest.mark_duplicates(numbered, duplicates, broadcast=small), later, cached


DUPLICATES_BROADCAST_ROWS = 2_000_000
"""Up to this many duplicate rows in one load (a whole resent feed is more), their
keys go whole to every task; above it, the rows and keys are joined by shuffle."""


def _file_reports(source: str, span: str, files: list[landing.RawFile],
                  outcomes: list[Row]) -> list[FileReport]:
    """Rows read, kept, quarantined and per rule for each file (also files with no
    rows), from the (landing_date, source_file, rules, rows) counts; one log line per
    file."""
    reports = {f.relative: FileReport(source, f.relative, f.format, extra_columns=f.extra)
               for f in files}
    for r in outcomes:
        report, rows = reports[r["source_file"]], int(r["rows"])
        report.rows_read += rows
        if r[ingest.RULES]:
            report.rows_quarantined += rows
            for rule in r[ingest.RULES]:
                report.rules[rule] = report.rules.get(rule, 0) + rows
        else:
            report.rows_kept += rows
    for report in reports.values():
        report.rules = dict(sorted(report.rules.items(), key=lambda kv: (-kv[1], kv[0])))
        reasons = ", ".join(f"{k} {v}" for k, v in report.rules.items())
        log.info("ingest %s %s: read=%d kept=%d quarantined=%d%s%s", span, report.file,
                 report.rows_read, report.rows_kept, report.rows_quarantined,
                 f" ({reasons})" if reasons else "",
                 f" extra columns ignored: {', '.join(report.extra_columns)}"
                 if report.extra_columns else "")
    return list(reports.values())


def chunk_days(days: list[dt.date], sizes: dict[dt.date, int],
               budget: int) -> list[list[dt.date]]:
    """`days` (in order) in consecutive chunks whose landing files hold at most
    `budget` bytes together; a day larger than the budget is a chunk of its own.
    Rows, not days, fill memory, so a small bank's whole history is one chunk and a
    large bank's is many."""
    parts: list[list[dt.date]] = []
    used = 0
    for day in days:
        if parts and used + sizes[day] <= budget:
            parts[-1].append(day)
            used += sizes[day]
        else:
            parts.append([day])
            used = sizes[day]
    return parts


def _span(first: dt.date, last: dt.date) -> str:
    """`2026-03-02`, or `2026-03-02..2026-03-04` for a range, in messages."""
    return str(first) if first == last else f"{first}..{last}"


def _day_counts(day: dt.date, reports: list[SourceReport]) -> tuple[int, int]:
    """(rows read, rows quarantined) of one landing day, all sources together."""
    counts = [r.per_day.get(day, (0, 0)) for r in reports]
    return sum(c[0] for c in counts), sum(c[1] for c in counts)


def _day_shares(days: list[dt.date], reports: list[SourceReport]) -> dict[dt.date, float]:
    """The quarantined share of each day's rows, all sources together."""
    shares = {}
    for day in days:
        read, bad = _day_counts(day, reports)
        shares[day] = bad / read if read else 0.0
    return shares


def _table(day: dt.date, reports: list[SourceReport], share: float,
           threshold: float) -> list[str]:
    files = [f for r in reports for f in r.files]
    read = sum(r.read for r in reports)
    quarantined = sum(r.quarantined for r in reports)
    lines = [
        f"ingest {day}: {len(files)} file(s), {read:,} rows read, {read - quarantined:,} "
        f"kept, {quarantined:,} quarantined ({share:.2%} of the day; max {threshold:.2%})",
        *text_table(("file", "read", "kept", "quarantined", "reasons"),
                    [(f.file, f.rows_read, f.rows_kept, f.rows_quarantined,
                      ", ".join(f"{k} {v}" for k, v in f.rules.items())) for f in files],
                    right=(1, 2, 3), indent="  "),
    ]
    for r in reports:
        if not r.files:
            lines.append(f"  (no {r.source} files for {day})")
    return lines


def _day_table(span: str, days: list[dt.date], reports: list[SourceReport],
               shares: dict[dt.date, float], threshold: float) -> list[str]:
    """A range's summary: one line per day (per-file figures are in the log and the
    job's details)."""
    files = sum(len(r.files) for r in reports)
    read = sum(r.read for r in reports)
    quarantined = sum(r.quarantined for r in reports)
    lines = [
        f"ingest {span}: {len(days)} day(s), {files} file(s), {read:,} rows read, "
        f"{read - quarantined:,} kept, {quarantined:,} quarantined (max "
        f"{threshold:.2%} of a day)",
    ]
    rows = []
    for day in days:
        day_read, bad = _day_counts(day, reports)
        flag = "  > max" if shares[day] > threshold else ""
        rows.append((day, day_read, day_read - bad, bad, f"{shares[day]:.2%}{flag}"))
    return lines + text_table(("day", "read", "kept", "quarantined", "share"), rows,
                              right=(1, 2, 3), indent="  ")
