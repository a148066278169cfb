"""The local warehouse: fakesnow's HTTP server over `$MEMBERSCORE_HOME/warehouse`.

One server per home.  Its DuckDB file (`<database>.db`) allows one writing process, so
the process that holds the file serves everyone else over HTTP, and the others find
it instead of fighting over the file:

- `server.lock` is held with `flock` by the serving process for as long as it
  serves.  The kernel releases it when that process ends, however it ends (even
  `kill -9`), so "lock free" means "nobody serves", with no stale-pid guessing.
- `server.json` (written after the server listens) says where: host, port, pid,
  database, schema, start time.

`local_warehouse(...)` connects to the running server when the lock is held (waiting
for `server.json` while a server is still starting), and otherwise starts one in a
thread of this process and stops it on exit, so `memberscore publish` leaves nothing
running.  `memberscore warehouse` is the same server in the foreground.  The lock
and state protocol is `memberscore.local.home_server`'s, shared with the local Kafka
broker.

Transactions a client leaves behind: a session that stops talking for
`idle_transaction_seconds` while a transaction is open (a killed publish, or a client
that closed its connection without COMMIT: the connector cannot log out of fakesnow),
has that transaction rolled back and the session closed, as Snowflake does with ended
sessions.  Without this, rows held by a dead client would block every rerun (DuckDB
reports a write-write conflict instead of waiting).

Three fakesnow 0.12 gaps are closed here, all limited to this server: stage files are
kept under `<warehouse>/stage/` (not a temp folder that is never cleaned), null
TIMESTAMP values are sent as nulls (fakesnow sends them as 1970-01-01), and
Snowflake's `MD5_NUMBER_LOWER64` (the reconciliation checksum uses it) is translated
for DuckDB, which lacks it.

The listening socket is created as a TCP socket (`IPPROTO_TCP`) so that asyncio sets
TCP_NODELAY on accepted connections: without it every response's body waited for
the client's delayed ACK (about 40 ms per statement, most of a short statement's time).

The server listens on loopback only: it has no authentication.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import fcntl
import logging
import os
import re
import shutil
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memberscore.errors import MissingDependencyError, WarehouseError
from memberscore.local.home_server import HomeServers, answers, check_loopback
from memberscore.warehouse.connection import Endpoint

log = logging.getLogger(__name__)

STATE_FILE = "server.json"
LOCK_FILE = "server.lock"
STAGE_DIR = "stage"
DEFAULT_IDLE_TRANSACTION_SECONDS = 120.0
# The connector's close() does not log out of fakesnow (no master token), so sessions
# are ended here after Snowflake's idle limit instead of piling up.
SESSION_IDLE_SECONDS = 4 * 3600.0


@dataclass(frozen=True)
class ServerAddress:
    """Where a local warehouse server listens, as recorded in `server.json`."""

    host: str
    port: int
    pid: int
    database: str
    schema: str
    started_at: str
    directory: str

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint(self.host, self.port, "http")


def read_state(directory: Path) -> ServerAddress | None:
    """The recorded server address, or None when absent or unreadable."""
    return _SERVERS.read_state(directory)


def _answers(address: ServerAddress) -> bool:
    return answers(address.pid, address.host, address.port)


_SERVERS: HomeServers[LocalServer, ServerAddress] = HomeServers(
    kind="local warehouse", lock_file=LOCK_FILE, state_file=STATE_FILE,
    error=WarehouseError, address_cls=ServerAddress, owner=lambda a: a.pid, alive=_answers,
    where=lambda a: a.endpoint.url, use_hint="connect to it")


# --------------------------------------------------------------- session watchdog


class _SessionWatch:
    """ASGI middleware around fakesnow's app: notes each session's last request, and
    rolls back transactions that departed or silent clients leave open."""

    def __init__(self, app: Any, sessions: dict[str, Any], idle_seconds: float) -> None:
        self.app = app
        self.sessions = sessions  # fakesnow.server.sessions: token -> connection
        self.idle_seconds = idle_seconds
        self.lock = threading.Lock()
        self.busy: dict[str, int] = {}
        self.last: dict[str, float] = {}
        self.conns: dict[str, Any] = {}
        self.checked: set[str] = set()

    @staticmethod
    def _token(scope: dict[str, Any]) -> str | None:
        for name, value in scope.get("headers") or ():
            if name == b"authorization":
                text = value.decode("latin-1")
                # fakesnow reads `Snowflake Token="<token>"` the same way
                token = text[17:-1]
                return token if token and token != "None" else None
        return None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        token = self._token(scope) if scope.get("type") == "http" else None
        if token is None:
            await self.app(scope, receive, send)
            return
        with self.lock:
            self.busy[token] = self.busy.get(token, 0) + 1
        try:
            await self.app(scope, receive, send)
        finally:
            with self.lock:
                self.busy[token] -= 1
                self.last[token] = time.monotonic()
                self.checked.discard(token)
                conn = self.sessions.get(token)
                if conn is not None:
                    self.conns[token] = conn

    def sweep(self) -> None:
        """Roll back what logged-out or silent sessions hold; called about once a second."""
        now = time.monotonic()
        with self.lock:
            for token, conn in list(self.sessions.items()):
                if token not in self.conns:
                    self.conns[token] = conn
                    self.last.setdefault(token, now)
            for token, conn in list(self.conns.items()):
                if self.busy.get(token):
                    continue
                if token not in self.sessions:  # logged out (or closed by us)
                    if _rollback_open_transaction(conn):
                        log.warning("local warehouse: rolled back the open transaction of a "
                                    "session that logged out")
                    _close_quietly(conn)
                    self._forget(token)
                    continue
                idle = now - self.last.get(token, now)
                if idle > SESSION_IDLE_SECONDS:  # Snowflake ends idle sessions after 4 h
                    _rollback_open_transaction(conn)
                    self.sessions.pop(token, None)
                    _close_quietly(conn)
                    self._forget(token)
                    continue
                if idle < self.idle_seconds or token in self.checked:
                    continue
                self.checked.add(token)
                if _rollback_open_transaction(conn):
                    log.warning(
                        "local warehouse: rolled back a transaction left open for %.0fs by a "
                        "session that stopped talking (a killed client?); the session is "
                        "closed", idle)
                    self.sessions.pop(token, None)
                    _close_quietly(conn)
                    self._forget(token)

    def _forget(self, token: str) -> None:
        self.conns.pop(token, None)
        self.last.pop(token, None)
        self.busy.pop(token, None)
        self.checked.discard(token)

    def close_all(self) -> None:
        with self.lock:
            conns = {**self.conns, **self.sessions}
            for conn in conns.values():
                _rollback_open_transaction(conn)
                _close_quietly(conn)
            self.sessions.clear()
            self.conns.clear()


def _rollback_open_transaction(conn: Any) -> bool:
    """Roll back the session's open DuckDB transaction; False when none was open."""
    duck = getattr(conn, "_duck_conn", None)  # fakesnow 0.12 FakeSnowflakeConnection
    if duck is None:
        return False
    try:
        duck.rollback()
    except Exception:  # noqa: BLE001 - "no transaction is active", or already closed
        return False
    return True


