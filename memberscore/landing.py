"""Landing files: the one place that reads `$MEMBERSCORE_HOME/landing`, and the home
of its layout (the local harness writes files into it: `memberscore.local.landing_files`).

Layout: `landing/<source>/<YYYY-MM-DD>/<name>.<parquet|csv|jsonl>`, one folder per
source and landing day (the UTC day the files were delivered).  Names starting with
`.` or `_` are ignored (in-flight uploads, `_SUCCESS` markers).

Reading gives each file's rows untyped, as delivered: CSV and
JSONL values as strings (a JSON number arrives as its text), Parquet columns in
whatever physical type the file has; typing and every rule live in
`memberscore.transforms.ingest`.  Rows Spark cannot split into fields (a broken JSON
line, a CSV line with the wrong number of fields) are kept, with their text in
`_corrupt_record`, so ingest can quarantine them instead of losing them.  A CSV
record is one line: a value cannot hold a line break, so an unclosed quote spoils
its own line only, never the lines after it.
"""

from __future__ import annotations

import csv
import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import functions as F
from pyspark.sql import types as T

from memberscore.errors import InputError
from memberscore.transforms.ingest import (
    CORRUPT_RECORD,
    FILE_BLOCK,
    FILE_NAME,
    LANDING_DAY,
    POSITION,
    ROW_ORDER,
)

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

log = logging.getLogger(__name__)

FORMATS = ("parquet", "csv", "jsonl")


def day_dir(root: Path, source: str, day: dt.date) -> Path:
    """The folder of one source's files for one landing day."""
    return Path(root) / source / day.isoformat()


def list_landing_files(root: Path, source: str, day: dt.date) -> list[Path]:
    """The day's data files of a source, sorted by name (the delivery order ingest uses
    to break ties); hidden and `_`-prefixed files are skipped."""
    return [p for p in _visible(root, source, day) if p.suffix.lstrip(".") in FORMATS]


def unreadable_files(root: Path, source: str, day: dt.date) -> list[Path]:
    """Visible files in the day's folder that are not in a landing format (a `.csv.gz`,
    a `.json`, a sub-folder): ingest refuses to skip them silently."""
    return [p for p in _visible(root, source, day)
            if not p.is_file() or p.suffix.lstrip(".") not in FORMATS]


def _visible(root: Path, source: str, day: dt.date) -> list[Path]:
    folder = day_dir(root, source, day)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if not p.name.startswith((".", "_")))


# ----------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class RawFile:
    """One landing file as delivered: what its columns are (nothing typed, nothing
    checked).

    `columns` are the file's own columns; `missing` the declared columns it lacks (a
    file with any cannot be ingested); `extra` the columns it has that are not
    declared (kept in the raw record only); `fill` the nullable declared columns a
    JSONL file never mentions (JSON leaves out null keys), read as all null.
    `relative` is the path under the landing root (`<source>/<day>/<name>`), recorded
    as `source_file` in bronze and quarantine rows."""

    path: Path
    relative: str
    format: str
    day: dt.date
    columns: tuple[str, ...]
    missing: tuple[str, ...]
    extra: tuple[str, ...]
    fill: tuple[str, ...] = ()
    corrupt: bool = False  # JSONL: some lines are not JSON objects
    empty: bool = False  # JSONL: not a single record
    layout: tuple[str, ...] = ()  # files with equal (format, layout) are read together


@dataclass(frozen=True)
class LandingBatch:
    """Landing files of one format and one column layout, read with one Spark scan.

    `frame` has the files' columns as delivered (CSV and JSONL values as strings),
    `_corrupt_record` when rows could not be split into fields, and the position of
    each row: `_source_file` (the file's `relative` path), `_landing_date`,
    `_file_block` and `_row_order` (in file order within a block; blocks in file
    order).  One scan for many files keeps a multi-day ingest from paying a scan, a
    plan and a task per file."""

    files: tuple[RawFile, ...]
    frame: DataFrame


