"""The local Kafka broker: Apache Kafka in KRaft mode, one node, under
`$MEMBERSCORE_HOME/broker`.

The bank's platform runs Kafka; locally the same broker runs as a child JVM of the
process that needs it, from the jars `make install` fetched with Maven
(`<venv>/share/memberscore/broker-jars`, pinned in requirements/broker-jars.txt).
One broker per home, found the way the local warehouse is found
(`memberscore.local.home_server`):

- `broker.lock` is held with `flock` by the process that started the broker, and
  inherited by the JVM, so the kernel releases it only when both are gone (even after
  `kill -9`): "lock free" means "nobody serves".  The JVM is also asked to stop
  (SIGTERM) when the thread that started it dies, so a killed job leaves no broker.
- `broker.json` (written once the broker answers) says where: host, port, pids.
- `data/` holds the topics (formatted once per home), `broker.log` the broker's log,
  `server.properties` the configuration of the last start.

`local_broker(...)` uses the running broker when the lock is held (waiting for
`broker.json` while it starts), and otherwise starts one that is stopped when the
block ends.  `memberscore broker` is the same broker in the foreground.  Each start
listens on free loopback ports (the topics survive restarts; the address is read from
`broker.json`, never configured).  The broker has no authentication: loopback only.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import ctypes
import datetime as dt
import fcntl
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from memberscore.errors import BrokerError, MissingDependencyError
from memberscore.local.home_server import HomeServers, answers, check_loopback

log = logging.getLogger(__name__)

STATE_FILE = "broker.json"
LOCK_FILE = "broker.lock"
LOG_FILE = "broker.log"
DATA_DIR = "data"
PROPERTIES_FILE = "server.properties"
JARS_MANIFEST = "broker-jars.txt"
# the broker's heap: a handful of small topics
HEAP = "256m"
STOP_SECONDS = 30.0

_LOG4J2 = """\
# written by memberscore at each start of the local broker
status = error
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log_file}
appender.file.append = true
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d{{ISO8601}}] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.file.ref = file
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = INFO
logger.broker.name = kafka.server.BrokerServer
logger.broker.level = INFO
"""


def default_jars_dir() -> Path:
    """Where `make install` puts the broker's jars: `<venv>/share/memberscore/broker-jars`."""
    return Path(sys.prefix) / "share" / "memberscore" / "broker-jars"


def broker_jars(jars_dir: Path | None = None) -> Path:
    """The jars folder, checked: MissingDependencyError unless a fetch finished there."""
    folder = jars_dir or default_jars_dir()
    if not (folder / JARS_MANIFEST).is_file() or not any(folder.glob("kafka_2.13-*.jar")):
        raise MissingDependencyError(
            f"the local Kafka broker's jars are not installed in {folder}; run `make install` "
            "(it fetches them with Maven, pinned in requirements/broker-jars.txt)"
        )
    if shutil.which("java") is None:
        raise MissingDependencyError("the local Kafka broker needs Java 17 ('java' not found)")
    return folder


@dataclass(frozen=True)
class BrokerAddress:
    """Where a local broker listens, as recorded in `broker.json`."""

    host: str
    port: int
    pid: int  # the broker's JVM
    owner_pid: int  # the process that started it
    started_at: str
    directory: str

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"


