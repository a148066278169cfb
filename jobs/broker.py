"""`memberscore broker`: serve the local Kafka broker in the foreground.

Apache Kafka (KRaft, one node) over `$MEMBERSCORE_HOME/broker`, from the jars `make
install` fetched.  It prints its bootstrap address, then serves until Ctrl-C (or
SIGTERM).  While it runs, `memberscore publish` and `memberscore events` in another
terminal use it instead of starting their own.  See docs/events.md.
"""

from __future__ import annotations

import argparse

from memberscore.args import port
from memberscore.context import JobResult, RunContext
from memberscore.errors import ConfigError
from memberscore.runtime import serve_until_stopped, stop_on_sigterm


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=port, default=None,
                        help="port to listen on (default: a free port, printed)")


def run(ctx: RunContext, args: argparse.Namespace) -> JobResult:
    events = ctx.settings.events
    if events.bootstrap_servers is not None or not events.local_broker:
        raise ConfigError(
            f"`broker` serves the local Kafka broker, but env {ctx.env} sends events to "
            f"{events.bootstrap_servers or 'no broker'} (events.bootstrap_servers is set or "
            "events.local_broker is false); use --env local")
    from memberscore.local.broker_server import describe, local_broker

    with (stop_on_sigterm() as stop,
          local_broker(ctx.paths.broker, port=args.port or None, must_serve=True) as handle):
        address = handle.address()
        print("\n".join([
            *describe(address),
            f"  the events go to topic {events.topic}; read them with "
            "`memberscore events --tail`",
        ]), flush=True)
        serve_until_stopped(stop)
    return JobResult(job="broker", details={"bootstrap_servers": address.bootstrap_servers},
                     messages=[f"local Kafka broker stopped ({ctx.paths.broker})"])
