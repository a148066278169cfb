"""The "day published" event: what it adds to a publish, and how soon the broker has it.

The same 20,000-row day as bench_publish (its lake table is reused), published as a
complete day (conf narrowed to that one required table), alternately with and without
the event's commit hooks, RUNS times after one warm-up of each, against a warm local
warehouse and a warm local broker (this home's, started once here):

- `event_publish_overhead_seconds`: median publish with the event less median
  publish without it: the outbox's statements (its DDL, four inside the transaction,
  the claim, its read and the mark) and the wait for the broker's acknowledgement;
- `event_send_seconds`: the median of the after-COMMIT part alone (claim, send,
  acknowledgement, mark);
- `local_broker_start_seconds`: launching the local broker's JVM until it answers
  (a fresh data folder is formatted first: `make demo`'s case).
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import statistics
import time

from benchmarks.bench_publish import DAY, TABLE, _feature_day
from benchmarks.common import Measurement, Workspace, timer
from memberscore.events import DayPublishedEvents, read_topic
from memberscore.events.kafka import Broker
from memberscore.local.broker_server import local_broker
from memberscore.local.warehouse_server import local_warehouse
from memberscore.warehouse import publish_tables
from memberscore.warehouse.publisher import TableSelection

RUNS = 7
log = logging.getLogger("benchmarks.events")


def run(ws: Workspace) -> list[Measurement]:
    ctx = ws.ctx
    if not ws.done("publish_day") or not ctx.lake.exists(TABLE):
        ctx.lake.replace_where(TABLE, _feature_day(ws), {"as_of_date": DAY}, ["as_of_date"])
        ws.mark("publish_day")
    base = ws.settings
    # a complete day is this one table: the event is recorded and sent at every publish
    settings = dataclasses.replace(base, snowflake=dataclasses.replace(
        base.snowflake, published_tables=(TABLE,), optional_tables=()),
        events=dataclasses.replace(base.events, topic=f"bench.day_published.{time.time_ns()}"))
    sf = settings.snowflake
    broker_dir = ctx.paths.home / "bench-broker"
    shutil.rmtree(broker_dir, ignore_errors=True)
    started = time.monotonic()
    with (local_broker(broker_dir) as handle,
          local_warehouse(ctx.paths.warehouse, database=sf.database.upper(),
                          schema=sf.schema.upper())):
        bootstrap = handle.address().bootstrap_servers
        start_seconds = time.monotonic() - started
        events_settings = dataclasses.replace(settings.events, bootstrap_servers=bootstrap)
        settings = dataclasses.replace(settings, events=events_settings)

        def publish_once(run_id: str, with_event: bool) -> tuple[float, float]:
            hooks = (DayPublishedEvents(settings, Broker(events_settings), claimer=run_id)
                     if with_event else None)
            with timer() as t:
                outcome = publish_tables(settings, ctx.lake, ctx.spark,
                                         warehouse_dir=ctx.paths.warehouse, run_id=run_id,
                                         selection=TableSelection((TABLE,), frozenset()),
                                         day=DAY, hooks=hooks)
            if hooks is None:
                return t["seconds"], 0.0
            report = outcome.after_commit
            assert report is not None and len(report.sent) == 1 and not report.pending, report
            return t["seconds"], hooks.send_seconds

        publish_once("bench-ev-warmup", True)
        publish_once("bench-plain-warmup", False)
        with_event, without, sends = [], [], []
        for i in range(RUNS):
            seconds, send = publish_once(f"bench-ev-{i}", True)
            with_event.append(seconds)
            sends.append(send)
            without.append(publish_once(f"bench-plain-{i}", False)[0])
        on_topic = list(read_topic(events_settings, bootstrap, idle_seconds=3.0))
    assert len(on_topic) == RUNS + 1, len(on_topic)  # one event per publish with it
    median = statistics.median
    overhead = median(with_event) - median(without)
    log.info("publish with the event %.3fs, without %.3fs (medians of %d); send %.3fs; "
             "local broker start %.1fs", median(with_event), median(without), RUNS,
             median(sends), start_seconds)
    return [
        Measurement("event_publish_overhead_seconds", overhead, "s", target=0.5,
                    note=f"publish {median(with_event):.2f}s with the event, "
                         f"{median(without):.2f}s without (20,000 rows)"),
        Measurement("event_send_seconds", median(sends), "s", target=0.25,
                    note="after COMMIT: claim, send, acknowledgement, mark"),
        Measurement("local_broker_start_seconds", start_seconds, "s", target=10.0,
                    note="launch to answering, fresh data folder (formatted first)"),
    ]