def _listens(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _properties(directory: Path, host: str, port: int, controller_port: int) -> str:
    return "\n".join([
        "# written by memberscore at each start of the local broker (KRaft, one node)",
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.voters=1@{host}:{controller_port}",
        f"listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}",
        f"advertised.listeners=PLAINTEXT://{host}:{port}",
        "controller.listener.names=CONTROLLER",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name=PLAINTEXT",
        f"log.dirs={directory / DATA_DIR}",
        # one partition per topic: events of every day in one order
        "num.partitions=1",
        "auto.create.topics.enable=true",
        "offsets.topic.replication.factor=1",
        "offsets.topic.num.partitions=1",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "share.coordinator.state.topic.replication.factor=1",
        "share.coordinator.state.topic.min.isr=1",
        "group.initial.rebalance.delay.ms=0",
        # keep what was sent: the local topics are small
        "log.retention.hours=-1",
        "",
    ])


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the thread that started it dies
    (prctl PR_SET_PDEATHSIG), so a killed job never leaves a broker behind."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


def _last_error(log_file: Path) -> str:
    """The broker log's last ERROR (or last) line, for a one-line failure."""
    try:
        lines = [ln.strip() for ln in log_file.read_text(encoding="utf-8",
                                                          errors="replace").splitlines()
                 if ln.strip()]
    except OSError:
        return ""
    errors = [ln for ln in lines if " ERROR " in ln or "Exception" in ln]
    return (errors or lines or [""])[-1][:300]


class LocalBroker:
    """The broker this process started for one home (at most one per process)."""

    def __init__(self, directory: Path, lock_file: IO[str], process: subprocess.Popen[bytes],
                 address: BrokerAddress) -> None:
        self.directory = directory
        self.address = address
        self.refs = 0
        self._lock_file = lock_file
        self._process = process
        self._ready = threading.Event()
        self._failure: BaseException | None = None

    @classmethod
    def launch(cls, directory: Path, lock_file: IO[str], *, host: str,
               port: int | None, jars_dir: Path | None = None) -> LocalBroker:
        """Start the JVM (formatting the data folder first on a new home) and return at
        once; `wait_ready` waits until it answers.  The caller holds the lock."""
        jars = broker_jars(jars_dir)
        port = port or _free_port(host)
        controller_port = _free_port(host)
        (directory / PROPERTIES_FILE).write_text(
            _properties(directory, host, port, controller_port), encoding="utf-8")
        log_file = directory / LOG_FILE
        (directory / "log4j2.properties").write_text(
            _LOG4J2.format(log_file=log_file), encoding="utf-8")
        java = [
            "java", "-Xms64m", f"-Xmx{HEAP}", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={directory / 'log4j2.properties'}",
            "-cp", f"{jars}/*",
        ]
        properties = str(directory / PROPERTIES_FILE)
        steps = []
        if not (directory / DATA_DIR / "meta.properties").is_file():
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            steps.append(" ".join([*map(_quote, java), "kafka.tools.StorageTool", "format",
                                   f"--cluster-id={cluster_id}", "-c", _quote(properties)]))
        steps.append("exec " + " ".join([*map(_quote, java), "kafka.Kafka", _quote(properties)]))
        with open(log_file, "ab") as out:
            out.write(f"--- memberscore: starting the broker on {host}:{port} "
                      f"({dt.datetime.now(dt.UTC).isoformat(timespec='seconds')})\n".encode())
            out.flush()
            process = subprocess.Popen(
                ["/bin/sh", "-c", " && ".join(steps)], stdin=subprocess.DEVNULL, stdout=out,
                stderr=out, cwd=directory, pass_fds=(lock_file.fileno(),),
                preexec_fn=_die_with_parent, start_new_session=True,
            )
        address = BrokerAddress(
            host=host, port=port, pid=process.pid, owner_pid=os.getpid(),
            started_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            directory=str(directory),
        )
        log.info("starting the local Kafka broker on %s (pid %d)", address.bootstrap_servers,
                 process.pid)
        return cls(directory, lock_file, process, address)

    def wait_ready(self, timeout: float = 60.0) -> BrokerAddress:
        """Block until the broker answers metadata requests (BrokerError when it exits
        or does not answer within `timeout`)."""
        if self._ready.is_set():
            return self.address
        if self._failure is not None:
            raise self._failure
        deadline = time.monotonic() + timeout
        host, port = self.address.host, self.address.port
        while not _listens(host, port, timeout=0.5):
            if self._process.poll() is not None:
                self._fail(f"the local Kafka broker exited with status "
                           f"{self._process.returncode} before listening on {host}:{port}")
            if time.monotonic() > deadline:
                self._fail(f"the local Kafka broker did not listen on {host}:{port} within "
                           f"{timeout:.0f}s")
            time.sleep(0.1)
        from confluent_kafka.admin import AdminClient

        from memberscore.events.kafka import client_log

        config: dict[str, Any] = {"bootstrap.servers": self.address.bootstrap_servers,
                                  "logger": client_log}
        admin = AdminClient(config)
        while True:
            try:
                admin.list_topics(timeout=max(1.0, deadline - time.monotonic()))
                break
            except Exception as exc:  # noqa: BLE001 - KafkaException while it starts
                if self._process.poll() is not None or time.monotonic() > deadline:
                    self._fail(f"the local Kafka broker on {host}:{port} does not answer: {exc}")
                time.sleep(0.2)
        _SERVERS.write_state(self.directory, self.address)
        self._ready.set()
        log.info("local Kafka broker ready on %s (%s)", self.address.bootstrap_servers,
                 self.directory)
        return self.address

    def _fail(self, message: str) -> None:
        detail = _last_error(self.directory / LOG_FILE)
        self._failure = BrokerError(
            f"{message}{f' ({detail})' if detail else ''}; its log is "
            f"{self.directory / LOG_FILE}")
        self.stop()
        raise self._failure

    def stop(self) -> None:
        """Ask the broker to shut down (SIGTERM), kill it after STOP_SECONDS, unlock."""
        if self._process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGTERM)
            try:
                self._process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait(timeout=10)
        _SERVERS.forget_state(self.directory)
        if not self._lock_file.closed:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
        log.info("local Kafka broker stopped (%s)", self.directory)


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


