"""The outbox: "day published" events recorded in Snowflake, in the publish's own
transaction, before anything is sent.

`EVENT_OUTBOX` (next to `PUBLISH_LOG`) holds one row per event.  `record` runs inside
the transaction that swaps the day's tables and writes their PUBLISH_LOG rows, so an
event exists exactly when a publish committed: a publish that fails or is killed
before COMMIT leaves no event, and one killed after COMMIT leaves a pending event
that the next sender delivers.  A row is marked sent (`SENT_AT`, with the partition
and offset) only after the broker acknowledged it.

Senders take pending rows with a claim (`CLAIMED_BY`, `CLAIMED_AT`) set by one UPDATE,
so two senders at once (two publishes, or `memberscore events --resend` beside a
publish) never send the same row; a claim older than the lease (a sender that died
mid-send) may be taken again.  Delivery is at least once on the wire: a sender that
dies after the broker's acknowledgement and before marking the row sends it again,
with the same `event_id` (docs/events.md says how consumers deduplicate).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from memberscore.tables import MEMBER_SCORES
from memberscore.warehouse.identifiers import identifier
from memberscore.warehouse.publisher import LOG_TABLE, required_tables

if TYPE_CHECKING:
    from memberscore.config import Settings
    from memberscore.warehouse.connection import WarehouseConnection

log = logging.getLogger(__name__)

OUTBOX_TABLE = "EVENT_OUTBOX"
EVENT_TYPE = "memberscore.day_published"
SCHEMA_VERSION = 1
SCORES = identifier(MEMBER_SCORES.name, "table name")

OUTBOX_DDL = (
    f"CREATE TABLE IF NOT EXISTS {OUTBOX_TABLE} ("
    "EVENT_ID VARCHAR NOT NULL, TOPIC VARCHAR NOT NULL, EVENT_KEY VARCHAR NOT NULL, "
    "AS_OF_DATE DATE NOT NULL, RUN_ID VARCHAR NOT NULL, PAYLOAD VARCHAR NOT NULL, "
    "CREATED_AT TIMESTAMP_TZ NOT NULL, ATTEMPTS NUMBER(10, 0) NOT NULL, "
    "SENT_AT TIMESTAMP_TZ, KAFKA_PARTITION NUMBER(10, 0), KAFKA_OFFSET NUMBER(19, 0), "
    "LAST_ERROR VARCHAR, CLAIMED_BY VARCHAR, CLAIMED_AT TIMESTAMP_TZ)"
)
_COLUMNS = ("EVENT_ID, TOPIC, EVENT_KEY, AS_OF_DATE, RUN_ID, PAYLOAD, CREATED_AT, ATTEMPTS, "
            "SENT_AT, KAFKA_PARTITION, KAFKA_OFFSET, LAST_ERROR")


@dataclasses.dataclass(frozen=True)
class OutboxEvent:
    """One row of EVENT_OUTBOX."""

    event_id: str
    topic: str
    key: str
    as_of_date: dt.date
    run_id: str
    payload: str  # the event's JSON, exactly as sent
    created_at: dt.datetime
    attempts: int = 0
    sent_at: dt.datetime | None = None
    partition: int | None = None
    offset: int | None = None
    last_error: str | None = None

    @property
    def value(self) -> dict[str, Any]:
        return dict(json.loads(self.payload))

    @property
    def sent(self) -> bool:
        return self.sent_at is not None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> OutboxEvent:
        def when(value: Any) -> dt.datetime | None:
            if value is None:
                return None
            stamp = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(
                str(value))
            return stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)

        day = row["AS_OF_DATE"]
        created = when(row["CREATED_AT"])
        assert created is not None
        return cls(
            event_id=str(row["EVENT_ID"]), topic=str(row["TOPIC"]), key=str(row["EVENT_KEY"]),
            as_of_date=day if isinstance(day, dt.date) else dt.date.fromisoformat(str(day)),
            run_id=str(row["RUN_ID"]), payload=str(row["PAYLOAD"]), created_at=created,
            attempts=int(row["ATTEMPTS"] or 0), sent_at=when(row["SENT_AT"]),
            partition=None if row["KAFKA_PARTITION"] is None else int(row["KAFKA_PARTITION"]),
            offset=None if row["KAFKA_OFFSET"] is None else int(row["KAFKA_OFFSET"]),
            last_error=None if row["LAST_ERROR"] is None else str(row["LAST_ERROR"]),
        )


@dataclasses.dataclass(frozen=True)
class NoEvent:
    """Why a committed publish recorded no event (the day is not complete)."""

    reason: str


def _iso(value: Any) -> str:
    stamp = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return stamp.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


class Outbox:
    """The outbox of one environment's warehouse schema (see the module doc)."""

    def __init__(self, settings: Settings) -> None:
        self.topic = settings.events.topic
        self.required = required_tables(settings)
        self.model_name = settings.models.names[0]
        self.source = {"env": settings.env, "database": settings.snowflake.database.upper(),
                       "schema": settings.snowflake.schema.upper()}

    @staticmethod
    def ensure(conn: WarehouseConnection) -> None:
        """Create EVENT_OUTBOX when missing (before the transaction: DDL would commit it)."""
        conn.execute(OUTBOX_DDL, what=f"create table {OUTBOX_TABLE}")

    def record(self, conn: WarehouseConnection, day: dt.date, run_id: str,
               published_at: dt.datetime) -> OutboxEvent | NoEvent:
        """Inside the publish's open transaction, after its PUBLISH_LOG rows: the day's
        event, inserted pending; or NoEvent when the day is not complete."""
        rows = conn.query(
            f"SELECT TABLE_NAME, ROW_COUNT, CHECKSUM, RUN_ID, PUBLISHED_AT FROM {LOG_TABLE} "
            "WHERE AS_OF_DATE = ? ORDER BY TABLE_NAME", [day],
            what=f"read the {LOG_TABLE} rows of {day} for its event")
        logged = {str(r["TABLE_NAME"]).upper(): r for r in rows}
        missing = [t for t in self.required if t not in logged]
        if missing:
            return NoEvent(
                f"{day} is not complete in Snowflake ({', '.join(missing)} "
                f"{'has' if len(missing) == 1 else 'have'} no {LOG_TABLE} row for it); its "
                "event is recorded by the publish that completes it")
        tables = [{
            "table_name": name, "row_count": int(r["ROW_COUNT"]), "checksum": str(r["CHECKSUM"]),
            "run_id": str(r["RUN_ID"]), "published_at": _iso(r["PUBLISHED_AT"]),
        } for name, r in sorted(logged.items())]
        model_name, model_version = self._model(conn, day, logged)
        previous = conn.query(
            f"SELECT EVENT_ID, PAYLOAD FROM {OUTBOX_TABLE} WHERE AS_OF_DATE = ? "
            "ORDER BY CREATED_AT DESC, EVENT_ID DESC LIMIT 1", [day],
            what=f"read the previous event of {day}")
        republish_of = str(previous[0]["EVENT_ID"]) if previous else None
        data_changed = True
        if previous:  # over the tables of a complete day (not drift_metrics)
            before = {t["table_name"]: (t["row_count"], t["checksum"])
                      for t in json.loads(str(previous[0]["PAYLOAD"]))["tables"]
                      if t["table_name"] in self.required}
            data_changed = before != {t["table_name"]: (t["row_count"], t["checksum"])
                                      for t in tables if t["table_name"] in self.required}
        event_id = str(uuid.uuid4())
        value = {
            "schema_version": SCHEMA_VERSION, "event_type": EVENT_TYPE, "event_id": event_id,
            "as_of_date": day.isoformat(), "run_id": run_id, "published_at": _iso(published_at),
            "model_name": model_name, "model_version": model_version, "tables": tables,
            "republish_of": republish_of, "data_changed": data_changed, "source": self.source,
        }
        event = OutboxEvent(event_id=event_id, topic=self.topic, key=day.isoformat(),
                            as_of_date=day, run_id=run_id,
                            payload=json.dumps(value, separators=(",", ":")),
                            created_at=published_at)
        conn.execute_count(
            f"INSERT INTO {OUTBOX_TABLE} (EVENT_ID, TOPIC, EVENT_KEY, AS_OF_DATE, RUN_ID, "
            "PAYLOAD, CREATED_AT, ATTEMPTS) VALUES (?, ?, ?, ?, ?, ?, ?, 0)",
            [event.event_id, event.topic, event.key, day, run_id, event.payload,
             ("TIMESTAMP_TZ", published_at)],
            what=f"record the event of {day} in {OUTBOX_TABLE}")
        log.info("recorded event %s of %s in %s (pending)", event_id, day, OUTBOX_TABLE)
        return event

    def _model(self, conn: WarehouseConnection, day: dt.date,
               logged: Mapping[str, Any]) -> tuple[str | None, str | None]:
        """The default model's version that scored the day (from the committed scores)."""
        if SCORES not in logged:
            return None, None
        rows = conn.query(
            f"SELECT MODEL_VERSION, COUNT(*) AS N FROM {SCORES} WHERE AS_OF_DATE = ? "
            "AND MODEL_NAME = ? GROUP BY MODEL_VERSION ORDER BY N DESC, MODEL_VERSION DESC",
            [day, self.model_name], what=f"read the model version of {day}'s scores")
        return self.model_name, (str(rows[0]["MODEL_VERSION"]) if rows else None)

    # ------------------------------------------------------------------ senders

    @staticmethod
    def claim(conn: WarehouseConnection, claimer: str, *, lease_seconds: float,
              now: dt.datetime | None = None) -> list[OutboxEvent]:
        """Take every pending event not claimed by a live sender, in the order they were
        recorded (one UPDATE: two senders never take the same row)."""
        now = now or dt.datetime.now(dt.UTC)
        expired = now - dt.timedelta(seconds=lease_seconds)
        taken = conn.execute_count(
            f"UPDATE {OUTBOX_TABLE} SET CLAIMED_BY = ?, CLAIMED_AT = ?, ATTEMPTS = ATTEMPTS + 1 "
            "WHERE SENT_AT IS NULL AND (CLAIMED_AT IS NULL OR CLAIMED_AT < ?)",
            [claimer, ("TIMESTAMP_TZ", now), ("TIMESTAMP_TZ", expired)],
            what=f"claim the pending events of {OUTBOX_TABLE}")
        if not taken:
            return []
        rows = conn.query(
            f"SELECT {_COLUMNS} FROM {OUTBOX_TABLE} WHERE CLAIMED_BY = ? AND SENT_AT IS NULL "
            "ORDER BY CREATED_AT, EVENT_ID", [claimer],
            what=f"read the events claimed from {OUTBOX_TABLE}")
        return [OutboxEvent.from_row(r) for r in rows]

    @staticmethod
    def mark_sent(conn: WarehouseConnection, event: OutboxEvent, *, partition: int,
                  offset: int, sent_at: dt.datetime) -> None:
        conn.execute_count(
            f"UPDATE {OUTBOX_TABLE} SET SENT_AT = ?, KAFKA_PARTITION = ?, KAFKA_OFFSET = ?, "
            "LAST_ERROR = NULL, CLAIMED_BY = NULL, CLAIMED_AT = NULL WHERE EVENT_ID = ?",
            [("TIMESTAMP_TZ", sent_at), partition, offset, event.event_id],
            what=f"mark event {event.event_id} sent")

    @staticmethod
    def release(conn: WarehouseConnection, claimer: str, events: Sequence[OutboxEvent],
                error: str) -> None:
        """Give back the events `claimer` still holds, pending, with the error that kept
        them (a claim another sender took after the lease ran out stays theirs)."""
        if not events:
            return
        marks = ", ".join("?" for _ in events)
        conn.execute_count(
            f"UPDATE {OUTBOX_TABLE} SET LAST_ERROR = ?, CLAIMED_BY = NULL, CLAIMED_AT = NULL "
            f"WHERE EVENT_ID IN ({marks}) AND SENT_AT IS NULL AND CLAIMED_BY = ?",
            [error[:1000], *(e.event_id for e in events), claimer],
            what=f"release {len(events)} unsent event(s)")

    @staticmethod
    def recent(conn: WarehouseConnection, limit: int) -> tuple[list[OutboxEvent], int]:
        """The `limit` newest events, newest first, and how many events are pending."""
        if not _exists(conn):
            return [], 0
        rows = conn.query(
            f"SELECT {_COLUMNS} FROM {OUTBOX_TABLE} ORDER BY CREATED_AT DESC, EVENT_ID DESC "
            "LIMIT ?", [limit], what=f"read {OUTBOX_TABLE}")
        pending = conn.query(f"SELECT COUNT(*) AS N FROM {OUTBOX_TABLE} WHERE SENT_AT IS NULL",
                             what=f"count the pending events of {OUTBOX_TABLE}")
        return [OutboxEvent.from_row(r) for r in rows], int(pending[0]["N"])

    @staticmethod
    def exists(conn: WarehouseConnection) -> bool:
        return _exists(conn)


def _exists(conn: WarehouseConnection) -> bool:
    rows = conn.execute(
        "SELECT COUNT(*) FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA = ? "
        "AND TABLE_NAME = ?", [conn.spec.schema, OUTBOX_TABLE],
        what=f"look for {OUTBOX_TABLE}")
    return bool(rows and int(rows[0][0]))
