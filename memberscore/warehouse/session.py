"""Open a warehouse session for the configured environment.

With `snowflake.local_server: true` (conf/local.yml) the session goes to the local
warehouse under `<home>/warehouse`, started for the duration when nobody serves it;
otherwise to the Snowflake account in conf.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from memberscore.config import Settings
from memberscore.warehouse.connection import ConnectionSpec, WarehouseConnection, connect

LOCAL_HOST = "127.0.0.1"


@contextmanager
def warehouse_spec(settings: Settings, warehouse_dir: Path, *,
                   verbose: bool = False) -> Iterator[ConnectionSpec]:
    """Where the configured environment's warehouse answers, for as long as the
    context lasts: the Snowflake account in conf, or the local server under
    `warehouse_dir` (started in this process when nobody serves it, stopped after)."""
    sf = settings.snowflake
    spec = ConnectionSpec.from_settings(sf)
    if not sf.local_server:
        yield spec
        return
    # the local harness, loaded only when this environment runs the local warehouse
    from memberscore.local.warehouse_server import local_warehouse

    with local_warehouse(
        warehouse_dir, database=spec.database, schema=spec.schema,
        host=sf.host or LOCAL_HOST, port=sf.port,
        log_level=logging.INFO if verbose else logging.CRITICAL,
    ) as address:
        yield dataclasses.replace(spec, endpoint=address.endpoint)


@contextmanager
def open_warehouse(settings: Settings, warehouse_dir: Path, *, purpose: str,
                   verbose: bool = False) -> Iterator[WarehouseConnection]:
    """A connected session; the local server (if this opened it) stops afterwards."""
    with (warehouse_spec(settings, warehouse_dir, verbose=verbose) as spec,
          connect(spec, purpose=purpose) as conn):
        yield conn


def how_to_connect(endpoint_url: str, host: str, port: int, spec: ConnectionSpec) -> list[str]:
    """What `memberscore warehouse` prints: parameters, a connector snippet, SQL to try."""
    database, schema = spec.database, spec.schema
    return [
        f"local warehouse (fakesnow) serving {database}.{schema} on {endpoint_url}",
        "",
        "connection parameters (the local warehouse has no authentication; any password):",
        f"  host={host} port={port} protocol=http",
        f"  account={spec.account} user={spec.user} password=local",
        f"  database={database} schema={schema}",
        "",
        "python:",
        "  import snowflake.connector",
        "  conn = snowflake.connector.connect(",
        f"      account={spec.account!r}, user={spec.user!r}, password='local',",
        f"      host={host!r}, port={port}, protocol='http',",
        f"      database={database!r}, schema={schema!r},",
        "  )",
        "  cur = conn.cursor()",
        "  print(cur.execute('SELECT * FROM PUBLISH_LOG ORDER BY PUBLISHED_AT DESC').fetchall())",
        "",
        "SQL to try:",
        "  SHOW TABLES;",
        "  SELECT TABLE_NAME, AS_OF_DATE, ROW_COUNT, RUN_ID, PUBLISHED_AT",
        "    FROM PUBLISH_LOG ORDER BY AS_OF_DATE DESC, TABLE_NAME;",
        "  SELECT SCORE_BAND, COUNT(*) AS MEMBERS, AVG(SCORE) AS MEAN_SCORE",
        "    FROM MEMBER_SCORES WHERE AS_OF_DATE = (SELECT MAX(AS_OF_DATE) FROM MEMBER_SCORES)",
        "    GROUP BY SCORE_BAND ORDER BY MEAN_SCORE;",
        "  SELECT * FROM MEMBER_FEATURES_DAILY WHERE MEMBER_ID = '<member_id>'",
        "    ORDER BY AS_OF_DATE DESC LIMIT 10;",
        "",
        "publish from another terminal with `memberscore publish --run-date D`: it uses this "
        "server. Stop with Ctrl-C.",
    ]
