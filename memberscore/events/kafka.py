"""Kafka for the "day published" event: where the broker is, the producer that sends
the outbox's pending events, and the consumer behind `memberscore events --tail`.

The client is confluent-kafka (librdkafka).  The producer is idempotent with
`acks=all`: an event counts as sent only when every in-sync replica has it, and
librdkafka's own retries within one send never write it twice.  Its log goes to the
`memberscore.kafka` logger, never to stderr; SASL credentials are revealed only into
the client's configuration, never logged or put in a message.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memberscore.errors import BrokerError, MemberscoreError

if TYPE_CHECKING:
    from memberscore.config import EventsSettings, Settings
    from memberscore.events.outbox import OutboxEvent

log = logging.getLogger(__name__)


class _ClientLog:
    """librdkafka's log, at debug level under `memberscore.kafka` (the run's log file
    keeps it; the console shows this package's one-line outcome instead of a refused
    connection per retry)."""

    logger = logging.getLogger("memberscore.kafka")

    def log(self, level: int, msg: str, *args: Any) -> None:
        self.logger.debug("[%s] " + msg, logging.getLevelName(level), *args)


client_log = _ClientLog()


@dataclasses.dataclass
class Broker:
    """Where the events go: the configured bootstrap servers, or the local broker
    (started by this process when nobody runs it; `bootstrap()` waits until it answers)."""

    settings: EventsSettings
    _local: Callable[[], str] | None = None

    def bootstrap(self) -> str:
        if self.settings.bootstrap_servers is not None:
            return self.settings.bootstrap_servers
        assert self._local is not None
        return self._local()

    @property
    def where(self) -> str:
        """The broker for a message, without waiting for a local one."""
        if self.settings.bootstrap_servers is not None:
            return self.settings.bootstrap_servers
        return "the local broker"


@contextlib.contextmanager
def open_broker(settings: Settings, broker_dir: Path) -> Iterator[Broker]:
    """The broker of this environment for the block: conf `events.bootstrap_servers`,
    or (with `events.local_broker`) the local broker under `broker_dir`, which a start
    here launches at once and stops when the block ends."""
    events = settings.events
    if events.bootstrap_servers is not None or not events.local_broker:
        yield Broker(events)
        return
    from memberscore.local.broker_server import local_broker

    with contextlib.ExitStack() as stack:
        try:
            handle = stack.enter_context(local_broker(broker_dir))
        except MemberscoreError as exc:
            # no local broker (its jars, Java, a hung owner): the publish goes on and
            # its event stays pending; `events` reports the same error when it sends
            failure = exc

            def unavailable() -> str:
                raise failure

            yield Broker(events, unavailable)
            return
        yield Broker(events, lambda: handle.address().bootstrap_servers)


def client_config(settings: EventsSettings, bootstrap: str, *,
                  revealed: list[str] | None = None) -> dict[str, Any]:
    """librdkafka settings shared by the producer and the consumer (secrets revealed
    here, and listed in `revealed` so error text can be scrubbed of them)."""
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "client.id": settings.client_id,
        "security.protocol": settings.security_protocol,
        "logger": client_log,
        # a broker that is down is retried quickly, not every 10 s
        "reconnect.backoff.max.ms": 1000,
        "socket.connection.setup.timeout.ms": settings.delivery_timeout_seconds * 1000,
    }
    if settings.ssl_ca_location is not None and settings.security_protocol.endswith("SSL"):
        config["ssl.ca.location"] = settings.ssl_ca_location
    if settings.security_protocol.startswith("SASL_"):
        assert settings.sasl_username is not None and settings.sasl_password is not None
        user, password = settings.sasl_username.reveal(), settings.sasl_password.reveal()
        if revealed is not None:
            revealed += [user, password]
        config |= {"sasl.mechanism": settings.sasl_mechanism, "sasl.username": user,
                   "sasl.password": password}
    return config


def _scrub(text: str, revealed: Sequence[str]) -> str:
    for secret in revealed:
        if secret:
            text = text.replace(secret, "***")
    return text


def _check_reachable(client: Any, settings: EventsSettings, bootstrap: str,
                     revealed: Sequence[str]) -> None:
    """BrokerError (one line) unless a broker answers a metadata request in time."""
    timeout = min(5.0, float(settings.delivery_timeout_seconds))
    try:
        client.list_topics(timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - KafkaException: no broker answered
        detail = _scrub(str(exc.args[0] if exc.args else exc), revealed)
        raise BrokerError(
            f"no Kafka broker answered at {bootstrap} within {timeout:.0f}s "
            f"(events.bootstrap_servers; {detail})") from None


@dataclasses.dataclass(frozen=True)
class Delivery:
    """An acknowledged event: where the broker put it."""

    event: OutboxEvent
    partition: int
    offset: int
    sent_at: dt.datetime


class EventProducer:
    """An idempotent, acks=all producer for the outbox's events."""

    def __init__(self, settings: EventsSettings, bootstrap: str) -> None:
        from confluent_kafka import Producer

        self.settings = settings
        self.bootstrap = bootstrap
        self._revealed: list[str] = []
        config = client_config(settings, bootstrap, revealed=self._revealed) | {
            "enable.idempotence": True,
            "acks": "all",
            "message.timeout.ms": settings.delivery_timeout_seconds * 1000,
            "linger.ms": 0,
        }
        self._producer = Producer(config)

    def check_reachable(self) -> None:
        _check_reachable(self._producer, self.settings, self.bootstrap, self._revealed)

    def send(self, events: Sequence[OutboxEvent]) -> tuple[list[Delivery], dict[str, str]]:
        """Send `events` in order and wait for the broker: the acknowledged ones, and the
        error of each one that was not (by event id)."""
        delivered: list[Delivery] = []
        failed: dict[str, str] = {}

        def report(event: OutboxEvent) -> Callable[[Any, Any], None]:
            def on_delivery(error: Any, message: Any) -> None:
                if error is not None:
                    failed[event.event_id] = _scrub(str(error.str()), self._revealed)
                else:
                    delivered.append(Delivery(event, int(message.partition()),
                                              int(message.offset()), dt.datetime.now(dt.UTC)))
            return on_delivery

        for event in events:
            self._producer.produce(
                event.topic, key=event.key.encode(), value=event.payload.encode(),
                headers=[("event_id", event.event_id.encode()),
                         ("event_type", b"memberscore.day_published"),
                         ("content-type", b"application/json")],
                on_delivery=report(event))
        remaining = self._producer.flush(self.settings.delivery_timeout_seconds + 5)
        for event in events:
            if remaining and event.event_id not in failed and not any(
                    d.event.event_id == event.event_id for d in delivered):
                failed[event.event_id] = "not acknowledged in time"
        return delivered, failed


