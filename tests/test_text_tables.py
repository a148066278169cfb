"""The one layout of the text tables commands print."""

from __future__ import annotations

from memberscore.text_tables import cell, text_table


def test_columns_align_numbers_right_and_the_last_column_is_free_text() -> None:
    lines = text_table(("file", "read", "kept", "reasons"),
                       [("a.csv", 12345, 12300, "duplicate 40, late 5"),
                        ("members/b.parquet", 10, 10, "")],
                       right=(1, 2), indent="  ")
    assert lines == [
        "  file                 read    kept  reasons",
        "  a.csv              12,345  12,300  duplicate 40, late 5",
        "  members/b.parquet      10      10",
    ]


def test_a_rule_under_the_header_and_missing_values_as_dashes() -> None:
    assert text_table(("step", "status", "rows", "note"),
                      [("ingest", "ok", None, ""), ("score", "FAILED", 3, "1 warning(s)")],
                      right=(2,), rule=True) == [
        "step    status  rows  note",
        "------  ------  ----",
        "ingest  ok         -",
        "score   FAILED     3  1 warning(s)",
    ]


def test_no_rows_is_the_header_alone() -> None:
    assert text_table(("day", "read", "share"), [], right=(1,)) == ["day  read  share"]


def test_cells() -> None:
    assert [cell(1234567), cell(None), cell(True), cell(0.5), cell("x")] == [
        "1,234,567", "-", "True", "0.5", "x"]
