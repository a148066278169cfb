"""The scores API: 1,000 single-member score lookups, one client, then 1,000 from 50
concurrent clients, against the local warehouse.

Set-up: one day (`DAY`) of `member_features_daily` and `member_scores`, 20,000 members
each, published together (a complete day) to the bench home's warehouse, served by
`memberscore warehouse` in a process of its own (as a remote Snowflake would be: the
API and the warehouse never share an interpreter).  The API (`api_server`, waitress,
conf `api.threads` and `api.pool_size`) serves in this process; the clients
(`benchmarks.api_load`) run in another, each with a keep-alive connection, asking
for members drawn at random from the day.

Figures: `api_request_p50_ms` / `api_request_p95_ms` as the client saw them,
`api_query_p95_ms` the warehouse's part as the server measured it (`Server-Timing:
db`), `api_query_share` (median query / median request), and the target
`api_overhead_p95_ms` = p95 of the request - p95 of its query, <= 5 ms: what the API
adds to the warehouse's own time.  With 50 concurrent clients:
`api_concurrent_errors` (target 0) and the p50 and p95 latencies, which include the
wait for one of the pool's sessions.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import secrets
import statistics
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pyspark.sql import functions as F

from benchmarks.bench_publish import _feature_day
from benchmarks.common import Measurement, Workspace
from memberscore.api.server import api_server
from memberscore.warehouse import publish_tables
from memberscore.warehouse.publisher import TableSelection

DAY = dt.date(2035, 1, 1)  # a day no other benchmark publishes
REQUESTS = 1000
CLIENTS = 50
TABLES = ("member_features_daily", "member_scores")

log = logging.getLogger("benchmarks.api")


def _percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


@contextmanager
def _warehouse_process(home: Path) -> Iterator[None]:
    """`memberscore warehouse` for `home`, in a process of its own, until the block ends."""
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("memberscore")), "warehouse"],
        env={**os.environ, "MEMBERSCORE_HOME": str(home)},
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        if "serving" not in first:
            raise RuntimeError(f"memberscore warehouse did not start: {first!r}")
        yield
    finally:
        process.terminate()
        process.wait(timeout=30)


def _publish_day(ws: Workspace) -> list[str]:
    """The day's features and scores in the lake and published together; the members."""
    ctx = ws.new_ctx("bench-api")
    features = _feature_day(ws).withColumn("as_of_date", F.lit(DAY))
    ctx.lake.replace_where("member_features_daily", features, {"as_of_date": DAY},
                           ["as_of_date"])
    scores = features.select(
        "member_id", "as_of_date", F.lit("member_churn").alias("model_name"),
        F.lit("1").alias("model_version"),
        ((F.hash("member_id") % 1000 + 1000) % 1000 / 1000.0).alias("score"),
        F.lit("low").alias("score_band"), F.lit("bench-api").alias("run_id"),
        F.current_timestamp().alias("scored_at"))
    ctx.lake.replace_where("member_scores", scores, {"as_of_date": DAY}, ["as_of_date"])
    publish_tables(ws.settings, ctx.lake, ctx.spark, warehouse_dir=ctx.paths.warehouse,
                   run_id="bench-api", selection=TableSelection(TABLES, frozenset()), day=DAY)
    return [r.member_id for r in features.select("member_id").collect()]


def _load(url: str, members: Path, clients: int, token: str) -> dict[str, object]:
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks.api_load", "--url", url, "--members", str(members),
         "--clients", str(clients), "--requests", str(REQUESTS)],
        env={**os.environ, "MEMBERSCORE_API_TOKEN": token}, capture_output=True, text=True,
        check=True)
    result: dict[str, object] = json.loads(run.stdout)
    return result


def run(ws: Workspace) -> list[Measurement]:
    token = secrets.token_urlsafe(32)
    os.environ["MEMBERSCORE_API_TOKEN"] = token  # the conf's api.tokens reference
    with _warehouse_process(ws.root):
        members = _publish_day(ws)
        member_file = ws.root / "api-members.txt"
        member_file.write_text("\n".join(members) + "\n")
        with api_server(ws.settings, ws.ctx.paths.warehouse, port=0) as server:
            single = _load(server.url, member_file, 1, token)
            crowd = _load(server.url, member_file, CLIENTS, token)
    request = list(single["request_ms"])  # type: ignore[call-overload]
    query = list(single["query_ms"])  # type: ignore[call-overload]
    crowd_ms = list(crowd["request_ms"])  # type: ignore[call-overload]
    if single["errors"]:
        raise RuntimeError(f"the single client got errors: {single['first_errors']}")
    assert len(request) == REQUESTS == len(query), (len(request), len(query))
    overhead = _percentile(request, 95) - _percentile(query, 95)
    log.info("api: 1 client p50 %.1f ms (query %.1f), p95 %.1f ms (query %.1f); "
             "%d clients p50 %.1f ms p95 %.1f ms, %s errors %s",
             _percentile(request, 50), _percentile(query, 50), _percentile(request, 95),
             _percentile(query, 95), CLIENTS, _percentile(crowd_ms, 50),
             _percentile(crowd_ms, 95), crowd["errors"], crowd["first_errors"])
    return [
        Measurement("api_overhead_p95_ms", overhead, "ms", 5.0,
                    note="p95 request - p95 of its warehouse query, 1 client"),
        Measurement("api_request_p50_ms", _percentile(request, 50), "ms"),
        Measurement("api_request_p95_ms", _percentile(request, 95), "ms"),
        Measurement("api_query_p95_ms", _percentile(query, 95), "ms"),
        Measurement("api_query_share", statistics.median(query) / statistics.median(request),
                    "ratio", note="median query / median request"),
        Measurement("api_requests_per_second", REQUESTS / float(single["seconds"]),  # type: ignore[arg-type]
                    "req/s", higher_is_better=True, note="1 client"),
        Measurement("api_concurrent_errors", float(crowd["errors"]), "errors", 0.0,  # type: ignore[arg-type]
                    note=f"{CLIENTS} concurrent clients, {REQUESTS} requests"),
        Measurement("api_concurrent_p50_ms", _percentile(crowd_ms, 50), "ms"),
        Measurement("api_concurrent_p95_ms", _percentile(crowd_ms, 95), "ms"),
        Measurement("api_concurrent_requests_per_second",
                    len(crowd_ms) / float(crowd["seconds"]), "req/s",  # type: ignore[arg-type]
                    higher_is_better=True),
    ]