def inspect_landing_files(spark: SparkSession, root: Path, source: str,
                          days: Iterable[dt.date], schema: T.StructType) -> list[RawFile]:
    """Every landing file of a source on `days`, in day then name order, with its
    columns compared against the declared `schema`.  CSV headers and Parquet schemas
    are read directly; the keys of all JSONL files come from one Spark pass."""
    root = Path(root)
    paths = [(day, p) for day in days for p in list_landing_files(root, source, day)]
    jsonl = _jsonl_keys(spark, [p for _, p in paths if p.suffix == ".jsonl"])
    nothing: tuple[tuple[str, ...], bool, bool] = ((), False, True)
    files = []
    for day, path in paths:
        fmt = path.suffix.lstrip(".")
        relative = path.relative_to(root).as_posix()
        corrupt, empty = False, False
        fill: tuple[str, ...] = ()
        if fmt == "parquet":
            try:
                arrow = pq.read_schema(path).remove_metadata()
            except (pa.ArrowInvalid, OSError) as exc:
                raise InputError(f"{path} is not a readable Parquet file ({exc}); replace it "
                                 "with a valid file or move it out of the landing folder") \
                    from None
            names = tuple(arrow.names)
            layout = tuple(f"{f.name}:{f.type}" for f in arrow)
        elif fmt == "csv":
            names = _csv_header(path)
            layout = names
        else:
            keys, corrupt, empty = jsonl.get(relative, nothing)
            # no records at all: nothing to check and nothing to lose
            names = tuple(schema.names) if empty else keys
            absent = [f.name for f in schema.fields if f.name not in names]
            fill = tuple(n for n in absent if schema[n].nullable)
            layout = (*names, f"corrupt={corrupt}", f"empty={empty}")
        _check_unique(path, names)
        reserved = sorted(set(names) & set(POSITION))
        if reserved:
            raise InputError(f"{path}: column name(s) {', '.join(reserved)} are reserved by "
                             "ingest; rename them in the file and re-deliver it")
        missing = tuple(f.name for f in schema.fields
                        if f.name not in names and f.name not in fill)
        extra = tuple(n for n in names if n not in schema.names)
        files.append(RawFile(path, relative, fmt, day, names, missing, extra, fill, corrupt,
                             empty, layout))
    return files


def read_landing_batches(spark: SparkSession, files: list[RawFile]) -> list[LandingBatch]:
    """The rows of `files`, one Spark scan per (format, column layout)."""
    groups: dict[tuple[str, tuple[str, ...]], list[RawFile]] = {}
    for f in files:
        groups.setdefault((f.format, f.layout), []).append(f)
    batches = []
    for (fmt, _), members in groups.items():
        first = members[0]
        paths = [str(f.path) for f in members]
        if fmt == "parquet":
            frame = spark.read.parquet(*paths)
        elif fmt == "csv":
            csv_schema = T.StructType([T.StructField(n, T.StringType()) for n in first.columns]
                                      + [T.StructField(CORRUPT_RECORD, T.StringType())])
            frame = (
                spark.read.schema(csv_schema)
                .options(header=True, mode="PERMISSIVE",
                         columnNameOfCorruptRecord=CORRUPT_RECORD, escape='"',
                         multiLine=False, encoding="UTF-8", enforceSchema=True)
                .csv(paths)
            )
        elif first.empty:
            continue  # JSONL files without a single record: nothing to read or lose
        else:
            # every value read as its text (as `primitivesAsString` inference would)
            json_schema = T.StructType([T.StructField(n, T.StringType())
                                        for n in first.columns]
                                       + [T.StructField(CORRUPT_RECORD, T.StringType())])
            frame = (
                spark.read.schema(json_schema)
                .options(mode="PERMISSIVE", columnNameOfCorruptRecord=CORRUPT_RECORD,
                         encoding="UTF-8")
                .json(paths)
            )
            if not first.corrupt:
                frame = frame.drop(CORRUPT_RECORD)
        if first.fill:
            frame = frame.withColumns({n: F.lit(None).cast(T.StringType()) for n in first.fill})
        batches.append(LandingBatch(tuple(members), _with_position(frame)))
    return batches


