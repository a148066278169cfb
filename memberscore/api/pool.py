"""A small pool of warehouse sessions shared by the API's requests.

SQLAlchemy's `QueuePool` keeps the sessions: at most `size` open at once (no
overflow: a Snowflake warehouse runs a bounded number of queries at a time, and a
burst beyond the pool waits for a session instead of opening more), a request that
finds none free waits at most `timeout_seconds`, then gets `WarehouseUnavailableError`
(503).  A session whose query failed for any reason other than the warehouse's own
answer (a lost connection, a timeout) is discarded, so the next request opens a
fresh one.  Nothing is rolled back on return: the API only reads, with autocommit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.pool import QueuePool

from memberscore.errors import WarehouseError
from memberscore.warehouse.connection import ConnectionSpec, WarehouseConnection, connect

log = logging.getLogger(__name__)


class WarehouseUnavailableError(WarehouseError):
    """The warehouse could not be reached, or did not answer in time."""


class SessionPool:
    """Warehouse sessions for many threads; `session()` lends one for one request."""

    def __init__(self, spec: ConnectionSpec, *, size: int, timeout_seconds: float) -> None:
        self.spec = spec
        self.timeout_seconds = timeout_seconds
        self._pool = QueuePool(self._connect, pool_size=size, max_overflow=0,
                               timeout=timeout_seconds, reset_on_return=None,
                               pre_ping=False)

    def _connect(self) -> Any:
        started = time.monotonic()
        conn = connect(self.spec, purpose="api", timeout_seconds=self.timeout_seconds)
        log.debug("api: opened a warehouse session in %.0f ms",
                  (time.monotonic() - started) * 1000)
        return conn

    @contextmanager
    def session(self) -> Iterator[WarehouseConnection]:
        """A pooled session; WarehouseUnavailableError when none can be had in time."""
        try:
            lent = self._pool.connect()
        except PoolTimeout:
            raise WarehouseUnavailableError(
                f"every warehouse session is busy ({self._pool.size()} in the pool) "
                f"after {self.timeout_seconds:g}s"
            ) from None
        except WarehouseError as exc:
            raise WarehouseUnavailableError(str(exc)) from None
        conn = lent.dbapi_connection
        assert isinstance(conn, WarehouseConnection)
        try:
            yield conn
        except WarehouseError as exc:
            if exc.errno is None or exc.errno >= 250000:  # not an answer of the warehouse
                lent.invalidate()
                raise WarehouseUnavailableError(str(exc)) from None
            raise
        finally:
            lent.close()

    def dispose(self) -> None:
        """Close every idle session (at shutdown)."""
        self._pool.dispose()