def _close_quietly(conn: Any) -> None:
    with contextlib.suppress(Exception):
        conn.close()


# --------------------------------------------------------------- fakesnow patches


def _send_timestamp_nulls() -> None:
    """fakesnow 0.12 encodes a null TIMESTAMP as epoch 0; keep the null (idempotent)."""
    import fakesnow.arrow as fs_arrow
    import pyarrow as pa

    original = fs_arrow.timestamp_to_sf_struct
    if getattr(original, "_memberscore_nulls", False):
        return

    def with_nulls(ts: Any) -> Any:
        out = original(ts)
        if isinstance(ts, pa.ChunkedArray):
            ts = ts.combine_chunks()
        if ts.null_count:
            out = pa.StructArray.from_arrays(out.flatten(), fields=list(out.type),
                                             mask=ts.is_null())
        return out

    with_nulls._memberscore_nulls = True  # type: ignore[attr-defined]
    fs_arrow.timestamp_to_sf_struct = with_nulls


def _translate_md5_number_lower64() -> None:
    """Snowflake's MD5_NUMBER_LOWER64(s) is the digest's low 8 bytes read big-endian, an
    unsigned 64-bit integer: for DuckDB, the last 16 hex digits of md5(s) cast from
    hex.  (DuckDB's own md5_number_lower reads the bytes little-endian: a different
    number.)  Idempotent; affects sqlglot's DuckDB output in this process only."""
    from sqlglot import exp
    from sqlglot.generators.duckdb import DuckDBGenerator

    def lower64(generator: Any, expression: exp.Expression) -> str:
        return (f"CAST('0x' || SUBSTRING(MD5({generator.sql(expression, 'this')}), 17) "
                "AS UBIGINT)")

    DuckDBGenerator.TRANSFORMS[exp.MD5NumberLower64] = lower64


