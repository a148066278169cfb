"""Where this process runs, and how a foreground server in it is told to stop."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def on_databricks() -> bool:
    """True inside a Databricks runtime (job cluster, all-purpose cluster, serverless)."""
    return "DATABRICKS_RUNTIME_VERSION" in os.environ


@contextmanager
def stop_on_sigterm() -> Iterator[threading.Event]:
    """An event that SIGTERM sets while the block runs (when this is the main thread,
    the only one that may handle signals); the previous handler is restored after."""
    stop = threading.Event()
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if in_main else None

    def on_term(_signum: int, _frame: Any) -> None:
        stop.set()

    if in_main:
        signal.signal(signal.SIGTERM, on_term)
    try:
        yield stop
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)


def serve_until_stopped(stop: threading.Event) -> None:
    """Block the foreground command (`warehouse`, `api`) until `stop` is set or Ctrl-C."""
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
