"""The command line: help, and usage errors in one line."""

from __future__ import annotations

import pytest

from memberscore.cli import COMMANDS, main

CONTRACT_COMMANDS = {"demo", "generate", "ingest", "features", "backfill", "validate",
                     "train", "score", "publish", "monitor", "pipeline", "warehouse", "broker",
                     "events", "api"}


def test_help_lists_every_contract_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert set(COMMANDS) == CONTRACT_COMMANDS
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in CONTRACT_COMMANDS:
        assert command in out
    assert "--env" in out and "--verbose" in out


@pytest.mark.parametrize("command", sorted(CONTRACT_COMMANDS))
def test_each_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command, "--help"]) == 0
    assert f"usage: memberscore {command}" in capsys.readouterr().out


def test_unknown_command_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "invalid choice: 'frobnicate'" in err[0]
    assert "--help" in err[0]


def test_bad_date_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["features", "--run-date", "2026-13-01"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "expected a date as YYYY-MM-DD, found '2026-13-01'" in err[0]


def test_unknown_env_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--env", "qa", "features", "--run-date", "2026-01-01"]) == 2
    assert "invalid choice: 'qa'" in capsys.readouterr().err


def test_an_unexpected_jvm_error_is_told_by_its_root_cause(spark) -> None:  # type: ignore[no-untyped-def]
    """What py4j says (`An error occurred while calling o123.parseInt`) helps nobody:
    the one line names the JVM exception behind it."""
    from memberscore.cli import unexpected

    with pytest.raises(Exception) as raw:
        spark._jvm.java.lang.Integer.parseInt("twelve")
    assert unexpected(raw.value) == (
        'in Spark: NumberFormatException: For input string: "twelve" (re-run with '
        "--verbose for the traceback and report it)")
    with pytest.raises(Exception) as captured:
        spark.sql("SELECT assert_true(1 = 2, 'the books do not balance')").collect()
    assert unexpected(captured.value).startswith(
        "in Spark: SparkRuntimeException: [USER_RAISED_EXCEPTION] the books do not balance")
    assert unexpected(ValueError("bad\nsecond line")) == (
        "ValueError: bad (re-run with --verbose for the traceback and report it)")
    # a real OutOfMemoryError of the session's JVM (an array of 16 GB of longs, refused
    # before anything is allocated, so the JVM lives on): named, with what to change
    with pytest.raises(Exception) as oom:
        spark._jvm.java.lang.reflect.Array.newInstance(spark._jvm.java.lang.Long.TYPE,
                                                       2_000_000_000)
    told = unexpected(oom.value)
    assert told.startswith("Spark ran out of memory (OutOfMemoryError: "), told
    assert "raise spark.driver_memory" in told and "a smaller ingest.range_chunk_mb" in told
    assert spark.range(3).count() == 3
