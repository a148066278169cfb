"""The warehouse interface: Snowflake connections, the local fakesnow server, and the
publisher that copies days of lake tables into Snowflake (see docs/publish.md).

- `session.open_warehouse(settings, warehouse_dir, purpose=...)`: a connected session
  for the configured environment (the local server is started when needed);
- `publisher.publish_tables(...)` / `publish_day(...)`: publish one day of tables;
- `local_server.local_warehouse(...)`: find or start the local server for a home.
"""

from memberscore.warehouse.connection import ConnectionSpec, Endpoint, WarehouseConnection
from memberscore.warehouse.publisher import (
    LOG_TABLE,
    STAGE,
    NothingToPublishError,
    PublishedDay,
    Publisher,
    PublishOutcome,
    TableSelection,
    publish_day,
    publish_tables,
    published_tables,
)
from memberscore.warehouse.session import open_warehouse

__all__ = [
    "LOG_TABLE",
    "STAGE",
    "ConnectionSpec",
    "Endpoint",
    "NothingToPublishError",
    "PublishOutcome",
    "PublishedDay",
    "Publisher",
    "TableSelection",
    "WarehouseConnection",
    "open_warehouse",
    "publish_day",
    "publish_tables",
    "published_tables",
]
