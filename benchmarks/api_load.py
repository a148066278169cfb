"""`python -m benchmarks.api_load --url U --clients N --requests R --members FILE`:
a load client for the scores API, in a process of its own (so the clients never
share an interpreter lock with the server they measure).

Each client is a thread with one keep-alive HTTP connection; together they send
`--requests` score lookups, each for a member drawn from the file (one id per line),
after `--warm-up` untimed ones.  The bearer token comes from $MEMBERSCORE_API_TOKEN.
Prints one JSON object: every request's latency as the client saw it
(`request_ms`), the warehouse's share of it as the server reported it
(`Server-Timing: db`, `query_ms`), the statuses, and the errors (any status but 200,
or a failed connection) with their first messages.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import threading
import time
import urllib.parse
from collections import Counter
from pathlib import Path
from typing import Any


def _query_ms(header: str | None) -> float | None:
    for part in (header or "").split(","):
        fields = part.strip().split(";")
        if fields[0] == "db":
            for field in fields[1:]:
                if field.startswith("dur="):
                    return float(field[4:])
    return None


def run(url: str, token: str, members: list[str], clients: int, requests: int,
        warm_up: int, seed: int = 7) -> dict[str, Any]:
    target = urllib.parse.urlsplit(url)
    host, port = target.hostname or "127.0.0.1", target.port or 80
    rng = random.Random(seed)
    plan = [rng.choice(members) for _ in range(warm_up + requests)]
    request_ms: list[float] = []
    query_ms: list[float] = []
    statuses: Counter[int] = Counter()
    errors: list[str] = []
    lock = threading.Lock()
    cursor = iter(range(len(plan)))
    headers = {"Authorization": f"Bearer {token}", "Connection": "keep-alive"}

    def client() -> None:
        conn = http.client.HTTPConnection(host, port, timeout=60)
        while True:
            with lock:
                index = next(cursor, None)
            if index is None:
                break
            started = time.perf_counter()
            try:
                conn.request("GET", f"/v1/members/{plan[index]}/score", headers=headers)
                response = conn.getresponse()
                body = response.read()
                seconds = time.perf_counter() - started
                status, query = response.status, _query_ms(response.getheader("Server-Timing"))
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=60)
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}")
                continue
            if index < warm_up:
                continue
            with lock:
                statuses[status] += 1
                request_ms.append(seconds * 1000)
                if query is not None:
                    query_ms.append(query)
                if status != 200:
                    errors.append(f"HTTP {status}: {body[:200].decode(errors='replace')}")
        conn.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"request_ms": request_ms, "query_ms": query_ms,
            "statuses": {str(k): v for k, v in statuses.items()},
            "errors": len(errors), "first_errors": errors[:5],
            "seconds": time.perf_counter() - started}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.api_load")
    parser.add_argument("--url", required=True)
    parser.add_argument("--members", type=Path, required=True)
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--warm-up", type=int, default=50)
    args = parser.parse_args()
    members = args.members.read_text().split()
    result = run(args.url, os.environ["MEMBERSCORE_API_TOKEN"], members, args.clients,
                 args.requests, args.warm_up)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
