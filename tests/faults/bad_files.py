"""Bad landing files, in every format where the fault applies: each case delivers one
day's files to a fresh home and runs `memberscore ingest` on them.

Accounting: rows in (the records delivered) = kept (bronze) + quarantined; a file the
job refuses is left in the landing folder untouched and nothing of the day is
written, so nothing is lost either way.  Every case states the outcome it expects
(exit status, rows kept and quarantined), so a change of behaviour fails it."""

from __future__ import annotations

import csv
import datetime as dt
import json
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tests.faults.harness import (
    Outcome,
    count,
    doubled,
    lake_table,
    rows_where,
    run_here,
)

DAY = dt.date(2026, 3, 2)
TXN_COLUMNS = ["transaction_id", "member_id", "booked_at", "amount", "currency", "channel",
               "counterparty_id", "status", "ingested_at"]
MEMBER_COLUMNS = ["member_id", "legal_form", "industry_code", "region", "onboarded_at",
                  "closed_at", "updated_at"]
LENIENT = {"MEMBERSCORE__INGEST__MAX_BAD_ROW_SHARE": "1.0"}


def txn(i: int, **changes: str | None) -> dict[str, str | None]:
    row: dict[str, str | None] = {
        "transaction_id": f"T{i}", "member_id": f"M{i % 3}",
        "booked_at": "2026-03-02T09:00:00Z", "amount": f"-{i}.50", "currency": "GBP",
        "channel": "card", "counterparty_id": f"C{i}", "status": "settled",
        "ingested_at": "2026-03-02T09:05:00Z"}
    row.update(changes)
    return row


def member(i: int, **changes: str | None) -> dict[str, str | None]:
    row: dict[str, str | None] = {
        "member_id": f"M{i}", "legal_form": "ltd", "industry_code": "62020",
        "region": "London", "onboarded_at": "2024-01-05T10:00:00Z", "closed_at": None,
        "updated_at": "2024-01-05T10:00:00Z"}
    row.update(changes)
    return row


def rows(n: int = 10) -> list[dict[str, str | None]]:
    return [txn(i) for i in range(1, n + 1)]


# ------------------------------------------------------------------ writers


def write(path: Path, fmt: str, records: list[dict[str, str | None]], columns: list[str]) -> Path:
    path = path.with_suffix(f".{fmt}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            for r in records:
                writer.writerow(["" if r.get(c) is None else r[c] for c in columns])
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps({c: r.get(c) for c in columns}) + "\n"
                                for r in records), encoding="utf-8")
    else:
        pq.write_table(_typed(records, columns), path)
    return path


def _typed(records: list[dict[str, str | None]], columns: list[str]) -> pa.Table:
    """Parquet as a producer would type it: timestamps, decimals; text elsewhere."""
    def parse(column: str, value: str | None) -> object:
        if value is None:
            return None
        if column.endswith("_at"):
            return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        if column == "amount":
            return Decimal(value)
        return value

    arrays = {}
    for c in columns:
        kind = (pa.timestamp("us", tz="UTC") if c.endswith("_at")
                else pa.decimal128(18, 2) if c == "amount" else pa.string())
        arrays[c] = pa.array([parse(c, r.get(c)) for r in records], kind)
    return pa.table(arrays)


def landing(home: Path, source: str, name: str) -> Path:
    return home / "landing" / source / DAY.isoformat() / name


# ------------------------------------------------------------------ the cases

# (name, formats, build(home, fmt) -> rows in, expected (exit, kept, quarantined))
Build = Callable[[Path, str], int]
CASES: list[tuple[str, tuple[str, ...], Build, Callable[[str], tuple[int, int, int]]]] = []


def case(name: str, formats: tuple[str, ...],
         expected: Callable[[str], tuple[int, int, int]]) -> Callable[[Build], Build]:
    def register(build: Build) -> Build:
        CASES.append((name, formats, build, expected))
        return build
    return register


@case("truncated", ("csv", "jsonl", "parquet"),
      lambda fmt: (4, 0, 0) if fmt == "parquet" else (0, 9, 1))
def _truncated(home: Path, fmt: str) -> int:
    path = write(landing(home, "transactions", "payments"), fmt, rows(), TXN_COLUMNS)
    data = path.read_bytes()
    cut = len(data) - 30 if fmt != "parquet" else len(data) // 2
    path.write_bytes(data[:cut])  # the last record (or the Parquet footer) cut off
    return 10


@case("zero-byte", ("csv", "jsonl", "parquet"),
      lambda fmt: (0, 10, 0) if fmt == "jsonl" else (4, 0, 0))
def _zero_byte(home: Path, fmt: str) -> int:
    write(landing(home, "transactions", "payments"), "csv", rows(), TXN_COLUMNS)
    landing(home, "transactions", f"empty.{fmt}").write_bytes(b"")
    return 10


@case("header-only", ("csv", "parquet"), lambda fmt: (0, 10, 0))
def _header_only(home: Path, fmt: str) -> int:
    write(landing(home, "transactions", "payments"), "jsonl", rows(), TXN_COLUMNS)
    write(landing(home, "transactions", "nothing"), fmt, [], TXN_COLUMNS)
    return 10


@case("wrong-typed values", ("csv", "jsonl", "parquet"), lambda fmt: (0, 8, 2))
def _wrong_typed(home: Path, fmt: str) -> int:
    records = rows()
    if fmt == "parquet":  # a typed file with a column of the wrong type
        table = _typed(records, TXN_COLUMNS)
        wrong = pa.array([None if i < 8 else "yesterday" for i in range(10)], pa.string())
        booked = pa.array([r if i < 8 else None for i, r in
                           enumerate(table["booked_at"].to_pylist())], pa.timestamp("us", "UTC"))
        table = table.set_column(TXN_COLUMNS.index("booked_at"), "booked_at", booked)
        table = table.append_column("note", wrong)  # extra, ignored
        path = landing(home, "transactions", "payments.parquet")
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)
        return 10
    records[3]["amount"] = "twelve pounds"
    records[7]["booked_at"] = "yesterday"
    write(landing(home, "transactions", "payments"), fmt, records, TXN_COLUMNS)
    return 10


