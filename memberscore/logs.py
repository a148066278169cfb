"""What a person sees, and the run's full log.

stdout carries each command's result (the step table, what was written, where to
look).  The console's stderr carries memberscore's warnings and errors and the progress
of long work, nothing else.  Every INFO line, third-party libraries' chatter and what
the JVM prints go to the run's log file, `$MEMBERSCORE_HOME/logs/<run_id>-<command>.log`.
With --verbose, and on Databricks (where the driver log is the place for it), the
console shows everything as well.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

_FORMAT = "%(asctime)s %(levelname)-5s %(name)s: %(message)s"
_DATEFMT = "%Y-%m-%dT%H:%M:%S"
_NOISY = ("py4j", "pyspark", "urllib3", "great_expectations",
          "mlflow", "alembic", "botocore", "numexpr", "fakesnow", "uvicorn", "httpx")
# Loggers that repeat, with a traceback, a failure memberscore reports itself in one
# line (the connector logs every failed request and retry): silent unless --verbose.
_QUIET = ("snowflake.connector",)

log = logging.getLogger("memberscore.progress")


@dataclass
class _State:
    verbose: bool = False
    console_info: bool = False  # the console shows INFO lines (--verbose, Databricks)
    run_log: Path | None = None
    handler: logging.Handler | None = None
    configured: bool = False


_state = _State()


class _CurrentStderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at emit time, not the object it was when
    logging was configured (which a caller, or pytest's capture, may since have
    replaced and closed)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self):  # type: ignore[no-untyped-def]
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:  # type: ignore[no-untyped-def]
        pass


class _ConsoleFilter(logging.Filter):
    """memberscore's warnings and errors; everything with --verbose or on Databricks."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _state.console_info:
            return True
        return record.levelno >= logging.WARNING and record.name.startswith("memberscore")


class _ConsoleFormatter(logging.Formatter):
    """`WARNING: <message>` for people; the log file's full lines with --verbose."""

    def __init__(self) -> None:
        super().__init__(_FORMAT, datefmt=_DATEFMT)
        self._short = logging.Formatter("%(levelname)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        if _state.console_info:
            return super().format(record)
        if record.getMessage().startswith(record.levelname):  # "WARNING bronze_..."
            return record.getMessage()
        return self._short.format(record)


def configure_logging(verbose: bool = False) -> None:
    """Console logging for this process (see the module docstring); called by every
    command, again with each command's --verbose."""
    from memberscore.runtime import on_databricks

    _state.verbose = verbose
    _state.console_info = verbose or on_databricks()
    # MLflow's own stderr handler, its migration lines and its download bars: into the
    # run log through our handlers (read when MLflow is imported, or per download)
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "true" if verbose else "false"
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for name in _NOISY:
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.WARNING)
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.CRITICAL + 1)
    _quiet_pyspark_query_context(verbose)
    if _state.configured:
        return
    handler = _CurrentStderrHandler()
    handler.setFormatter(_ConsoleFormatter())
    handler.addFilter(_ConsoleFilter())
    root.addHandler(handler)
    logging.Formatter.converter = time.gmtime  # log times in UTC, like the data
    _state.configured = True


def _quiet_pyspark_query_context(verbose: bool) -> None:
    """PySpark logs every failed query it raises to Python, as JSON with the whole
    JVM stack trace, on its own stderr handler; the job reports the failure in one
    line, so those loggers speak only with --verbose.  They must be PySparkLoggers
    (PySpark passes them keyword arguments a plain Logger refuses)."""
    try:
        from pyspark.logger import PySparkLogger
    except ImportError:  # pyspark is optional for a few commands
        return
    for name in ("DataFrameQueryContextLogger", "SQLQueryContextLogger"):
        PySparkLogger.getLogger(name).setLevel(
            logging.ERROR if verbose else logging.CRITICAL + 1)


# ----------------------------------------------------------------------------- run log


def open_run_log(path: Path) -> Path:
    """Send every log line of this run to `path` (replacing the previous run's file
    in this process) and return it."""
    close_run_log()
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(_FORMAT, datefmt=_DATEFMT))
    handler.setLevel(logging.DEBUG if _state.verbose else logging.INFO)
    logging.getLogger().addHandler(handler)
    _state.run_log, _state.handler = path, handler
    return path


def close_run_log() -> None:
    if _state.handler is not None:
        logging.getLogger().removeHandler(_state.handler)
        _state.handler.close()
    _state.run_log, _state.handler = None, None


def run_log() -> Path | None:
    """The file this run logs to, when it has one."""
    return _state.run_log


