"""Deliver the outbox's pending events: claim, send, mark.

`deliver_pending` is what a publish runs after its transaction committed and what
`memberscore events --resend` runs: it claims every pending event (the one just
recorded and any an earlier publish could not send), sends them in the order they
were recorded, and marks each sent when the broker acknowledged it.  An event the
broker did not take is given back, pending, with the error.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import secrets
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from memberscore.errors import BrokerError, MemberscoreError
from memberscore.events.kafka import Broker, Delivery, EventProducer
from memberscore.events.outbox import NoEvent, Outbox, OutboxEvent

if TYPE_CHECKING:
    from memberscore.config import Settings
    from memberscore.warehouse.connection import WarehouseConnection

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class DeliveryReport:
    """What one delivery did: the events sent, those left pending, and why."""

    sent: tuple[Delivery, ...] = ()
    pending: tuple[OutboxEvent, ...] = ()
    error: str | None = None

    def sent_event(self, event_id: str) -> Delivery | None:
        return next((d for d in self.sent if d.event.event_id == event_id), None)


def lease_seconds(settings: Settings) -> float:
    """How long a claim keeps other senders off an event: three delivery timeouts and
    the time to mark them, after which a dead sender's events are taken again."""
    return 3.0 * settings.events.delivery_timeout_seconds + 30.0


def deliver_pending(settings: Settings, conn: WarehouseConnection, broker: Broker, *,
                    claimer: str) -> DeliveryReport:
    """Send every pending event of the outbox (see the module doc).  Never raises for
    the broker: a broker that cannot be reached leaves the events pending and says why
    in the report."""
    claim = f"{claimer}:{secrets.token_hex(4)}"
    claimed = Outbox.claim(conn, claim, lease_seconds=lease_seconds(settings))
    if not claimed:
        return DeliveryReport()
    try:
        bootstrap = broker.bootstrap()
        producer = EventProducer(settings.events, bootstrap)
        producer.check_reachable()
        delivered, failed = producer.send(claimed)
    except MemberscoreError as exc:
        Outbox.release(conn, claim, claimed, str(exc))
        return DeliveryReport(pending=tuple(claimed), error=str(exc))
    except BaseException as exc:
        Outbox.release(conn, claim, claimed, f"{type(exc).__name__}: {exc}")
        raise
    for delivery in sorted(delivered, key=lambda d: (d.partition, d.offset)):
        Outbox.mark_sent(conn, delivery.event, partition=delivery.partition,
                         offset=delivery.offset, sent_at=delivery.sent_at)
        log.info("sent event %s of %s to %s partition %d offset %d",
                 delivery.event.event_id, delivery.event.as_of_date, delivery.event.topic,
                 delivery.partition, delivery.offset)
    unsent = [e for e in claimed if e.event_id in failed]
    error = None
    if unsent:
        first = failed[unsent[0].event_id]
        error = (f"the broker at {bootstrap} did not acknowledge {len(unsent)} event(s): "
                 f"{first}")
        Outbox.release(conn, claim, unsent, first)
    return DeliveryReport(sent=tuple(delivered), pending=tuple(unsent), error=error)


class DayPublishedEvents:
    """The publisher's hooks for the "day published" event: create the outbox before
    the transaction, record the day's event inside it, deliver after COMMIT."""

    def __init__(self, settings: Settings, broker: Broker, *, claimer: str) -> None:
        self.settings = settings
        self.outbox = Outbox(settings)
        self.broker = broker
        self.claimer = claimer
        self.recorded: OutboxEvent | NoEvent | None = None
        self.send_seconds = 0.0  # after COMMIT: claim, send, acknowledgement, mark

    def before_transaction(self, conn: WarehouseConnection) -> None:
        self.outbox.ensure(conn)

    def in_transaction(self, conn: WarehouseConnection, day: dt.date, run_id: str,
                       published_at: dt.datetime) -> None:
        self.recorded = self.outbox.record(conn, day, run_id, published_at)

    def after_commit(self, conn: WarehouseConnection) -> DeliveryReport:
        started = time.monotonic()
        try:
            return deliver_pending(self.settings, conn, self.broker, claimer=self.claimer)
        except MemberscoreError as exc:
            # the publish committed: an outbox that cannot be read or marked now leaves
            # the events pending for the next sender, it does not fail the publish
            log.warning("events not delivered: %s", exc)
            return DeliveryReport(error=str(exc))
        finally:
            self.send_seconds = round(time.monotonic() - started, 3)


def describe(recorded: OutboxEvent | NoEvent | None, report: DeliveryReport | None,
             day: dt.date) -> list[str]:
    """The publish job's lines about its event."""
    if recorded is None:
        return []
    if isinstance(recorded, NoEvent):
        return [f"no event for {day}: {recorded.reason}"]
    lines = []
    sent = report.sent_event(recorded.event_id) if report else None
    if sent is not None:
        lines.append(f"event sent: {recorded.topic} partition {sent.partition} offset "
                     f"{sent.offset}, key {recorded.key} (event_id {recorded.event_id})")
    else:
        why = report.error if report and report.error else "not sent"
        lines.append(f"event for {day} pending (recorded in Snowflake, not sent: {why}); "
                     "`memberscore events --resend` sends it, and so does the next publish")
    others: Sequence[Delivery] = [d for d in (report.sent if report else ())
                                  if d.event.event_id != recorded.event_id]
    if others:
        lines.append(f"also sent {len(others)} event(s) an earlier publish left pending: "
                     + ", ".join(f"{d.event.as_of_date} ({d.event.run_id})" for d in others))
    return lines


def broker_error(report: DeliveryReport) -> BrokerError | None:
    """The error of a delivery that left events pending, for `events --resend`."""
    if not report.pending:
        return None
    return BrokerError(f"{len(report.pending)} event(s) still pending: {report.error}; run "
                       "`memberscore events --resend` again when the broker is back")


def event_details(recorded: OutboxEvent | NoEvent,
                  report: DeliveryReport | None) -> dict[str, object]:
    """The job result's `event` details (the demo prints the event from them)."""
    if isinstance(recorded, NoEvent):
        return {"status": "none", "reason": recorded.reason}
    sent = report.sent_event(recorded.event_id) if report else None
    details: dict[str, object] = {
        "status": "sent" if sent else "pending", "event_id": recorded.event_id,
        "topic": recorded.topic, "key": recorded.key, "value": recorded.value,
    }
    if sent is not None:
        details |= {"partition": sent.partition, "offset": sent.offset}
    elif report is not None and report.error:
        details["error"] = report.error
    return details
