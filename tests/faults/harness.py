"""What every fault case uses: running memberscore (in this process, on one shared
Spark session, or as a separate process that can be killed), reading what it left in
a home without Spark (delta-rs for the lake, the connector for the warehouse), and
one result row per case."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

PYTHON = sys.executable


@dataclass
class Outcome:
    """One row of the suite's table."""

    case: str
    rows_in: int | None = None
    kept: int | None = None
    quarantined: int | None = None
    lost: int = 0
    doubled: int = 0
    leaks: int = 0
    exit: int | None = None
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    def expect(self, condition: bool, problem: str) -> None:
        if not condition:
            self.problems.append(problem)

    @property
    def verdict(self) -> str:
        return "ok" if not self.problems else "FAIL"


@dataclass(frozen=True)
class Run:
    """A finished memberscore command."""

    code: int
    out: str
    err: str

    def errors(self) -> list[str]:
        """memberscore's own error lines on stderr."""
        return [line for line in self.err.splitlines() if line.startswith("memberscore: ")]

    def noise(self) -> list[str]:
        """stderr lines that are neither log lines nor memberscore's error line: a
        stack trace, a connector's chatter."""
        return [line for line in self.err.splitlines()
                if line.strip() and not line.startswith("memberscore: ")
                and not _is_log_line(line) and not _is_console_line(line)]


def _is_log_line(line: str) -> bool:
    # `2026-12-06T20:13:39 INFO  memberscore...: ...` (with --verbose)
    return len(line) > 20 and line[4] == "-" and line[10] == "T" and line[19] == " "


# memberscore's console: `WARNING: ...`, and progress (`ingest 2026-03-01..2026-03-09
# (9 days): 2/3 sources, ...`, `pipeline 2026-03-09 2/6: features`)
_CONSOLE = re.compile(r"^(WARNING|ERROR|CRITICAL)[: ]|^\S.*(: \d+/\d+ \w|\s\d+/\d+: )")


def _is_console_line(line: str) -> bool:
    return bool(_CONSOLE.search(line))


@contextlib.contextmanager
def environment(home: Path, extra: dict[str, str] | None = None) -> Iterator[None]:
    """MEMBERSCORE_HOME (and `extra`) set for the block, everything restored after."""
    saved = dict(os.environ)
    os.environ["MEMBERSCORE_HOME"] = str(home)
    os.environ.update(extra or {})
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run_here(home: Path, *args: str, env: dict[str, str] | None = None) -> Run:
    """`memberscore ARGS` in this process (the shared Spark session)."""
    from memberscore.cli import main

    out, err = io.StringIO(), io.StringIO()
    with environment(home, env), contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(err):
        code = main(list(args))
    _forget_tables()
    return Run(code, out.getvalue(), err.getvalue())


def _forget_tables() -> None:
    from pyspark.sql import SparkSession

    session = SparkSession.getActiveSession()
    if session is not None:
        session.catalog.clearCache()
        session._jvm.org.apache.spark.sql.delta.DeltaLog.clearCache()  # type: ignore[union-attr]


# kept for the child: the suite's Kafka broker (tests.faults.__main__)
BROKER_VAR = "MEMBERSCORE__EVENTS__BOOTSTRAP_SERVERS"


def subprocess_env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MEMBERSCORE") or k == BROKER_VAR}
    env.update(MEMBERSCORE_HOME=str(home), PYSPARK_PYTHON=PYTHON,
               MEMBERSCORE__SPARK__DRIVER_MEMORY="1g", **(extra or {}))
    return env


def spawn(home: Path, *args: str, env: dict[str, str] | None = None,
          log: Path | None = None) -> subprocess.Popen[str]:
    """`memberscore ARGS` as its own process group (so `kill -9` takes its JVM too)."""
    target = (log or home.parent / f"{home.name}.log").open("w")
    return subprocess.Popen(
        [PYTHON, "-m", "memberscore.cli", *args], env=subprocess_env(home, env),
        stdout=target, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def kill_group(process: subprocess.Popen[str]) -> None:
    """`kill -9` the process and everything it started (its JVM, a local server)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)


def wait_for_line(log: Path, text: str, process: subprocess.Popen[str],
                  timeout: float = 300, home: Path | None = None) -> bool:
    """Wait until `text` appears in the process's output, or in the run logs under
    `home`/logs/ (where INFO lines go; the console has only warnings and progress),
    (True), or the process ended (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        files = [log, *(sorted((home / "logs").glob("*.log")) if home is not None else [])]
        if any(f.exists() and text in f.read_text(errors="replace") for f in files):
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.2)
    return False


def copy_home(base: Path, to: Path) -> Path:
    shutil.rmtree(to, ignore_errors=True)
    shutil.copytree(base, to, symlinks=True,
                    ignore=shutil.ignore_patterns("*.lock", "server.json", "*.pid"))
    return to


# ------------------------------------------------------------------ reading a home


def lake_table(home: Path, name: str) -> pa.Table | None:
    """A lake table read by delta-rs (no Spark), None when it does not exist.  Opening
    it replays its Delta log: an unreadable log raises here."""
    from deltalake import DeltaTable

    path = home / "lake" / name
    if not DeltaTable.is_deltatable(str(path)):
        return None
    table = DeltaTable(str(path))
    table.history()
    return table.to_pyarrow_table()


def rows_where(table: pa.Table | None, column: str, value: Any) -> pa.Table | None:
    if table is None:
        return None
    return table.filter(pc.equal(table[column], pa.scalar(value, table.schema.field(column).type)))


def count(table: pa.Table | None) -> int:
    return 0 if table is None else table.num_rows


def doubled(table: pa.Table | None, keys: list[str]) -> int:
    """Rows beyond the first of each key."""
    if table is None or table.num_rows == 0:
        return 0
    distinct = table.group_by(keys).aggregate([]).num_rows
    return table.num_rows - distinct


def warehouse_query(home: Path, sql: str, params: list[Any] | None = None) -> list[tuple]:
    """Rows of one query on the home's local warehouse (started for the call)."""
    from memberscore.config import load_settings
    from memberscore.warehouse import open_warehouse

    with environment(home), contextlib.redirect_stderr(io.StringIO()):
        settings = load_settings("local")
        with open_warehouse(settings, home / "warehouse", purpose="faults") as conn:
            return conn.execute(sql, params or [], what="fault suite check")


def files_containing(root: Path, needle: bytes) -> list[Path]:
    """Every file under `root` whose bytes contain `needle`."""
    found = []
    for path in root.rglob("*"):
        if path.is_file():
            with contextlib.suppress(OSError):
                if needle in path.read_bytes():
                    found.append(path)
    return found
