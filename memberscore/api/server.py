"""Serve the scores API with waitress, a production WSGI server (threads, no fork):
one process, one pool of warehouse sessions shared by `api.threads` request threads.

`api_server(settings, warehouse_dir)` is a context manager: it finds the warehouse
(starting the local one under `warehouse_dir` when the environment uses it and nobody
serves it), reveals the bearer tokens, binds the listening socket and yields the
running `ApiServer` (its `url`), then stops the server and closes the pool.
`memberscore api` serves it in the foreground; the tests and the bench start it on a
free loopback port (`port=0`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memberscore.api.app import create_app
from memberscore.api.pool import SessionPool
from memberscore.api.reads import PublishedReads
from memberscore.config import Settings
from memberscore.errors import ConfigError, MissingDependencyError
from memberscore.warehouse.session import warehouse_spec

log = logging.getLogger(__name__)

MIN_TOKEN_LENGTH = 16


@dataclass(frozen=True)
class ApiServer:
    host: str
    port: int
    warehouse: str  # where the warehouse is, safe to show

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def revealed_tokens(settings: Settings) -> list[str]:
    """The bearer tokens of conf `api.tokens`, revealed; ConfigError (naming the
    reference, never a value) when one is unset or too short to be a secret."""
    tokens = []
    for secret in settings.api.tokens:
        value = secret.reveal()
        if len(value) < MIN_TOKEN_LENGTH:
            raise ConfigError(
                f"the API token {secret.reference} is shorter than {MIN_TOKEN_LENGTH} "
                "characters; use a long random one, e.g. `python -c \"import secrets; "
                "print(secrets.token_urlsafe(32))\"`"
            )
        tokens.append(value)
    return tokens


@contextmanager
def api_server(settings: Settings, warehouse_dir: Path, *, host: str | None = None,
               port: int | None = None, verbose: bool = False) -> Iterator[ApiServer]:
    """The API serving in a thread of this process until the context ends."""
    try:
        from waitress.server import create_server
    except ImportError as exc:  # pragma: no cover - an install dependency
        raise MissingDependencyError("waitress is not installed; install memberscore's "
                                     "dependencies") from exc
    api = settings.api
    tokens = revealed_tokens(settings)  # before anything starts: a missing one fails fast
    with warehouse_spec(settings, warehouse_dir, verbose=verbose) as spec:
        pool = SessionPool(spec, size=api.pool_size, timeout_seconds=api.timeout_seconds)
        app = create_app(PublishedReads(settings, pool), tokens, where=spec.where)
        del tokens
        bind_host = host if host is not None else api.host
        bind_port = port if port is not None else api.port
        try:
            server: Any = create_server(
                app, host=bind_host, port=bind_port, threads=api.threads,
                ident="memberscore", connection_limit=max(100, 4 * api.threads),
                channel_timeout=max(30, 4 * api.timeout_seconds),
                clear_untrusted_proxy_headers=True)
        except OSError as exc:
            pool.dispose()
            raise MissingDependencyError(
                f"the API cannot listen on {bind_host}:{bind_port}: {exc.strerror or exc}; "
                "choose another --port (0 picks a free one)") from None
        thread = threading.Thread(target=server.run, name="memberscore-api", daemon=True)
        thread.start()
        address = ApiServer(bind_host, int(server.effective_port), spec.where)
        log.info("scores API serving on %s (warehouse %s)", address.url, spec.where)
        try:
            yield address
        finally:
            server.close()
            thread.join(timeout=10)
            pool.dispose()