def _with_position(frame: DataFrame) -> DataFrame:
    return frame.select(
        "*",
        _relative_path().alias(FILE_NAME),
        F.to_date(F.substring_index(F.substring_index(_decoded_path(), "/", -2), "/", 1))
        .alias(LANDING_DAY),
        F.col("_metadata.file_block_start").alias(FILE_BLOCK),
        F.monotonically_increasing_id().alias(ROW_ORDER),
    )


def _jsonl_keys(spark: SparkSession, paths: list[Path]
                ) -> dict[str, tuple[tuple[str, ...], bool, bool]]:
    """`<source>/<day>/<name>` -> (its keys in name order, whether some line is not a
    JSON object, whether it has no records) for the JSONL files that have a
    non-blank line, from one pass over their lines."""
    if not paths:
        return {}
    no_keys = F.array().cast("array<string>")
    lines = (
        spark.read.text([str(p) for p in paths])
        .where(F.trim(F.col("value")) != "")
        .select(F.col("_metadata.file_path").alias("path"),
                F.json_object_keys(F.col("value")).alias("keys"))
    )
    found = (
        # grouped by the scan's path as it is: decoded once per file, not per line
        lines.groupBy("path")
        # the distinct key lists of a file first: its lines mostly share one
        .agg(F.array_sort(F.array_distinct(F.flatten(F.collect_set(
            F.coalesce(F.col("keys"), no_keys))))).alias("keys"),
            F.max(F.col("keys").isNull()).alias("corrupt"))
        .select(_relative_path(F.col("path")).alias("file"), "keys", "corrupt")
        .collect()
    )
    return {r["file"]: (tuple(r["keys"]), bool(r["corrupt"]), False) for r in found}


def _decoded_path(path: Column | None = None) -> Column:
    """The scan's own (URL-encoded) file path, decoded; '+' is protected from
    url_decode's form decoding.  Evaluated for every row read, so a path without any
    '%' (nothing to decode) is taken as it is."""
    path = F.col("_metadata.file_path") if path is None else path
    return F.when(F.instr(path, "%") > 0,
                  F.url_decode(F.regexp_replace(path, r"\+", "%2B"))).otherwise(path)


def _relative_path(path: Column | None = None) -> Column:
    """`<source>/<YYYY-MM-DD>/<name>`: the last three parts of the scan's file path
    (whatever the file system: file:, dbfs:, s3:).  Evaluated for every row read:
    substring_index, not a regular expression anchored at the end, which Java
    retries from every position of the path (it cost 4 µs a row, most of a scan)."""
    return F.substring_index(_decoded_path(path), "/", -3)


def _csv_header(path: Path) -> tuple[str, ...]:
    """The header's names, from the first line alone (a bad byte further down is the
    problem of its own record, not of the header)."""
    with path.open("rb") as handle:
        first = handle.readline()
    if not first.strip():
        raise InputError(
            f"{path} is empty: a CSV landing file needs a header row naming its "
            "columns; re-deliver the file (an empty feed is a header row only)"
        )
    try:
        header = next(csv.reader([first.decode("utf-8-sig").rstrip("\r\n")]))
    except (csv.Error, UnicodeDecodeError, StopIteration) as exc:
        raise InputError(f"{path}: cannot read the CSV header ({exc}); re-deliver the "
                         "file as UTF-8 CSV with a header row") from None
    return tuple(name.strip() for name in header)


def _check_unique(path: Path, names: Iterable[str]) -> None:
    seen: set[str] = set()
    dupes = sorted({n for n in names if n in seen or seen.add(n)})  # type: ignore[func-returns-value]
    blank = [n for n in names if not n]
    if dupes or blank:
        raise InputError(
            f"{path}: column names must be unique and non-empty, found "
            f"{'duplicates ' + ', '.join(dupes) if dupes else ''}"
            f"{' and ' if dupes and blank else ''}{'an unnamed column' if blank else ''}; "
            "fix the file's header and re-run"
        )
