"""What the API reads from the published Snowflake tables, one statement a request.

A day is served only when it is **complete**: every required published table (conf
`snowflake.published_tables` less `snowflake.optional_tables`, so
`MEMBER_FEATURES_DAILY` and `MEMBER_SCORES`) has its `PUBLISH_LOG` row for the day.
A publish writes a day's tables and their log rows in one transaction, so a complete
day is one whose rows were validated, loaded, checked and committed together; a day
only some of whose tables were published (`publish --table ...`) is **partial**
and never served; a day with no log row is **absent**.  This is the rule analysts
read by (docs/publish.md).

Every value is bound as a `?` parameter; the only SQL text built here is the list of
placeholders and the fixed table and column names.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from memberscore.api.pool import SessionPool
from memberscore.config import Settings
from memberscore.errors import WarehouseError
from memberscore.tables import MEMBER_FEATURES_DAILY, MEMBER_SCORES
from memberscore.warehouse.identifiers import identifier
from memberscore.warehouse.publisher import LOG_TABLE, required_tables

# Snowflake: "Object does not exist or not authorized" (nothing published yet)
DOES_NOT_EXIST = 2003

SCORES = identifier(MEMBER_SCORES.name, "table name")
FEATURES = identifier(MEMBER_FEATURES_DAILY.name, "table name")


class NothingToServeError(Exception):
    """Nothing to serve for the request; the message says why (404)."""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.details = details


@dataclass
class Timings:
    """The warehouse time of one request (its queries, in seconds)."""

    query_seconds: float = 0.0
    queries: int = 0


@dataclass(frozen=True)
class DayStatus:
    """A day's publish status across the published tables."""

    as_of_date: dt.date
    status: str  # complete, partial, absent
    tables: list[dict[str, Any]]
    required: tuple[str, ...]
    models: list[dict[str, Any]] = field(default_factory=list)