@dataclasses.dataclass(frozen=True)
class TopicEvent:
    """An event as a consumer reads it."""

    topic: str
    partition: int
    offset: int
    timestamp: str | None
    key: str | None
    headers: dict[str, str]
    value: Any

    def as_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), separators=(",", ":"))


def read_topic(settings: EventsSettings, bootstrap: str, *, topic: str | None = None,
               follow: bool = False, idle_seconds: float = 5.0,
               stop: Callable[[], bool] = lambda: False) -> Iterator[TopicEvent]:
    """Every event on the topic from its beginning, as a consumer reads it, until the
    end of every partition (or, with `follow`, until `stop()`).  No consumer group
    offsets are committed: this only looks."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    topic = topic or settings.topic
    revealed: list[str] = []
    consumer = Consumer(client_config(settings, bootstrap, revealed=revealed) | {
        "group.id": f"memberscore-events-tail-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "allow.auto.create.topics": False,
    })
    try:
        _check_reachable(consumer, settings, bootstrap, revealed)
        metadata = consumer.list_topics(topic, timeout=5.0)
        found = metadata.topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            return
        partitions = sorted(found.partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        at_end: set[int] = set()
        quiet_since = time.monotonic()
        while not stop():
            message = consumer.poll(0.5)
            if message is None:
                if not follow and time.monotonic() - quiet_since > idle_seconds:
                    break
                continue
            quiet_since = time.monotonic()
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    at_end.add(int(message.partition() or 0))
                    if not follow and at_end >= set(partitions):
                        break
                    continue
                raise BrokerError(f"reading {topic} at {bootstrap} failed: "
                                  f"{_scrub(str(error.str()), revealed)}")
            partition, offset = int(message.partition() or 0), int(message.offset() or 0)
            at_end.discard(partition)
            kind, stamp = message.timestamp()
            raw, key = message.value(), message.key()
            value: Any = None
            if raw is not None:
                try:
                    value = json.loads(raw)
                except ValueError:
                    value = bytes(raw).decode("utf-8", errors="replace")
            found = message.headers() or []
            headers = list(found.items()) if isinstance(found, dict) else list(found)
            yield TopicEvent(
                topic=topic, partition=partition, offset=offset,
                timestamp=(dt.datetime.fromtimestamp(stamp / 1000, dt.UTC).isoformat()
                           .replace("+00:00", "Z") if kind else None),
                key=None if key is None else bytes(key).decode(),
                headers={name: (v.decode() if isinstance(v, bytes) else str(v))
                         for name, v in headers},
                value=value)
    finally:
        consumer.close()
