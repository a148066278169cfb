"""What a person sees: results on stdout; warnings, errors and progress on stderr; every
log line in the run's log file under $MEMBERSCORE_HOME/logs/."""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path

import pytest

from memberscore import logs
from memberscore.cli import main
from memberscore.logs import Progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def quiet_console() -> None:
    """The console as a command without --verbose configures it."""
    logs.configure_logging(verbose=False)


def test_progress_off_a_terminal_is_plain_lines_with_rate_and_time_left(
        quiet_console: None) -> None:
    out = io.StringIO()
    with Progress("backfill 2026-03-01..2026-03-04", total=4, every_seconds=0,
                  stream=out) as shown:
        shown.announce("first chunk")
        shown.advance(2, rows=1_000)
        shown.advance(2, rows=3_000, note="last chunk")
    lines = out.getvalue().splitlines()
    assert lines[0] == "backfill 2026-03-01..2026-03-04 1/4: first chunk"
    assert re.fullmatch(r"backfill 2026-03-01\.\.2026-03-04: 2/4 days, 1,000 rows, "
                        r"[\d,]+ rows/s, about \d+ s left", lines[1]), lines[1]
    assert re.fullmatch(r"backfill 2026-03-01\.\.2026-03-04: 4/4 days, 4,000 rows, "
                        r"[\d,]+ rows/s, \d+ s \(last chunk\)", lines[2]), lines[2]
    assert len(lines) == 3
    assert "\r" not in out.getvalue()


def test_progress_lines_are_throttled_but_the_last_is_always_shown(
        quiet_console: None) -> None:
    out = io.StringIO()
    with Progress("generate", total=100, every_seconds=3600, stream=out) as shown:
        for _ in range(100):
            shown.advance(rows=10)
    assert out.getvalue().splitlines() == [
        line for line in out.getvalue().splitlines() if line.startswith("generate: 100/100 days")]
    assert len(out.getvalue().splitlines()) == 1


def test_progress_on_a_terminal_is_a_bar(quiet_console: None) -> None:
    out = _Terminal()
    with Progress("ingest 2026-03-01..2026-03-09", total=3, unit="sources", every_seconds=0,
                  stream=out) as shown:
        shown.announce("members")
        for _ in range(3):
            shown.advance(rows=500)
    text = out.getvalue()
    assert "\r" in text  # redrawn in place
    assert "ingest 2026-03-01..2026-03-09" in text and "3/3" in text
    assert "ingest 2026-03-01..2026-03-09 1/3: members\n" in text  # announced above the bar
    assert "3/3 sources, 1,500 rows" not in text  # no plain progress lines besides the bar


def test_progress_is_logged_to_the_run_log(tmp_path: Path, quiet_console: None) -> None:
    path = logs.open_run_log(tmp_path / "logs" / "run-test.log")
    try:
        with Progress("backfill", total=1, stream=io.StringIO()) as shown:
            shown.advance(rows=7)
    finally:
        logs.close_run_log()
    assert "INFO  memberscore.progress: backfill: 1/1 days, 7 rows" in path.read_text()


def test_a_command_prints_results_and_warnings_and_logs_everything_to_its_file(
        home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--run-id", "console-1", "generate", "--members", "30", "--days", "3",
                 "--seed", "1", "--end-date", "2026-03-03"]) == 0
    captured = capsys.readouterr()
    err = captured.err.splitlines()
    assert not [line for line in err if " INFO " in line]  # no log lines on the console
    assert len(err) == 1, err  # one progress line, nothing else
    assert re.fullmatch(r"generate 2026-03-01\.\.2026-03-03: 3/3 days, [\d,]+ rows, "
                        r"[\d,]+ rows/s, \d+ s", err[0]), err  # progress only
    log_file = home / "logs" / "console-1-generate.log"
    assert captured.out.splitlines()[-1] == f"full log: {log_file}"
    text = log_file.read_text(encoding="utf-8")
    assert "INFO  memberscore: job=generate env=local run_id=console-1 status=started" in text
    assert re.search(r"job=generate .* status=ok seconds=[\d.]+ rows: landing_members=", text)
    assert "memberscore.progress: generate 2026-03-01..2026-03-03: 3/3 days" in text


def test_verbose_shows_the_log_lines_on_the_console(
        home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        assert main(["--verbose", "--run-id", "console-2", "generate", "--members", "30",
                     "--days", "3", "--seed", "1", "--end-date", "2026-03-03"]) == 0
        err = capsys.readouterr().err
        assert "INFO  memberscore: job=generate env=local run_id=console-2 status=started" in err
        assert "INFO  memberscore.progress: generate 2026-03-01..2026-03-03: 3/3 days" in err
    finally:
        logs.configure_logging(verbose=False)
    assert (home / "logs" / "console-2-generate.log").is_file()


def test_a_warning_reaches_the_console_as_one_plain_line(
        quiet_console: None, capsys: pytest.CaptureFixture[str]) -> None:
    logging.getLogger("memberscore.jobs.ingest").warning("ingest 2026-03-01: no files")
    logging.getLogger("memberscore.jobs.ingest").info("read=3 kept=3")
    logging.getLogger("great_expectations").warning("a library's own warning")
    logging.getLogger("memberscore.quality.gate").warning("WARNING bronze_transactions x")
    assert capsys.readouterr().err.splitlines() == [
        "WARNING: ingest 2026-03-01: no files", "WARNING bronze_transactions x"]


def test_lines_a_library_prints_go_to_the_run_log_even_with_verbose(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """MLflow's migrations print through a handler bound to sys.stderr: as a LogStream
    their lines become log records, and with --verbose the console shows them once
    (no record loops back into the stream)."""
    import contextlib

    for verbose in (False, True):
        logs.configure_logging(verbose=verbose)
        path = logs.open_run_log(tmp_path / f"run-{verbose}.log")
        try:
            with contextlib.redirect_stderr(logs.LogStream("alembic")):
                print("Running upgrade a -> b", file=__import__("sys").stderr)
        finally:
            logs.close_run_log()
        assert "memberscore.lib: alembic: Running upgrade a -> b" in path.read_text()
        err = capsys.readouterr().err
        assert err.count("alembic: Running upgrade a -> b") == (1 if verbose else 0), err