class PublishedReads:
    """The API's queries over one pool of warehouse sessions."""

    def __init__(self, settings: Settings, pool: SessionPool) -> None:
        self.pool = pool
        self.required = required_tables(settings)
        self.default_model = settings.api.model_name or settings.models.names[0]
        marks = ", ".join("?" for _ in self.required)
        # the complete days, as a common table expression (its parameters: required)
        self._complete = (f"complete AS (SELECT AS_OF_DATE FROM {LOG_TABLE} "
                          f"WHERE TABLE_NAME IN ({marks}) GROUP BY AS_OF_DATE "
                          "HAVING COUNT(DISTINCT TABLE_NAME) = ?)")
        self._complete_params: tuple[Any, ...] = (*self.required, len(self.required))

    # ------------------------------------------------------------------ statements

    def _query(self, timings: Timings, sql: str, params: Sequence[Any],
               what: str) -> list[dict[str, Any]]:
        started = time.perf_counter()
        try:
            with self.pool.session() as conn:
                return conn.query(sql, params, what=what)
        except WarehouseError as exc:
            if exc.errno == DOES_NOT_EXIST:
                raise NothingToServeError("no day has been published yet") from None
            raise
        finally:
            timings.query_seconds += time.perf_counter() - started
            timings.queries += 1

    def _day_clause(self, day: dt.date | None) -> tuple[str, tuple[Any, ...]]:
        """`served` (one row, column D): the asked day when complete, else the newest."""
        if day is None:
            return "served AS (SELECT MAX(AS_OF_DATE) AS D FROM complete)", ()
        return "served AS (SELECT AS_OF_DATE AS D FROM complete WHERE AS_OF_DATE = ?)", (day,)

    # ------------------------------------------------------------------ reads

    def newest_complete_day(self, timings: Timings) -> dt.date | None:
        rows = self._query(timings, f"WITH {self._complete} SELECT MAX(AS_OF_DATE) AS D "
                           "FROM complete", self._complete_params, "newest complete day")
        return _date(rows[0]["D"]) if rows else None

    def score(self, timings: Timings, member_id: str, day: dt.date | None,
              model_name: str | None) -> dict[str, Any]:
        model = model_name or self.default_model
        served, served_params = self._day_clause(day)
        rows = self._query(
            timings,
            f"WITH {self._complete}, {served} "
            "SELECT s.MEMBER_ID, s.AS_OF_DATE, s.MODEL_NAME, s.MODEL_VERSION, s.SCORE, "
            "s.SCORE_BAND, s.RUN_ID, s.SCORED_AT, l.PUBLISHED_AT "
            f"FROM {SCORES} s JOIN served ON s.AS_OF_DATE = served.D "
            f"JOIN {LOG_TABLE} l ON l.AS_OF_DATE = s.AS_OF_DATE AND l.TABLE_NAME = ? "
            "WHERE s.MEMBER_ID = ? AND s.MODEL_NAME = ?",
            (*self._complete_params, *served_params, SCORES, member_id, model),
            f"score of a member ({SCORES})")
        if not rows:
            self._explain_missing(timings, member_id, day, f"score from model {model}")
        row = rows[0]
        return {
            "member_id": row["MEMBER_ID"],
            "as_of_date": iso_value(row["AS_OF_DATE"]),
            "score": float(row["SCORE"]),
            "score_band": row["SCORE_BAND"],
            "model_name": row["MODEL_NAME"],
            "model_version": row["MODEL_VERSION"],
            "run_id": row["RUN_ID"],
            "scored_at": iso_value(row["SCORED_AT"]),
            "published_at": iso_value(row["PUBLISHED_AT"]),
        }

    def features(self, timings: Timings, member_id: str,
                 day: dt.date | None) -> dict[str, Any]:
        served, served_params = self._day_clause(day)
        rows = self._query(
            timings,
            f"WITH {self._complete}, {served} "
            "SELECT f.*, l.PUBLISHED_AT AS PUBLISH_LOG_PUBLISHED_AT "
            f"FROM {FEATURES} f JOIN served ON f.AS_OF_DATE = served.D "
            f"JOIN {LOG_TABLE} l ON l.AS_OF_DATE = f.AS_OF_DATE AND l.TABLE_NAME = ? "
            "WHERE f.MEMBER_ID = ?",
            (*self._complete_params, *served_params, FEATURES, member_id),
            f"features of a member ({FEATURES})")
        if not rows:
            self._explain_missing(timings, member_id, day, "features")
        return rows[0]

    def day_status(self, timings: Timings, day: dt.date) -> DayStatus:
        rows = self._query(
            timings,
            f"SELECT TABLE_NAME, RUN_ID, ROW_COUNT, CHECKSUM, PUBLISHED_AT FROM {LOG_TABLE} "
            "WHERE AS_OF_DATE = ? ORDER BY TABLE_NAME", (day,), "publish status of a day")
        tables = [{"table_name": r["TABLE_NAME"], "row_count": int(r["ROW_COUNT"]),
                   "checksum": r["CHECKSUM"], "run_id": r["RUN_ID"],
                   "published_at": iso_value(r["PUBLISHED_AT"])} for r in rows]
        names = {t["table_name"] for t in tables}
        status = ("complete" if set(self.required) <= names
                  else "partial" if names else "absent")
        models: list[dict[str, Any]] = []
        if SCORES in names:
            models = [{"model_name": r["MODEL_NAME"], "model_version": r["MODEL_VERSION"],
                       "run_id": r["RUN_ID"], "rows": int(r["N"])}
                      for r in self._query(
                          timings,
                          "SELECT MODEL_NAME, MODEL_VERSION, RUN_ID, COUNT(*) AS N "
                          f"FROM {SCORES} WHERE AS_OF_DATE = ? GROUP BY MODEL_NAME, "
                          "MODEL_VERSION, RUN_ID ORDER BY MODEL_NAME, MODEL_VERSION",
                          (day,), f"models of a day ({SCORES})")]
        return DayStatus(day, status, tables, self.required, models)

    def _explain_missing(self, timings: Timings, member_id: str, day: dt.date | None,
                         what: str) -> None:
        """Raise NothingToServeError saying why nothing was found (only on that path: a second
        statement)."""
        newest = self.newest_complete_day(timings)
        if newest is None:
            raise NothingToServeError("no day has been published completely yet")
        if day is not None and day != newest:
            status = self.day_status(timings, day)
            if status.status != "complete":
                raise NothingToServeError(
                    f"day {day} is {status.status}: only days published completely are "
                    f"served (the newest is {newest})", as_of_date=day.isoformat(),
                    publish_status=status.status, newest_complete_day=newest.isoformat())
        on = day or newest
        raise NothingToServeError(f"member {member_id} has no {what} on {on}",
                       member_id=member_id, as_of_date=on.isoformat())


def _date(value: Any) -> dt.date | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value))


def iso_value(value: Any) -> str | None:
    """A warehouse date or instant as ISO text (instants in UTC, with Z); None stays None."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC)
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)