def _use_stage_folder(folder: Path) -> None:
    """Keep internal-stage files under the warehouse folder (cleaned at start and stop)."""
    import fakesnow.transforms.stage as fs_stage

    previous = Path(fs_stage.LOCAL_BUCKET_PATH)
    if previous != folder and previous.name.startswith("fakesnow_bucket_"):
        with contextlib.suppress(OSError):
            previous.rmdir()  # the empty temp folder fakesnow made at import
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    fs_stage.LOCAL_BUCKET_PATH = str(folder)


# --------------------------------------------------------------- the in-process server


_LOCKED_BY = re.compile(r"PID (\d+)")


class LocalServer:
    """The server this process runs for one warehouse folder (at most one per process:
    fakesnow's server keeps its sessions in module globals)."""

    def __init__(self, directory: Path, lock_file: Any, address: ServerAddress,
                 uvicorn_server: Any, thread: threading.Thread, watch: _SessionWatch,
                 fake: Any, previous_fake: Any) -> None:
        self.directory = directory
        self.address = address
        self.refs = 0
        self._lock_file = lock_file
        self._uvicorn = uvicorn_server
        self._thread = thread
        self._watch = watch
        self._fake = fake
        self._previous_fake = previous_fake
        self._stop = threading.Event()
        self._sweeper = threading.Thread(target=self._sweep, name="memberscore-warehouse-sweep",
                                         daemon=True)
        self._sweeper.start()

    def _sweep(self) -> None:
        while not self._stop.wait(1.0):
            try:
                self._watch.sweep()
            except Exception:
                log.debug("local warehouse sweep failed", exc_info=True)

    @classmethod
    def start(cls, directory: Path, lock_file: Any, *, database: str, schema: str, host: str,
              port: int | None, idle_transaction_seconds: float,
              log_level: int) -> LocalServer:
        """Start serving `directory` (the caller holds its lock)."""
        try:
            import fakesnow.server as fs_server
            import uvicorn
            from fakesnow.instance import FakeSnow
        except ImportError as exc:
            raise MissingDependencyError(
                "the local warehouse needs fakesnow[server]; install memberscore with the "
                "`local` extra (`make test` or `pip install -e .[local]`)"
            ) from exc

        logging.getLogger("fakesnow.server").setLevel(log_level)
        # sqlglot warns about every statement it cannot parse fully (REMOVE, ...), and
        # fakesnow's cursor about an extra copy of result rows: neither is actionable.
        logging.getLogger("sqlglot").setLevel(logging.ERROR)
        warnings.filterwarnings("ignore", message="Arrow output on a DB-API result",
                                category=UserWarning)
        _send_timestamp_nulls()
        _translate_md5_number_lower64()
        _use_stage_folder(directory / STAGE_DIR)
        fake = FakeSnow(db_path=directory)
        try:
            # Attach the database now, so a file held by another program fails here.
            fake.connect(database, schema).close()
        except Exception as exc:  # noqa: BLE001 - duckdb raises IOException and others
            with contextlib.suppress(Exception):
                fake.duck_conn.close()
            text = str(exc)
            pid = _LOCKED_BY.search(text)
            if "lock" in text.lower():
                raise WarehouseError(
                    f"the warehouse database {directory / (database + '.db')} is locked by "
                    f"another program{f' (PID {pid.group(1)})' if pid else ''} that is not a "
                    "memberscore server for this home; close it (a DuckDB shell or notebook?) "
                    "and retry"
                ) from None
            raise WarehouseError(
                f"could not open the warehouse database under {directory}: "
                f"{text.splitlines()[0] if text else type(exc).__name__}"
            ) from None

        previous_fake = fs_server.shared_fs
        fs_server.shared_fs = fake
        fs_server.sessions.clear()
        watch = _SessionWatch(fs_server.app, fs_server.sessions, idle_transaction_seconds)
        # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets whose proto
        # says TCP, and accepted sockets inherit it (see the module docstring).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.bind((host, port or 0))
        except OSError as exc:
            sock.close()
            fs_server.shared_fs = previous_fake
            fake.duck_conn.close()
            raise WarehouseError(
                f"the local warehouse cannot listen on {host}:{port}: {exc.strerror}; "
                "choose another port (or omit it for a free one)"
            ) from None
        bound_port = sock.getsockname()[1]
        config = uvicorn.Config(watch, host=host, port=bound_port, log_config=None,
                                access_log=False, lifespan="off")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                                  name="memberscore-warehouse", daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while thread.is_alive() and not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        if not server.started:
            server.should_exit = True
            sock.close()
            fs_server.shared_fs = previous_fake
            fake.duck_conn.close()
            raise WarehouseError(f"the local warehouse did not start on {host}:{bound_port}")
        address = ServerAddress(
            host=host, port=bound_port, pid=os.getpid(), database=database, schema=schema,
            started_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            directory=str(directory),
        )
        _SERVERS.write_state(directory, address)
        log.info("local warehouse serving %s on http://%s:%d", directory, host, bound_port)
        return cls(directory, lock_file, address, server, thread, watch, fake, previous_fake)

    def stop(self) -> None:
        """Stop listening, roll back open transactions, close the database, unlock."""
        import fakesnow.server as fs_server

        self._stop.set()
        self._uvicorn.should_exit = True
        self._thread.join(timeout=30)
        self._sweeper.join(timeout=5)
        self._watch.close_all()
        with contextlib.suppress(Exception):
            self._fake.duck_conn.close()  # checkpoints and releases DuckDB's file lock
        fs_server.shared_fs = self._previous_fake
        _SERVERS.forget_state(self.directory)
        shutil.rmtree(self.directory / STAGE_DIR, ignore_errors=True)
        with contextlib.suppress(OSError):
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
        self._lock_file.close()
        log.info("local warehouse stopped (%s)", self.directory)


