"""Writing landing files, for `memberscore generate`, the demo and the tests: each
file atomically (a temporary name, then a rename), in the layout
`memberscore.landing` reads (`landing/<source>/<YYYY-MM-DD>/<name>.<format>`)."""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from memberscore.landing import FORMATS, list_landing_files
from memberscore.local.synthetic import BankStream, GenerateParams, LandingFile
from memberscore.logs import Progress
from memberscore.schemas import SOURCES

log = logging.getLogger(__name__)


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
    """What `generate_landing` wrote: where, the files, rows and day folders per source,
    the labels, the dirty rows and the ground truth, and how long it took."""

    root: Path
    params: GenerateParams
    truth: pa.Table
    dirty: dict[str, dict[str, int]]
    paths: tuple[Path, ...]
    seconds: float
    rows: dict[str, int] = field(default_factory=dict)
    days: dict[str, int] = field(default_factory=dict)
    label_rows: int = 0
    label_positives: int = 0

    @property
    def files(self) -> int:
        return len(self.paths)


def clear_window(root: Path, params: GenerateParams) -> None:
    """Empty the folders of the generated days of data files, so regenerating a window
    never mixes two runs; days outside the window are left alone."""
    for offset in range(params.days):
        day = params.start_date + dt.timedelta(days=offset)
        for source in SOURCES:
            for old in list_landing_files(Path(root), source, day):
                old.unlink()


def generate_landing(root: Path, params: GenerateParams) -> GenerateSummary:
    """Generate the synthetic bank for `params` and write its landing files under
    `root` (normally `ctx.paths.landing`), one landing day at a time: memory holds one
    day's rows, whatever the number of days."""
    start = time.monotonic()
    root = Path(root)
    clear_window(root, params)
    stream = BankStream(params)
    paths: list[Path] = []
    rows = dict.fromkeys(SOURCES, 0)
    days: dict[str, set[dt.date]] = {source: set() for source in SOURCES}
    label_rows = label_positives = 0
    with Progress(f"generate {params.start_date}..{params.end_date}",
                  total=params.days) as shown:
        for landing_day in stream.days():
            for f in landing_day.files:
                paths.append(write_landing_file(root, f))
                rows[f.source] += f.table.num_rows
                days[f.source].add(f.landing_date)
                if f.source == "member_outcomes":
                    label_rows += f.table.num_rows
                    label_positives += pc.sum(pc.equal(f.table["churned"], "true")).as_py() or 0
            shown.advance(rows=landing_day.rows)
    seconds = time.monotonic() - start
    log.info("generated %s: wrote %d files under %s in %.1fs", params, len(paths), root,
             seconds)
    return GenerateSummary(root, params, stream.truth, stream.dirty, tuple(paths), seconds,
                           rows, {source: len(d) for source, d in days.items()},
                           label_rows, label_positives)
