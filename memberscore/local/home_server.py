"""One local server per home, found or started: what the local warehouse and the local
Kafka broker share.

Each serves one folder of `$MEMBERSCORE_HOME` (`warehouse/`, `broker/`) and may be
served by any process of that home:

- a lock file is held with `flock` by the serving process for as long as it serves.
  The kernel releases it when that process ends, however it ends (even `kill -9`),
  so "lock free" means "nobody serves", with no stale-pid guessing;
- a JSON state file (written once the server answers) says where: host, port, pids.

`HomeServers.use(...)` yields the server this process runs for the folder (counting
its users, and stopping it when the last one leaves), or, when another process holds
the lock, that process's recorded address once it answers; it starts one here when
nobody serves.  `must_serve` (the foreground commands) refuses to use another's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import ipaddress
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, Generic, Protocol, TypeVar

from memberscore.errors import ConfigError, MemberscoreError

log = logging.getLogger(__name__)


class Running(Protocol):
    """A server this process runs for one folder."""

    directory: Path
    refs: int

    def stop(self) -> None: ...


S = TypeVar("S", bound=Running)
A = TypeVar("A")  # a server's address as its state file records it (a dataclass)


def read_json(path: Path, cls: type[A]) -> A | None:
    """The recorded address, or None when absent or unreadable."""
    try:
        return cls(**json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


def write_json(path: Path, address: Any) -> None:
    """Write the state file whole (a reader never sees half of it)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(dataclasses.asdict(address), indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def answers(pid: int, host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether process `pid` exists and `host:port` accepts connections."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another user
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def check_loopback(host: str, *, what: str = "the local warehouse",
                   key: str = "snowflake.host") -> str:
    """A local server has no authentication, so it only listens on loopback."""
    try:
        resolved = socket.gethostbyname(host)
        loopback = ipaddress.ip_address(resolved).is_loopback
    except (OSError, ValueError):
        loopback = False
    if not loopback:
        raise ConfigError(
            f"{key} is {host!r}, but {what} has no authentication "
            "and listens on loopback only; use 127.0.0.1"
        )
    return host


@dataclasses.dataclass
class HomeServers(Generic[S, A]):
    """The servers of one kind (warehouse, broker) this process knows: at most one it
    runs, for one folder (see the module doc)."""

    kind: str  # "local warehouse"
    lock_file: str
    state_file: str
    error: type[MemberscoreError]
    address_cls: type[A]
    owner: Callable[[A], int]  # the pid that holds the lock
    alive: Callable[[A], bool]
    where: Callable[[A], str]  # for messages: a URL, a bootstrap address
    use_hint: str  # what to do with another process's server
    current: S | None = None
    guard: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def read_state(self, directory: Path) -> A | None:
        return read_json(directory / self.state_file, self.address_cls)

    def write_state(self, directory: Path, address: A) -> None:
        write_json(directory / self.state_file, address)

    def forget_state(self, directory: Path) -> None:
        """Remove the state file if this process wrote it."""
        state = self.read_state(directory)
        if state is not None and self.owner(state) == os.getpid():
            with contextlib.suppress(OSError):
                (directory / self.state_file).unlink()

    def serving_here(self, directory: Path) -> S | None:
        with self.guard:
            if self.current is not None and self.current.directory == directory.resolve():
                return self.current
        return None

    def stop_all(self) -> None:
        with self.guard:
            if self.current is not None:
                self.current.stop()
                self.current = None

    @contextlib.contextmanager
    def use(self, directory: Path, start: Callable[[IO[str]], S], *,
            here: Callable[[S], str], wait_seconds: float,
            must_serve: bool) -> Iterator[S | A]:
        """This process's server for `directory` (S), another process's recorded
        address (A), or a server started here with `start(lock_file)`; see the module
        doc.  `here(server)` says where a server of this process listens."""
        directory = directory.resolve()
        directory.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + wait_seconds
        while True:
            with self.guard:
                if self.current is not None:
                    if self.current.directory != directory:
                        raise self.error(
                            f"this process already serves the {self.kind} "
                            f"{self.current.directory}; it cannot also serve {directory} "
                            f"(one {self.kind} per process)")
                    if must_serve:
                        raise self.error(
                            f"the {self.kind} {directory} is already served by this process "
                            f"on {here(self.current)}")
                    self.current.refs += 1
                    owned = self.current
                    break
                lock_file = open(directory / self.lock_file, "a+")  # noqa: SIM115 - held while serving
                try:
                    fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    lock_file.close()
                else:
                    try:
                        self.current = start(lock_file)
                    except BaseException:
                        with contextlib.suppress(OSError):
                            fcntl.flock(lock_file, fcntl.LOCK_UN)
                        lock_file.close()
                        raise
                    self.current.refs = 1
                    owned = self.current
                    break
            # Another process holds the lock: it serves, or is starting, or is stopping.
            state = self.read_state(directory)
            if state is not None and self.owner(state) != os.getpid() and self.alive(state):
                if must_serve:
                    raise self.error(
                        f"the {self.kind} {directory} is already served by process "
                        f"{self.owner(state)} on {self.where(state)}; {self.use_hint}, or "
                        "stop that process first")
                log.info("using the %s served by process %d on %s", self.kind,
                         self.owner(state), self.where(state))
                yield state
                return
            if time.monotonic() > deadline:
                raise self.error(
                    f"the {self.kind} {directory} is locked by another process, which "
                    f"does not answer{f' on {self.where(state)}' if state else ''} after "
                    f"{wait_seconds:.0f}s; if that process is hung, stop it (pid "
                    f"{self.owner(state) if state else 'unknown'}) and retry")
            time.sleep(0.2)

        try:
            yield owned
        finally:
            with self.guard:
                owned.refs -= 1
                if owned.refs <= 0 and self.current is owned:
                    self.current = None
                    owned.stop()
