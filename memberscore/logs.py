"""Logging, configured once per process, and progress reporting for long work."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_FORMAT = "%(asctime)s %(levelname)-5s %(name)s: %(message)s"
_NOISY = ("py4j", "pyspark", "urllib3", "great_expectations",
          "mlflow", "alembic", "botocore", "numexpr", "fakesnow", "uvicorn", "httpx")
# Loggers that repeat, with a traceback, a failure memberscore reports itself in one
# line (the connector logs every failed request and retry): silent unless --verbose.
_QUIET = ("snowflake.connector",)


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


def configure_logging(verbose: bool = False) -> None:
    """Send our log lines to stderr; third-party chatter only with --verbose."""
    root = logging.getLogger()
    if getattr(configure_logging, "_done", False):
        root.setLevel(logging.DEBUG if verbose else logging.INFO)
        return
    handler = _CurrentStderrHandler()
    handler.setFormatter(logging.Formatter(_FORMAT, datefmt="%Y-%m-%dT%H:%M:%S"))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for name in _NOISY:
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.WARNING)
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.CRITICAL + 1)
    _quiet_pyspark_query_context(verbose)
    logging.Formatter.converter = time.gmtime  # log times in UTC, like the data
    configure_logging._done = True  # type: ignore[attr-defined]


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


def progress(items: Iterable[T], label: str, total: int | None = None,
             logger: logging.Logger | None = None, every_seconds: float = 10.0) -> Iterator[T]:
    """Yield `items`, logging `label i/total` on the first, the last, and every
    `every_seconds` in between, with the elapsed time, so long work is visible."""
    out = logger or logging.getLogger("memberscore.progress")
    start = last = time.monotonic()
    for count, item in enumerate(items, start=1):
        now = time.monotonic()
        if count == 1 or now - last >= every_seconds or (total is not None and count == total):
            of = f"/{total}" if total is not None else ""
            out.info("%s %d%s (%.1fs)", label, count, of, now - start)
            last = now
        yield item
