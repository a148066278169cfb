"""`memberscore ingest --run-date D`: the landing files of day D -> bronze Delta tables,
every bad row quarantined with the rules it broke, nothing dropped.

1. Read every file of D for every source (conf `ingest.sources`) and check its
   columns.  A file missing a declared column, or a file in the day's folder that is
   not Parquet, CSV or JSONL, fails the job before anything is written, naming every
   such file (and the missing columns).
2. Per source: type each file's rows against the declared schema and evaluate every
   rule (`memberscore.transforms.ingest`); transaction_ids kept on an earlier landing
   day, or repeated within D, are duplicates.
3. Replace D's partition of `bronze_<source>` with the clean rows and D's partition
   of `quarantine_<source>` with the others (also when there are none, so a re-run
   clears what an earlier run of D wrote; a source that has never delivered a file
   gets no tables yet).
4. Report rows read, kept and quarantined by rule, per file.  When the quarantined
   share of D's rows (all sources together) exceeds `ingest.max_bad_row_share`, fail
   with QualityGateError, after the writes, so the rows are there to inspect.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pyspark.sql import functions as F

from memberscore import landing
from memberscore.args import iso_date
from memberscore.context import JobResult, RunContext
from memberscore.errors import ConfigError, InputError, QualityGateError
from memberscore.schemas import SOURCES, bronze_schema, bronze_table, quarantine_table
from memberscore.transforms import ingest

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, Row

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run-date", type=iso_date, required=True,
                        help="the day to process, YYYY-MM-DD (UTC)")


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
    """What ingest did with one source's files of the day."""

    source: str
    files: list[FileReport]
    kept: int
    quarantined: int
    later_day_duplicates: int = 0

    @property
    def read(self) -> int:
        return self.kept + self.quarantined


