"""Fixed-width text tables for a command's output (the pipeline's steps, ingest's
files and days): the one place that lays out columns, so every table a person reads
aligns the same way."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence


def cell(value: object) -> str:
    """A whole number with thousands separators, None as `-`, anything else as str."""
    if value is None:
        return "-"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def text_table(header: Sequence[str], rows: Iterable[Sequence[object]], *,
               right: Collection[int] = (), indent: str = "", rule: bool = False) -> list[str]:
    """Lines of a table: each column as wide as its widest cell, two spaces apart, the
    columns numbered in `right` aligned right, the last column unpadded (a free-text
    note or list) and left out of a row where it is empty; `rule` puts dashes under the
    header."""
    table = [[str(h) for h in header], *[[cell(v) for v in row] for row in rows]]
    padded = len(header) - 1
    widths = [max(len(row[i]) for row in table) for i in range(padded)]

    def line(row: list[str]) -> str:
        parts = [row[i].rjust(widths[i]) if i in right else row[i].ljust(widths[i])
                 for i in range(padded)]
        last = f"  {row[padded]}" if row[padded] else ""
        return (indent + "  ".join(parts) + last).rstrip()

    lines = [line(table[0])]
    if rule:
        lines.append(indent + "  ".join("-" * w for w in widths))
    lines += [line(row) for row in table[1:]]
    return lines
