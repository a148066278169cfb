"""Landing files: the one place that writes and reads `$MEMBERSCORE_HOME/landing`.

Layout: `landing/<source>/<YYYY-MM-DD>/<name>.<parquet|csv|jsonl>`, one folder per
source and landing day (the UTC day the files were delivered).  Names starting with
`.` or `_` are ignored (in-flight uploads, `_SUCCESS` markers).

Writing (for `memberscore generate` and tests) is atomic per file: a reader never
sees half a file.  Reading gives each file's rows untyped, as delivered: CSV and
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
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from pyspark.sql import functions as F
from pyspark.sql import types as T

from memberscore.errors import InputError
from memberscore.logs import Progress
from memberscore.schemas import SOURCES
from memberscore.synthetic import GenerateParams, LandingFile, SyntheticBank, generate
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


# ----------------------------------------------------------------------------- writing


def write_landing_file(root: Path, file: LandingFile) -> Path:
    """Write one landing file atomically (temporary name, then rename)."""
    target = Path(root) / file.relative_path
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    if file.format == "parquet":
        pq.write_table(file.table, tmp)
    elif file.format == "csv":
        pa_csv.write_csv(file.table, tmp,
                         pa_csv.WriteOptions(include_header=True, quoting_style="needed"))
    elif file.format == "jsonl":
        tmp.write_bytes(jsonl_bytes(file.table))
    else:
        raise ValueError(f"unknown landing format {file.format!r}: expected one of {FORMATS}")
    os.replace(tmp, target)
    return target


_JSON_ESCAPES = (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t"))


def jsonl_bytes(table: pa.Table) -> bytes:
    """The table as JSON lines, one object per row with every column (null as `null`),
    values as JSON strings; built with Arrow kernels, not a Python loop per row."""
    if table.num_rows == 0:
        return b""
    def text(value: str) -> pa.Scalar:
        return pa.scalar(value, pa.large_string())

    parts: list[pa.Array | pa.Scalar] = []
    for i, name in enumerate(table.column_names):
        values = pc.cast(table.column(name).combine_chunks(), pa.large_string())
        if pc.any(pc.match_substring_regex(values, r'[\x00-\x1f"\\]')).as_py():
            if pc.any(pc.match_substring_regex(values,
                                               r"[\x00-\x08\x0b\x0c\x0e-\x1f]")).as_py():
                raise ValueError(f"column {name!r} holds control characters this writer "
                                 "does not escape")
            for raw, escaped in _JSON_ESCAPES:
                values = pc.replace_substring(values, raw, escaped)
        key = ("{" if i == 0 else ",") + '"' + name.replace('"', '\\"') + '":'
        if values.null_count:
            quoted = pc.binary_join_element_wise(text('"'), values, text('"'), text(""))
            parts += [text(key), pc.fill_null(quoted, text("null"))]
        else:  # no nulls: the quotes can go into the constant parts (one pass fewer)
            parts += [text(key + '"'), values, text('"')]
    lines = pc.binary_join_element_wise(*parts, text("}\n"), text(""))
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)
    first, last = offsets[lines.offset], offsets[lines.offset + len(lines)]
    return lines.buffers()[2][first:last].to_pybytes()


@dataclass(frozen=True)
class GenerateSummary:
    """What `generate_landing` wrote: where, how many files and rows, and how long."""

    root: Path
    bank: SyntheticBank
    paths: tuple[Path, ...]
    seconds: float
    rows: dict[str, int] = field(default_factory=dict)

    @property
    def files(self) -> int:
        return len(self.paths)


def write_landing(root: Path, bank: SyntheticBank) -> list[Path]:
    """Write every file of `bank` under `root`.  The folders of the generated days are
    emptied of data files first, so regenerating a window never mixes two runs; days
    outside the window are left alone."""
    root = Path(root)
    for offset in range(bank.params.days):
        day = bank.params.start_date + dt.timedelta(days=offset)
        for source in SOURCES:
            for old in list_landing_files(root, source, day):
                old.unlink()
    by_day: dict[dt.date, list[LandingFile]] = {}
    for f in bank.files:
        by_day.setdefault(f.landing_date, []).append(f)
    paths: list[Path] = []
    params = bank.params
    with Progress(f"generate {params.start_date}..{params.end_date}", total=len(by_day)) as shown:
        for day in sorted(by_day):
            paths.extend(write_landing_file(root, f) for f in by_day[day])
            shown.advance(rows=sum(f.table.num_rows for f in by_day[day]))
    return paths


def generate_landing(root: Path, params: GenerateParams) -> GenerateSummary:
    """Generate the synthetic bank for `params` and write its landing files under
    `root` (normally `ctx.paths.landing`)."""
    start = time.monotonic()
    bank = generate(params)
    generated = time.monotonic()
    paths = write_landing(root, bank)
    done = time.monotonic()
    log.info("generated %s in %.1fs, wrote %d files under %s in %.1fs", params,
             generated - start, len(paths), root, done - generated)
    rows = {source: bank.rows(source) for source in SOURCES}
    return GenerateSummary(Path(root), bank, tuple(paths), done - start, rows)


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
        F.to_date(F.regexp_extract(_decoded_path(), r"([^/]+)/[^/]+$", 1)).alias(LANDING_DAY),
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
        .select(_relative_path().alias("file"),
                F.json_object_keys(F.col("value")).alias("keys"))
    )
    found = (
        lines.groupBy("file")
        # the distinct key lists of a file first: its lines mostly share one
        .agg(F.array_sort(F.array_distinct(F.flatten(F.collect_set(
            F.coalesce(F.col("keys"), no_keys))))).alias("keys"),
            F.max(F.col("keys").isNull()).alias("corrupt"))
        .collect()
    )
    return {r["file"]: (tuple(r["keys"]), bool(r["corrupt"]), False) for r in found}


def _decoded_path() -> Column:
    """The scan's own (URL-encoded) file path, decoded; '+' is protected from
    url_decode's form decoding."""
    return F.url_decode(F.regexp_replace(F.col("_metadata.file_path"), r"\+", "%2B"))


def _relative_path() -> Column:
    """`<source>/<YYYY-MM-DD>/<name>`: the last three parts of the scan's file path
    (whatever the file system: file:, dbfs:, s3:)."""
    return F.regexp_extract(_decoded_path(), r"([^/]+/[^/]+/[^/]+)$", 1)


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
