"""`memberscore api [--host H] [--port P]`: serve the scores API in the foreground.

A Flask app served by waitress over the published Snowflake tables (locally the
warehouse under `$MEMBERSCORE_HOME/warehouse`, started when nobody serves it).  It
prints its address and routes, then serves until Ctrl-C (or SIGTERM).  Clients
authenticate with a bearer token from conf `api.tokens` (locally the environment
variable MEMBERSCORE_API_TOKEN).  See docs/api.md.
"""

from __future__ import annotations

import argparse

from memberscore.api.server import api_server
from memberscore.args import port
from memberscore.context import JobResult, RunContext
from memberscore.runtime import serve_until_stopped, stop_on_sigterm

ROUTES = (
    "GET /v1/members/<member_id>/score[?as_of_date=YYYY-MM-DD&model_name=M]",
    "GET /v1/members/<member_id>/features[?as_of_date=YYYY-MM-DD]",
    "GET /v1/days/<YYYY-MM-DD>",
    "GET /v1/health             (no token)",
    "GET /v1/openapi.json       (no token)",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=None,
                        help="address to listen on (default: conf api.host, 127.0.0.1 locally)")
    parser.add_argument("--port", type=port, default=None,
                        help="port to listen on (default: conf api.port; 0 = a free port)")


def run(ctx: RunContext, args: argparse.Namespace) -> JobResult:
    with (stop_on_sigterm() as stop,
          api_server(ctx.settings, ctx.paths.warehouse, host=args.host, port=args.port,
                     verbose=ctx.verbose) as server):
        print("\n".join([
            f"scores API serving on {server.url} (warehouse: {server.warehouse})",
            "send 'Authorization: Bearer <token>' with a token of conf api.tokens",
            *(f"  {route}" for route in ROUTES),
            f"try: curl -H \"Authorization: Bearer $MEMBERSCORE_API_TOKEN\" "
            f"{server.url}/v1/health",
            "Stop with Ctrl-C.",
        ]), flush=True)
        serve_until_stopped(stop)
    return JobResult(job="api", details={"url": server.url},
                     messages=[f"scores API stopped ({server.url})"])
