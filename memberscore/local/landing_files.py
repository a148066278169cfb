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
from memberscore.local.synthetic import GenerateParams, LandingFile, SyntheticBank, generate
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


