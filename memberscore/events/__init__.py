"""The "day published" event: after a day's publish commits in Snowflake, one event
per publish on Kafka, recorded first in Snowflake's EVENT_OUTBOX (in the publish's
transaction) and marked sent when the broker acknowledged it (docs/events.md).

- `outbox`: EVENT_OUTBOX, the event's payload, claims;
- `kafka`: where the broker is (configured, or the local one), the producer, the
  consumer of `memberscore events --tail`;
- `delivery`: claim, send, mark; the publisher's hooks.

The event's JSON Schema ships in the wheel: `schema()` returns it.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from memberscore.events.delivery import (
    DayPublishedEvents,
    DeliveryReport,
    broker_error,
    deliver_pending,
    event_details,
)
from memberscore.events.delivery import describe as describe_event
from memberscore.events.kafka import Broker, open_broker, read_topic
from memberscore.events.outbox import OUTBOX_TABLE, NoEvent, Outbox, OutboxEvent

SCHEMA_FILE = "day_published.v1.schema.json"


def schema() -> dict[str, Any]:
    """The JSON Schema of the event (draft 2020-12), as shipped in the wheel."""
    text = resources.files(__package__).joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    return dict(json.loads(text))


__all__ = [
    "OUTBOX_TABLE",
    "SCHEMA_FILE",
    "Broker",
    "DayPublishedEvents",
    "DeliveryReport",
    "NoEvent",
    "Outbox",
    "OutboxEvent",
    "broker_error",
    "deliver_pending",
    "describe_event",
    "event_details",
    "open_broker",
    "read_topic",
    "schema",
]