@contextlib.contextmanager
def process_output_to_run_log() -> Iterator[None]:
    """While the block runs, what is written to file descriptors 1 and 2 (the JVM's
    start-up warnings, and whatever it prints for its whole life, since it inherits
    them at launch) goes to the run log, unless the console shows everything."""
    if _state.run_log is None or _state.console_info:
        yield
        return
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    target = os.open(_state.run_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    saved = [os.dup(fd) for fd in (1, 2)]
    try:
        for fd in (1, 2):
            os.dup2(target, fd)
        yield
    finally:
        for fd, copy in zip((1, 2), saved, strict=True):
            os.dup2(copy, fd)
            os.close(copy)
        os.close(target)


@contextlib.contextmanager
def mlflow_prints_to_log() -> Iterator[None]:
    """Lines MLflow prints itself ("Successfully registered model ...", "Created
    version ...") go to the run log instead of the console."""
    if _state.console_info:
        yield
        return
    import mlflow.utils.logging_utils as mlflow_logging

    saved = mlflow_logging.MLFLOW_LOGGING_STREAM
    # what MLflow's `eprint` writes to, looked up at each call
    mlflow_logging.MLFLOW_LOGGING_STREAM = LogStream("mlflow")  # type: ignore[assignment]
    try:
        yield
    finally:
        mlflow_logging.MLFLOW_LOGGING_STREAM = saved


class LogStream:
    """A text stream whose lines become INFO records (of `memberscore.lib`, prefixed
    with `name`).  Used as sys.stderr, what the console handler writes while one of
    those records is handled goes to the stderr of the stream's creation instead."""

    def __init__(self, name: str) -> None:
        self._name, self._pending = name, ""
        self._console = sys.stderr
        self._busy = False

    def write(self, text: str) -> int:
        if self._busy:  # our own console handler, writing the record below
            return self._console.write(text)
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        self._busy = True
        try:
            for line in lines:
                if line.strip():
                    logging.getLogger("memberscore.lib").info("%s: %s", self._name, line)
        finally:
            self._busy = False
        return len(text)

    def flush(self) -> None:
        pass


# ----------------------------------------------------------------------------- progress


class Progress:
    """Progress of long work done in `total` steps (days, chunks, sources, stages).

    On a terminal: a bar on stderr (days done, rows per second, time left).  Otherwise
    (CI, a scheduler's log): one plain line on stderr every `every_seconds` and on the
    last step.  The run log gets an INFO line for each of those.
    With --verbose and on Databricks only the log lines are written (the console shows
    them)."""

    def __init__(self, label: str, total: int, unit: str = "days",
                 every_seconds: float = 10.0, stream: IO[str] | None = None) -> None:
        self.label, self.total, self.unit = label, max(total, 0), unit
        self.done, self.rows = 0, 0
        self._every = every_seconds
        self._stream = stream
        self._start = self._last = time.monotonic()
        self._bar: Any = None
        out = self._out()
        if not _state.console_info and _isatty(out) and self.total > 1:
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, desc=label, unit=f" {unit}", file=out,
                             leave=True, dynamic_ncols=True, mininterval=0.5)

    def _out(self) -> IO[str]:
        return self._stream or sys.stderr

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def advance(self, steps: int = 1, rows: int = 0, note: str = "") -> None:
        """`steps` more done, with `rows` rows processed by them."""
        self.done += steps
        self.rows += rows
        now = time.monotonic()
        if self._bar is not None:
            self._bar.update(steps)
            if self.rows:
                self._bar.set_postfix_str(f"{self._rate(now):,.0f} rows/s", refresh=False)
        due = self.done >= self.total or now - self._last >= self._every
        if due:
            self._last = now
            self._emit(self.line(now, note), shown_by_bar=True)

    def announce(self, note: str) -> None:
        """One line now, for the start of a step that takes a while (a demo stage)."""
        self._emit(f"{self.label} {self.done + 1}/{self.total}: {note}", shown_by_bar=False)

    def line(self, now: float, note: str = "") -> str:
        elapsed = now - self._start
        text = f"{self.label}: {self.done}/{self.total} {self.unit}"
        if self.rows:
            text += f", {self.rows:,} rows, {self._rate(now):,.0f} rows/s"
        if 0 < self.done < self.total and elapsed > 0:
            left = elapsed / self.done * (self.total - self.done)
            text += f", about {_duration(left)} left"
        elif self.done >= self.total:
            text += f", {_duration(elapsed)}"
        return f"{text} ({note})" if note else text

    def _rate(self, now: float) -> float:
        return self.rows / max(now - self._start, 1e-9)

    def _emit(self, text: str, shown_by_bar: bool) -> None:
        log.info("%s", text)
        if _state.console_info:
            return  # the console shows the log line
        if self._bar is None:
            print(text, file=self._out(), flush=True)
        elif not shown_by_bar:
            self._bar.write(text, file=self._out())

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"
