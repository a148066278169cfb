"""Settings -> a Snowflake connection, and the one wrapper every statement goes through.

Credentials: `snowflake.private_key` (PEM, with an optional passphrase) wins over
`snowflake.password`; both are `Secret` references (`${ENV_VAR}` or a Databricks
secret scope), revealed only here, just before connecting, and never logged, put in
an exception or kept on our objects beyond the connect call.  Every error message is
also scrubbed of the revealed values, belt and braces.

Statements: `?` placeholders bound server-side (paramstyle qmark), so values never
become SQL text; the only SQL text we build is identifiers that passed
`memberscore.warehouse.identifiers`.  Each session pins TIMEZONE=UTC and
DATE_OUTPUT_FORMAT=YYYY-MM-DD (the checksum relies on the latter) and tags queries
with the job and run id.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from memberscore.config import Secret, SnowflakeSettings
from memberscore.errors import ConfigError, MissingDependencyError, WarehouseError

if TYPE_CHECKING:
    from snowflake.connector import SnowflakeConnection

log = logging.getLogger(__name__)

# The local server has no authentication; the connector still wants a password.
LOCAL_PASSWORD = "local"


@dataclass(frozen=True)
class Endpoint:
    """Where to reach a Snowflake-compatible service other than <account>.snowflakecomputing.com."""

    host: str
    port: int
    protocol: str

    @property
    def url(self) -> str:
        return f"{self.protocol}://{self.host}:{self.port}"


@dataclass(frozen=True)
class ConnectionSpec:
    """Everything needed to connect, validated; secrets stay unrevealed references."""

    account: str
    user: str
    role: str | None
    warehouse: str | None
    database: str
    schema: str
    endpoint: Endpoint | None
    password: Secret | None
    private_key: Secret | None
    private_key_passphrase: Secret | None
    login_timeout_seconds: int
    network_timeout_seconds: int
    local: bool

    @classmethod
    def from_settings(cls, settings: SnowflakeSettings,
                      endpoint: Endpoint | None = None) -> ConnectionSpec:
        """The `snowflake:` conf section (its names and timeouts were checked when the
        settings were built, memberscore.config) with the identifiers upper-cased;
        `endpoint` overrides host/port/protocol (the local server's discovered address)."""
        if endpoint is None and settings.host:
            port = settings.port or (443 if settings.protocol == "https" else 80)
            endpoint = Endpoint(settings.host, port, settings.protocol)
        return cls(
            account=settings.account,
            user=settings.user,
            role=settings.role.upper() if settings.role else None,
            warehouse=settings.warehouse.upper() if settings.warehouse else None,
            database=settings.database.upper(),
            schema=settings.schema.upper(),
            endpoint=endpoint,
            password=settings.password,
            private_key=settings.private_key,
            private_key_passphrase=settings.private_key_passphrase,
            login_timeout_seconds=settings.login_timeout_seconds,
            network_timeout_seconds=settings.network_timeout_seconds,
            local=settings.local_server,
        )

    @property
    def where(self) -> str:
        """Safe to log and to show: account, user, database.schema and address."""
        at = self.endpoint.url if self.endpoint else f"{self.account}.snowflakecomputing.com"
        return f"account {self.account} as {self.user} at {at}, {self.database}.{self.schema}"

    @property
    def credential_reference(self) -> str:
        """Which conf reference holds the credential (the reference, never the value)."""
        if self.private_key is not None:
            return f"snowflake.private_key = {self.private_key.reference}"
        if self.password is not None:
            return f"snowflake.password = {self.password.reference}"
        return "no credential (local warehouse)" if self.local else "no credential"


def _load_private_key(spec: ConnectionSpec, revealed: list[str]) -> Any:
    """The private key object from the PEM secret (and its passphrase, when set)."""
    assert spec.private_key is not None
    pem = spec.private_key.reveal()
    revealed.append(pem)
    passphrase = None
    if spec.private_key_passphrase is not None:
        passphrase = spec.private_key_passphrase.reveal()
        revealed.append(passphrase)
    try:
        from cryptography.hazmat.primitives import serialization
    except ImportError as exc:  # pragma: no cover - a dependency of the connector
        raise MissingDependencyError("key-pair auth needs the `cryptography` package") from exc
    reason = None
    try:
        return serialization.load_pem_private_key(
            pem.encode("utf-8"), password=passphrase.encode("utf-8") if passphrase else None
        )
    except TypeError:
        reason = ("the key is encrypted but no passphrase is configured"
                  if passphrase is None else "a passphrase is configured but the key is "
                  "not encrypted")
    except (ValueError, Exception):  # noqa: BLE001 - cryptography raises several kinds
        reason = "it is not a PEM private key, or the passphrase is wrong"
    raise ConfigError(
        f"could not read the Snowflake private key ({spec.private_key.reference}"
        + (f", passphrase {spec.private_key_passphrase.reference}"
           if spec.private_key_passphrase else "")
        + f"): {reason}"
    )


def _scrub(text: str, revealed: Sequence[str]) -> str:
    for value in revealed:
        if value:
            text = text.replace(value, "***")
            for line in value.splitlines():
                if len(line.strip()) >= 8:
                    text = text.replace(line.strip(), "***")
    return text


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def connect(spec: ConnectionSpec, *, purpose: str,
            timeout_seconds: float | None = None) -> WarehouseConnection:
    """Open a session; WarehouseError in one line (never the secret) when it fails.

    `purpose` (e.g. `publish 20261121T043000Z-3fa9c1`) becomes the session's QUERY_TAG.
    `timeout_seconds` bounds the login and every request of the session (a read
    service answers within it or not at all); without it the conf's timeouts apply.
    """
    try:
        import snowflake.connector
        from snowflake.connector.errors import Error as SnowflakeError
    except ImportError as exc:  # pragma: no cover - an install dependency
        raise MissingDependencyError(
            "snowflake-connector-python is not installed; install memberscore's dependencies"
        ) from exc

    revealed: list[str] = []
    kwargs: dict[str, Any] = {
        "account": spec.account,
        "user": spec.user,
        "database": spec.database,
        "schema": spec.schema,
        "login_timeout": spec.login_timeout_seconds,
        "network_timeout": spec.network_timeout_seconds,
        "paramstyle": "qmark",
        "application": "memberscore",
        "autocommit": True,
        "session_parameters": {
            "TIMEZONE": "UTC",
            "DATE_OUTPUT_FORMAT": "YYYY-MM-DD",
            "QUERY_TAG": f"memberscore {purpose}"[:2000],
        },
    }
    if spec.role:
        kwargs["role"] = spec.role
    if spec.warehouse:
        kwargs["warehouse"] = spec.warehouse
    if spec.endpoint:
        kwargs.update(host=spec.endpoint.host, port=spec.endpoint.port,
                      protocol=spec.endpoint.protocol)
    if spec.local:
        # No telemetry and no cloud-platform probing (calls to AWS/GCP/Azure metadata
        # endpoints) from a laptop; a long COPY may take minutes to answer.
        kwargs["session_parameters"]["CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED"] = False
        os.environ.setdefault("SNOWFLAKE_DISABLE_PLATFORM_DETECTION", "true")
        kwargs["socket_timeout"] = 3600
    else:
        # no single request may wait longer than the whole bound (a server that
        # accepts and never answers would hold the login for the connector's default)
        kwargs["socket_timeout"] = spec.network_timeout_seconds
    if timeout_seconds is not None:
        kwargs.update(login_timeout=timeout_seconds, network_timeout=timeout_seconds,
                      socket_timeout=timeout_seconds)

    if spec.private_key is not None:
        kwargs["private_key"] = _load_private_key(spec, revealed)
    elif spec.password is not None:
        password = spec.password.reveal()
        revealed.append(password)
        kwargs["password"] = password
    elif spec.local:
        kwargs["password"] = LOCAL_PASSWORD
    else:
        raise ConfigError(
            "no Snowflake credential configured: set snowflake.private_key (and "
            "private_key_passphrase) or snowflake.password to a ${ENV_VAR} or "
            "{{secrets/<scope>/<key>}} reference in conf"
        )

    start = time.monotonic()
    try:
        raw = snowflake.connector.connect(**kwargs)
    except SnowflakeError as exc:
        errno = getattr(exc, "errno", None)
        message = _scrub(getattr(exc, "raw_msg", None) or _first_line(exc), revealed)
        raise WarehouseError(
            f"could not connect to Snowflake ({spec.where}, credential "
            f"{spec.credential_reference}): {f'{errno}: ' if errno else ''}"
            f"{message.splitlines()[0] if message else 'no detail'}; check the "
            "snowflake section of the conf and that the credential is current"
        ) from None
    except (OSError, ValueError, TypeError) as exc:
        raise WarehouseError(
            f"could not connect to Snowflake ({spec.where}): {type(exc).__name__}: "
            f"{_scrub(_first_line(exc), revealed)}"
        ) from None
    finally:
        kwargs.pop("password", None)
        kwargs.pop("private_key", None)
    log.info("connected to Snowflake %s in %.1fs", spec.where, time.monotonic() - start)
    return WarehouseConnection(raw, spec, revealed)


class WarehouseConnection:
    """One Snowflake session: statements with bound values and one-line errors."""

    def __init__(self, raw: SnowflakeConnection, spec: ConnectionSpec,
                 revealed: Sequence[str]) -> None:
        self._raw = raw
        self.spec = spec
        # Kept only to scrub error text; never logged or shown.
        self._revealed = tuple(revealed)
        self._in_transaction = False
        self.statements = 0  # statements sent on this session, for figures and tests

    def __enter__(self) -> WarehouseConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _error(self, what: str, exc: BaseException) -> WarehouseError:
        errno = getattr(exc, "errno", None)
        detail = getattr(exc, "raw_msg", None) or _first_line(exc)
        detail = _scrub(str(detail).strip().splitlines()[0] if str(detail).strip() else "",
                        self._revealed)
        code = f"{errno}: " if errno and not detail[:1].isdigit() else ""
        hint = ""
        if self.spec.local and "HTTP 500" in detail:
            hint = ("; the local warehouse could not run it (re-run with --verbose for its "
                    "log: a write conflicting with another session's open transaction is "
                    "the usual cause, and such a transaction is rolled back once its "
                    "session has been silent for a while)")
        return WarehouseError(
            f"{what} failed in Snowflake {self.spec.database}.{self.spec.schema}: "
            f"{code}{detail or type(exc).__name__}{hint}",
            errno=errno if isinstance(errno, int) else None,
        )

    def execute(self, sql: str, params: Sequence[Any] = (), *, what: str) -> list[tuple[Any, ...]]:
        """Run one statement with `?`-bound `params`; return all its rows.

        `what` names the step for the error message ("delete 2026-11-20 from MEMBER_SCORES").
        """
        from snowflake.connector.errors import Error as SnowflakeError

        log.debug("snowflake: %s", what)
        self.statements += 1
        try:
            with self._raw.cursor() as cursor:
                cursor.execute(sql, tuple(params) if params else None)
                return list(cursor.fetchall()) if cursor.description else []
        except SnowflakeError as exc:
            raise self._error(what, exc) from exc

    def query(self, sql: str, params: Sequence[Any] = (), *,
              what: str) -> list[dict[str, Any]]:
        """Run one `?`-bound query; its rows as mappings of upper-case column names."""
        from snowflake.connector.errors import Error as SnowflakeError

        log.debug("snowflake: %s", what)
        self.statements += 1
        try:
            with self._raw.cursor() as cursor:
                cursor.execute(sql, tuple(params) if params else None)
                names = [str(column[0]).upper() for column in cursor.description or ()]
                return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        except SnowflakeError as exc:
            raise self._error(what, exc) from exc

    def execute_count(self, sql: str, params: Sequence[Any] = (), *, what: str) -> int:
        """Run a DML statement and return the rows it affected."""
        from snowflake.connector.errors import Error as SnowflakeError

        log.debug("snowflake: %s", what)
        self.statements += 1
        try:
            with self._raw.cursor() as cursor:
                cursor.execute(sql, tuple(params) if params else None)
                return int(cursor.rowcount or 0)
        except SnowflakeError as exc:
            raise self._error(what, exc) from exc

    @contextmanager
    def transaction(self, what: str) -> Iterator[None]:
        """BEGIN ... COMMIT; any exception (or kill) before COMMIT rolls everything back."""
        if self._in_transaction:
            raise WarehouseError(f"{what}: a transaction is already open on this session")
        self.execute("BEGIN", what=f"begin {what}")
        self._in_transaction = True
        try:
            yield
            self.execute("COMMIT", what=f"commit {what}")
        except BaseException:
            try:
                self.execute("ROLLBACK", what=f"roll back {what}")
            except WarehouseError as rollback_error:
                # The server rolls back a session's open transaction when the session
                # ends; say so, and keep the original error as the one reported.
                log.warning("%s; the transaction ends with the session", rollback_error)
            raise
        finally:
            self._in_transaction = False

    def close(self) -> None:
        """End the session (an open transaction is rolled back by the server)."""
        try:
            self._raw.close()
        except Exception as exc:  # noqa: BLE001 - closing must not mask the real outcome
            log.debug("closing the Snowflake session: %s", type(exc).__name__)