@case("one malformed line", ("csv", "jsonl"), lambda fmt: (0, 9, 1))
def _malformed(home: Path, fmt: str) -> int:
    path = write(landing(home, "transactions", "payments"), fmt, rows(), TXN_COLUMNS)
    lines = path.read_text().splitlines(keepends=True)
    lines[4] = 'T4,M1,"2026-03-02T09:00:00Z\n' if fmt == "csv" else '{"transaction_id": "T4", \n'
    path.write_text("".join(lines))
    return 10


@case("missing required column", ("csv", "jsonl", "parquet"), lambda fmt: (4, 0, 0))
def _missing_column(home: Path, fmt: str) -> int:
    columns = [c for c in TXN_COLUMNS if c != "amount"]
    write(landing(home, "transactions", "payments"), fmt, rows(), columns)
    return 10


@case("extra column", ("csv", "jsonl", "parquet"), lambda fmt: (0, 10, 0))
def _extra_column(home: Path, fmt: str) -> int:
    records = [{**r, "branch": "Leeds"} for r in rows()]
    write(landing(home, "transactions", "payments"), fmt, records, [*TXN_COLUMNS, "branch"])
    return 10


@case("non-UTF-8 bytes", ("csv", "jsonl"), lambda fmt: (0, 9, 1))
def _latin1(home: Path, fmt: str) -> int:
    path = write(landing(home, "transactions", "payments"), fmt, rows(), TXN_COLUMNS)
    path.write_bytes(path.read_bytes().replace(b"C3", b"Caf\xe9"))  # Latin-1 e-acute
    return 10


@case("same file delivered twice", ("csv", "jsonl", "parquet"), lambda fmt: (0, 10, 10))
def _twice(home: Path, fmt: str) -> int:
    write(landing(home, "transactions", "payments"), fmt, rows(), TXN_COLUMNS)
    write(landing(home, "transactions", "payments_resent"), fmt, rows(), TXN_COLUMNS)
    return 20


@case("impossible member dates", ("csv", "jsonl", "parquet"), lambda fmt: (0, 2, 2))
def _impossible(home: Path, fmt: str) -> int:
    write(landing(home, "members", "members"), fmt, [
        member(1), member(2, updated_at="2024-01-05T09:00:00Z"),
        member(3, closed_at="2023-12-31T00:00:00Z", updated_at="2024-02-01T00:00:00Z"),
        member(4, closed_at="2024-01-05T10:00:00Z")], MEMBER_COLUMNS)
    return 4


@case("extreme amounts", ("csv", "jsonl", "parquet"), lambda fmt: (0, 9, 1))
def _extreme(home: Path, fmt: str) -> int:
    records = rows()
    records[0]["amount"] = "9999999999999999.00"
    records[1]["amount"] = "-1000000000.00"  # the bound itself is accepted
    write(landing(home, "transactions", "payments"), fmt, records, TXN_COLUMNS)
    return 10


# ------------------------------------------------------------------ running them


def run_cases(work: Path) -> list[Outcome]:
    outcomes = []
    for name, formats, build, expected in CASES:
        for fmt in formats:
            home = work / f"file-{name.replace(' ', '-')}-{fmt}"
            outcomes.append(_run_one(f"file: {name} ({fmt})", home, fmt, build, expected(fmt)))
    return outcomes


def _run_one(label: str, home: Path, fmt: str, build: Build,
             expected: tuple[int, int, int]) -> Outcome:
    started = time.monotonic()
    rows_in = build(home, fmt)
    delivered = sorted(p for p in (home / "landing").rglob("*") if p.is_file())
    before = {p: p.read_bytes() for p in delivered}
    run = run_here(home, "ingest", "--run-date", DAY.isoformat(), env=LENIENT)
    source = "members" if "member" in label else "transactions"
    bronze = rows_where(lake_table(home, f"bronze_{source}"), "landing_date", DAY)
    quarantine = rows_where(lake_table(home, f"quarantine_{source}"), "landing_date", DAY)
    kept, held = count(bronze), count(quarantine)
    out = Outcome(label, rows_in=rows_in, kept=kept, quarantined=held, exit=run.code)
    code, want_kept, want_held = expected
    out.expect(run.code == code, f"exit {run.code}, expected {code}: {run.errors()}")
    out.expect((kept, held) == (want_kept, want_held),
               f"kept {kept} and quarantined {held}, expected {want_kept} and {want_held}")
    out.expect(all(p.read_bytes() == before[p] for p in delivered),
               "a landing file was changed or removed")
    if run.code == 0:
        out.lost = rows_in - kept - held
    else:  # refused: the day is untouched and the files stay to be fixed
        out.lost = 0 if kept + held == 0 and len(run.errors()) == 1 else rows_in - kept - held
        out.expect(len(run.errors()) == 1 and any(p.name in run.errors()[0] for p in delivered),
                   f"the error does not name the file: {run.errors()}")
    keys = ["transaction_id"] if source == "transactions" else ["member_id", "updated_at"]
    out.doubled = doubled(bronze, keys)
    out.expect(run.noise() == [], f"stderr has more than one line: {run.noise()[:3]}")
    out.seconds = time.monotonic() - started
    return out