atexit.register(_SERVERS.stop_all)


def serving_here(directory: Path) -> ServerAddress | None:
    """The address when this process serves `directory`, else None."""
    server = _SERVERS.serving_here(directory)
    return None if server is None else server.address


@contextlib.contextmanager
def local_warehouse(
    directory: Path,
    *,
    database: str,
    schema: str,
    host: str = "127.0.0.1",
    port: int | None = None,
    idle_transaction_seconds: float = DEFAULT_IDLE_TRANSACTION_SECONDS,
    wait_seconds: float = 30.0,
    must_serve: bool = False,
    log_level: int = logging.CRITICAL,
) -> Iterator[ServerAddress]:
    """The address of the server for `directory`: the one already running (in this
    process or another), else one started here and stopped when the block ends.

    `must_serve` (for `memberscore warehouse`) refuses to use another process's server.
    `log_level` is for fakesnow's own request log (quiet inside jobs).
    """
    directory = directory.resolve()
    check_loopback(host)

    def start(lock_file: Any) -> LocalServer:
        return LocalServer.start(directory, lock_file, database=database, schema=schema,
                                 host=host, port=port,
                                 idle_transaction_seconds=idle_transaction_seconds,
                                 log_level=log_level)

    with _SERVERS.use(directory, start, here=lambda server: server.address.endpoint.url,
                      wait_seconds=wait_seconds, must_serve=must_serve) as found:
        yield found.address if isinstance(found, LocalServer) else found
