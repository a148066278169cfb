"""What one invocation carries: settings, run id, local-state paths, and lazily the
Spark session and the lake.  Jobs receive a RunContext and open nothing themselves."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memberscore.config import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from memberscore.lake import Lake


def new_run_id(now: dt.datetime | None = None) -> str:
    """A sortable, unique id for one invocation: `20261121T101500Z-3fa9c1`."""
    now = now or dt.datetime.now(dt.UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class Paths:
    """The layout of local state under $MEMBERSCORE_HOME (see the README)."""

    home: Path

    @property
    def landing(self) -> Path:
        return self.home / "landing"

    @property
    def lake(self) -> Path:
        return self.home / "lake"

    @property
    def mlflow(self) -> Path:
        return self.home / "mlflow"

    @property
    def warehouse(self) -> Path:
        return self.home / "warehouse"

    @property
    def broker(self) -> Path:
        """The local Kafka broker's data, log and address (memberscore.local.broker_server)."""
        return self.home / "broker"

    @property
    def reports(self) -> Path:
        return self.home / "reports"

    @property
    def logs(self) -> Path:
        """One file per command run: every log line, and what libraries and the JVM
        printed (the console shows only warnings, errors and progress)."""
        return self.home / "logs"


@dataclass
class JobResult:
    """What a job produced, for the log line, the pipeline summary and the report."""

    job: str
    rows: dict[str, int] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


class RunContext:
    """Settings, run id and lazily-opened resources for one invocation."""

    def __init__(self, settings: Settings, run_id: str | None = None, verbose: bool = False,
                 spark: SparkSession | None = None) -> None:
        self.settings = settings
        self.run_id = run_id or new_run_id()
        self.verbose = verbose
        self.paths = Paths(settings.home_path())
        self.started_at = dt.datetime.now(dt.UTC)
        if spark is not None:
            self.__dict__["spark"] = spark

    @property
    def env(self) -> str:
        return self.settings.env

    @cached_property
    def spark(self) -> SparkSession:
        from memberscore.spark import get_spark, show_task_failures

        spark = get_spark(self.settings.spark)
        if self.verbose:
            show_task_failures(spark)
        return spark

    @cached_property
    def lake(self) -> Lake:
        from memberscore.lake import open_lake

        return open_lake(self.settings.lake, self.spark, self.paths.home)