def run(ctx: RunContext, args: argparse.Namespace) -> JobResult:
    day: dt.date = args.run_date
    conf = ctx.settings.ingest
    sources = _sources(conf.sources)
    root = ctx.paths.landing

    strays = [p for source in sources for p in landing.unreadable_files(root, source, day)]
    if strays:
        raise InputError(
            f"ingest {day}: landing folder(s) hold files ingest cannot read, so nothing "
            f"was ingested: {', '.join(map(str, strays))}. Landing files must be "
            f"{', '.join('*.' + f for f in landing.FORMATS)}; move other files out, or "
            "give in-flight uploads a name starting with '.' or '_'"
        )
    raw = {source: landing.read_landing_day(ctx.spark, root, source, day, SOURCES[source])
           for source in sources}
    _check_columns(raw, day)
    if not any(raw.values()):
        raise InputError(
            f"no landing files for {day} under {root}/<source>/{day}/ for any of "
            f"{', '.join(sources)}; check that the day's feeds were delivered "
            "(or run `memberscore generate` locally)"
        )

    reports = [_ingest_source(ctx, source, day, raw[source]) for source in sources]

    read = sum(r.read for r in reports)
    quarantined = sum(r.quarantined for r in reports)
    share = quarantined / read if read else 0.0
    rules: Counter[str] = Counter()
    for report in reports:
        for f in report.files:
            rules.update({f"{report.source}:{rule}": n for rule, n in f.rules.items()})
    messages = _table(day, reports, share, conf.max_bad_row_share)
    for report in reports:
        if report.later_day_duplicates:
            warning = (
                f"{report.later_day_duplicates} transaction_id(s) of {day} were also kept "
                f"on later landing days: ingest those days again (in date order) so they "
                "are quarantined there as duplicates"
            )
            log.warning(warning)
            messages.append(f"warning: {warning}")

    if share > conf.max_bad_row_share:
        top = ", ".join(f"{rule} {n:,}" for rule, n in rules.most_common(3))
        where = "; ".join(
            f"{ctx.lake.location(quarantine_table(r.source))} ({r.quarantined:,})"
            for r in reports if r.quarantined
        )
        raise QualityGateError(
            f"ingest {day}: {quarantined:,} of {read:,} rows quarantined ({share:.2%}), "
            f"above ingest.max_bad_row_share {conf.max_bad_row_share:.2%}; top reasons: "
            f"{top}. Bronze and quarantine for {day} were written: inspect the rows with "
            f"landing_date = {day} in {where}, fix or re-deliver the landing files under "
            f"{root}/<source>/{day}/ and re-run `memberscore ingest --run-date {day}`"
        )

    rows: dict[str, int] = {}
    for report in reports:
        rows[bronze_table(report.source)] = report.kept
        rows[quarantine_table(report.source)] = report.quarantined
    return JobResult(
        job="ingest",
        rows=rows,
        details={
            "run_date": day.isoformat(),
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


def _sources(configured: tuple[str, ...]) -> list[str]:
    unknown = [s for s in configured if s not in SOURCES]
    if unknown:
        raise ConfigError(
            f"ingest.sources names unknown source(s) {unknown}; known sources: "
            f"{', '.join(SOURCES)}"
        )
    return list(configured)


def _check_columns(raw: dict[str, list[landing.RawFile]], day: dt.date) -> None:
    """Fail, before writing anything for the day, when any file lacks declared columns."""
    problems = [f"{f.path} lacks {', '.join(f.missing)} (has: {', '.join(f.columns) or '-'})"
                for files in raw.values() for f in files if f.missing]
    if problems:
        raise InputError(
            f"ingest {day}: {len(problems)} landing file(s) miss required columns, so "
            f"nothing was ingested for {day}: {'; '.join(problems)}. Re-deliver the "
            "file(s) with every column of the source's contract (or move them out of "
            "the landing folder) and re-run"
        )


def _ingest_source(ctx: RunContext, source: str, day: dt.date,
                   files: list[landing.RawFile]) -> SourceReport:
    """Type, check and write one source's rows of the day; report per file."""
    lake = ctx.lake
    checked, later, cached = _checked_rows(ctx, source, day, files)
    written: dict[str, int] = {}
    try:
        outcomes = ingest.outcome_counts(checked).collect() if files else []
        for table, rows in ((bronze_table(source), ingest.bronze_rows(checked, source)),
                            (quarantine_table(source),
                             ingest.quarantine_rows(checked, ctx.started_at))):
            if not files and not lake.exists(table):
                written[table] = 0  # nothing delivered, nothing to clear
                continue
            written[table] = lake.replace_where(table, rows, {"landing_date": day},
                                                ["landing_date"]).rows_written
    finally:
        for frame in cached:
            frame.unpersist()
    reports = _file_reports(source, day, files, outcomes)
    return SourceReport(source, reports, written[bronze_table(source)],
                        written[quarantine_table(source)], later)


def _checked_rows(ctx: RunContext, source: str, day: dt.date, files: list[landing.RawFile]
                  ) -> tuple[DataFrame, int, list[DataFrame]]:
    """The day's rows of a source with every rule evaluated (cached), how many of its
    transaction_ids later landing days already kept, and the frames to unpersist."""
    if not files:
        log.warning("ingest %s: no %s files in %s; %s's rows of this day are cleared",
                    day, source, landing.day_dir(ctx.paths.landing, source, day), source)
        return ctx.spark.createDataFrame([], ingest.parsed_schema(source)), 0, []
    parsed = ingest.combine_files([
        ingest.parse_rows(f.frame, source, source_file=f.relative, landing_date=day,
                          run_id=ctx.run_id)
        for f in files
    ])
    if source != "transactions":
        checked = parsed.cache()
        return checked, 0, [checked]
    # today's ids come from a pruned pass over the files (only transaction_id is
    # computed); the small `seen` frame is cached, and the full rows once
    bronze = ctx.lake.read_or_empty(bronze_table(source), bronze_schema(source))
    seen = ingest.ids_seen_on_other_days(bronze, parsed, day).cache()
    later = seen.where(F.col("seen_after")).count()
    checked = ingest.flag_duplicates(parsed, seen).cache()
    return checked, later, [seen, checked]


def _file_reports(source: str, day: dt.date, files: list[landing.RawFile],
                  outcomes: list[Row]) -> list[FileReport]:
    """Rows read, kept, quarantined and per rule for each file (also files with no
    rows), from the (source_file, rules, rows) counts; one log line per file."""
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
        log.info("ingest %s %s: read=%d kept=%d quarantined=%d%s%s", day, report.file,
                 report.rows_read, report.rows_kept, report.rows_quarantined,
                 f" ({reasons})" if reasons else "",
                 f" extra columns ignored: {', '.join(report.extra_columns)}"
                 if report.extra_columns else "")
    return list(reports.values())


def _table(day: dt.date, reports: list[SourceReport], share: float,
           threshold: float) -> list[str]:
    files = [f for r in reports for f in r.files]
    read = sum(r.read for r in reports)
    quarantined = sum(r.quarantined for r in reports)
    width = max([len("file"), *(len(f.file) for f in files)])
    lines = [
        f"ingest {day}: {len(files)} file(s), {read:,} rows read, {read - quarantined:,} "
        f"kept, {quarantined:,} quarantined ({share:.2%} of the day; max {threshold:.2%})",
        f"  {'file':<{width}}  {'read':>9}  {'kept':>9}  {'quarantined':>11}  reasons",
    ]
    for f in files:
        reasons = ", ".join(f"{k} {v}" for k, v in f.rules.items())
        lines.append(f"  {f.file:<{width}}  {f.rows_read:>9,}  {f.rows_kept:>9,}  "
                     f"{f.rows_quarantined:>11,}  {reasons}")
    for r in reports:
        if not r.files:
            lines.append(f"  (no {r.source} files for {day})")
    return lines
