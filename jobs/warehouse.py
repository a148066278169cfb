"""`memberscore warehouse`: serve the local Snowflake-compatible warehouse in the foreground.

The fakesnow server over `$MEMBERSCORE_HOME/warehouse`, for analysts and for trying
queries against published days.  It prints how to connect, then serves until Ctrl-C
(or SIGTERM).  While it runs, `memberscore publish` in another terminal uses it
instead of starting its own.  See docs/publish.md.
"""

from __future__ import annotations

import argparse
import logging

from memberscore.args import port
from memberscore.context import JobResult, RunContext
from memberscore.errors import ConfigError
from memberscore.local.warehouse_server import DEFAULT_IDLE_TRANSACTION_SECONDS, local_warehouse
from memberscore.runtime import serve_until_stopped, stop_on_sigterm
from memberscore.warehouse.connection import ConnectionSpec
from memberscore.warehouse.session import LOCAL_HOST, how_to_connect


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, found {text!r}") \
            from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, found {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=port, default=None,
                        help="port to listen on (default: a free port, printed)")
    parser.add_argument("--idle-transaction-seconds", type=_seconds,
                        default=DEFAULT_IDLE_TRANSACTION_SECONDS, metavar="S",
                        help="roll back a transaction whose session has said nothing for S "
                             "seconds, e.g. a killed publish (default: %(default)s)")


def run(ctx: RunContext, args: argparse.Namespace) -> JobResult:
    sf = ctx.settings.snowflake
    if not sf.local_server:
        raise ConfigError(
            f"`warehouse` serves the local warehouse, but env {ctx.env} publishes to the "
            f"Snowflake account {sf.account} (snowflake.local_server is false); use --env local"
        )
    spec = ConnectionSpec.from_settings(sf)
    with (stop_on_sigterm() as stop,
          local_warehouse(
              ctx.paths.warehouse, database=spec.database, schema=spec.schema,
              host=sf.host or LOCAL_HOST, port=args.port if args.port is not None else sf.port,
              idle_transaction_seconds=args.idle_transaction_seconds, must_serve=True,
              log_level=logging.DEBUG if ctx.verbose else logging.INFO,
          ) as address):
        lines = how_to_connect(address.endpoint.url, address.host, address.port, spec)
        print("\n".join(lines), flush=True)
        serve_until_stopped(stop)
    return JobResult(job="warehouse", details={"port": address.port},
                     messages=[f"local warehouse stopped ({ctx.paths.warehouse})"])