_SERVERS: HomeServers[LocalBroker, BrokerAddress] = HomeServers(
    kind="local broker", lock_file=LOCK_FILE, state_file=STATE_FILE, error=BrokerError,
    address_cls=BrokerAddress, owner=lambda a: a.owner_pid,
    alive=lambda a: answers(a.pid, a.host, a.port), where=lambda a: a.bootstrap_servers,
    use_hint="use it")
atexit.register(_SERVERS.stop_all)


def read_state(directory: Path) -> BrokerAddress | None:
    """The recorded broker address, or None when absent or unreadable."""
    return _SERVERS.read_state(directory)


@dataclass
class BrokerHandle:
    """A local broker in use: `address()` waits until it answers."""

    _broker: LocalBroker | None
    _remote: BrokerAddress | None

    def address(self, timeout: float = 60.0) -> BrokerAddress:
        if self._remote is not None:
            return self._remote
        assert self._broker is not None
        return self._broker.wait_ready(timeout)


@contextlib.contextmanager
def local_broker(directory: Path, *, host: str = "127.0.0.1", port: int | None = None,
                 wait_seconds: float = 60.0, must_serve: bool = False,
                 jars_dir: Path | None = None) -> Iterator[BrokerHandle]:
    """A handle on the broker of `directory`: the one already running (in this process
    or another), else one started here and stopped when the block ends.  A broker
    started here is launched at once and waited for on `handle.address()`, so the
    caller can do other work while the JVM starts.

    `must_serve` (for `memberscore broker`) refuses to use another process's broker.
    """
    directory = directory.resolve()
    check_loopback(host, what="the local broker", key="the broker's host")

    def start(lock_file: IO[str]) -> LocalBroker:
        return LocalBroker.launch(directory, lock_file, host=host, port=port,
                                  jars_dir=jars_dir)

    with _SERVERS.use(directory, start,
                      here=lambda broker: broker.address.bootstrap_servers,
                      wait_seconds=wait_seconds, must_serve=must_serve) as found:
        if isinstance(found, LocalBroker):
            yield BrokerHandle(found, None)
        else:
            yield BrokerHandle(None, found)


def describe(address: BrokerAddress) -> list[str]:
    """How to reach the broker, for `memberscore broker`."""
    return [
        f"local Kafka broker (KRaft, one node) serving {address.directory}",
        f"  bootstrap servers: {address.bootstrap_servers}",
        "  memberscore commands of this home find it on their own; other clients use the "
        "address above (it changes at each start)",
        "  stop with Ctrl-C",
    ]
