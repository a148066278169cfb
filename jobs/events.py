"""`memberscore events [--tail] [--resend]`: the "day published" events.

- no option: the newest events of Snowflake's EVENT_OUTBOX (sent, with partition and
  offset, or pending, with the last error) and how many are pending;
- `--resend`: send every pending event, in the order they were recorded, and mark
  each sent on the broker's acknowledgement; fails (exit status 11, one line) when
  events stay pending, e.g. the broker cannot be reached;
- `--tail`: print the topic's events as a consumer reads them, one JSON object per
  line (topic, partition, offset, timestamp, key, headers, value), from the
  beginning; with `--follow`, keep waiting for new ones until Ctrl-C.

See docs/events.md.
"""

from __future__ import annotations

import argparse
import datetime as dt

from memberscore.args import positive_int
from memberscore.context import JobResult, RunContext
from memberscore.errors import ConfigError
from memberscore.events import (
    OUTBOX_TABLE,
    Outbox,
    broker_error,
    deliver_pending,
    open_broker,
    read_topic,
)
from memberscore.runtime import stop_on_sigterm
from memberscore.text_tables import text_table
from memberscore.warehouse.session import open_warehouse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--resend", action="store_true",
                        help="send every pending event (in the order recorded)")
    parser.add_argument("--tail", action="store_true",
                        help="print the topic's events as a consumer reads them (JSON lines)")
    parser.add_argument("--follow", action="store_true",
                        help="with --tail: keep printing new events until Ctrl-C")
    parser.add_argument("--limit", type=positive_int, default=20, metavar="N",
                        help="show the N newest events of the outbox (default: %(default)s)")


def _stamp(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def run(ctx: RunContext, args: argparse.Namespace) -> JobResult:
    if args.follow and not args.tail:
        raise ConfigError("--follow goes with --tail")
    if args.tail and args.resend:
        raise ConfigError("--tail and --resend are separate runs; give one of them")
    if not ctx.settings.events.enabled and args.resend:
        raise ConfigError("events.enabled is false in conf: nothing is sent; set it to true "
                          "(or MEMBERSCORE__EVENTS__ENABLED=true) to send pending events")
    if args.tail:
        return _tail(ctx, follow=args.follow)
    with open_warehouse(ctx.settings, ctx.paths.warehouse,
                        purpose=f"events {ctx.run_id}", verbose=ctx.verbose) as conn:
        if args.resend:
            if not Outbox.exists(conn):
                return JobResult(job="events", messages=[
                    f"no events: {OUTBOX_TABLE} does not exist yet (publish a day first)"])
            with open_broker(ctx.settings, ctx.paths.broker) as broker:
                report = deliver_pending(ctx.settings, conn, broker, claimer=ctx.run_id)
            lines = [f"sent {d.event.as_of_date} (run {d.event.run_id}, event_id "
                     f"{d.event.event_id}): {d.event.topic} partition {d.partition} offset "
                     f"{d.offset}" for d in report.sent]
            failure = broker_error(report)
            if failure is not None:
                raise failure
            if not lines:
                lines = ["no pending events: every recorded event was sent"]
            return JobResult(job="events", rows={"sent": len(report.sent)},
                             details={"sent": [d.event.event_id for d in report.sent]},
                             messages=lines)
        events, pending = Outbox.recent(conn, args.limit)
    if not events:
        return JobResult(job="events", messages=[
            f"no events in {OUTBOX_TABLE} yet: each publish of a complete day records one"])
    rows = [(e.as_of_date, e.run_id, "sent" if e.sent else "PENDING", _stamp(e.created_at),
             _stamp(e.sent_at), e.partition, e.offset, e.attempts,
             "" if e.sent else (e.last_error or "")[:120]) for e in events]
    lines = text_table(["day", "run_id", "status", "recorded", "sent", "partition", "offset",
                        "attempts", "last error"], rows, right={5, 6, 7}, rule=True)
    lines.append(f"{pending} pending" + (
        "; `memberscore events --resend` sends them" if pending else "") +
        f" (topic {ctx.settings.events.topic}; the {len(events)} newest of {OUTBOX_TABLE})")
    return JobResult(job="events", rows={"pending": pending},
                     details={"pending": pending,
                              "events": [e.event_id for e in events]}, messages=lines)


def _tail(ctx: RunContext, *, follow: bool) -> JobResult:
    settings = ctx.settings.events
    count = 0
    with stop_on_sigterm() as stop, open_broker(ctx.settings, ctx.paths.broker) as broker:
        try:
            for event in read_topic(settings, broker.bootstrap(), follow=follow,
                                    stop=stop.is_set):
                print(event.as_json(), flush=True)
                count += 1
        except KeyboardInterrupt:
            pass
    return JobResult(job="events", rows={"events": count}, messages=[
        f"{count} event(s) on {settings.topic}" if count else
        f"no events on {settings.topic} yet"])
