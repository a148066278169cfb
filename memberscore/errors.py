"""The errors memberscore raises on purpose.

Each carries a message written for the person running the job: what was expected,
what was found, where, and what to do next.  The CLI prints `str(error)` as its one
line on stderr, so messages must never contain secret values.
"""

from __future__ import annotations


class MemberscoreError(Exception):
    """Base class: a failure the CLI reports in one line, exit status `exit_code`."""

    exit_code = 1


class ConfigError(MemberscoreError):
    """Configuration is missing, misspelled, of the wrong type, or a secret is unset."""

    exit_code = 3


class MissingDependencyError(MemberscoreError):
    """The machine lacks something the run needs (Java, a package, a free port)."""

    exit_code = 3


class InputError(MemberscoreError):
    """Input data is unusable: a missing file or column, an unparseable date."""

    exit_code = 4


class TableError(MemberscoreError):
    """A lake table is missing, or a write does not match its declared shape."""

    exit_code = 5


class TableConflictError(TableError):
    """Another writer committed to the same table first; nothing of ours was written."""

    exit_code = 6


class QualityGateError(MemberscoreError):
    """Critical data-quality expectations failed."""

    exit_code = 7


class DriftAlertError(QualityGateError):
    """A monitored column or source is in alert (and conf `monitor.warn_only` is false).

    Raised only after drift_metrics and the run report are written.  Its own exit
    status (10) lets a scheduler tell drift from a failed data-quality gate (7).
    """

    exit_code = 10


class WarehouseError(MemberscoreError):
    """Publishing to, reading from, or reconciling with, the warehouse failed.

    `errno` is Snowflake's error number when the warehouse answered with one (2003:
    the object does not exist), else None (the warehouse was not reached)."""

    exit_code = 8

    def __init__(self, message: str, *, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


class PublishRunningError(WarehouseError):
    """Another publish of the same day holds the day's publish lock."""

    exit_code = 6


class BrokerError(MemberscoreError):
    """The Kafka broker could not be reached, started, or did not acknowledge an event."""

    exit_code = 11


class ModelError(MemberscoreError):
    """The model registry has no usable model, or a model does not fit the data."""

    exit_code = 9
