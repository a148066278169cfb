"""Publish one day of lake tables to Snowflake: bulk, atomic across the day's tables,
idempotent, reconciled, one publish of a day at a time.

0. The day's publish lock (`publish_lock.day_lock`): a second publish of the same day
   stops at once with PublishRunningError naming the run that holds it; spool
   folders that killed publishes left are removed.
1. Lake, for every table before Snowflake is touched: the lake exports the day's
   rows of the table's current Delta version (which is recorded) as Parquet files
   into a spool folder (`Lake.export_partition`: without Spark on delta-rs, in Spark
   on delta-spark), and the publisher computes the day's row count and key checksum
   from those files (`checksum.parquet_checksum`: the key columns only), so what is
   reconciled is exactly what is loaded.  A missing table or an empty day fails
   here, so nothing is published when any table is not ready.
2. Warehouse, on one session, every table loaded before any is swapped:
   - per table, one INFORMATION_SCHEMA query reads the target's and PUBLISH_LOG's
     columns; the target is created when missing (types from the Delta schema,
     `typemap`) or gains lake columns it lacks; PUBLISH_LOG and the named internal
     stage MEMBERSCORE_PUBLISH are created once per session when needed; staging
     tables of this table-day left by killed runs are dropped;
   - a transient staging table with the target's columns, named for this run
     (`<TARGET>__STAGING_<YYYYMMDD>_<token>`: two runs never share one), is created,
     the files are PUT to the stage and COPYed into it; COPY's own result must report
     every file loaded and the lake's row count;
   - ONE transaction for all the day's tables: per table, delete the day from the
     target, insert the staging rows (the inserted count must be the lake's), replace
     the table-day's PUBLISH_LOG row, then compute the target day's count and key
     checksum inside the transaction: anything but the lake's rolls back every table,
     so wrong rows are never committed and a reader never sees features without
     their scores;
   - after COMMIT each committed day is reconciled against the lake (count +
     checksum); a mismatch (another writer) raises WarehouseError;
   - the staging tables are dropped whatever happens.

A failure or a kill at any point before COMMIT leaves every target and PUBLISH_LOG as
they were (the transaction never committed); a rerun publishes the day again.

Per-step seconds are kept in `PublishedDay.seconds` (export, checksum, schema, stage,
put, copy, transaction, reconcile, cleanup).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import secrets
import shutil
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from memberscore.errors import InputError, TableError, WarehouseError
from memberscore.tables import OUTPUT_TABLES, TableSpec
from memberscore.warehouse.checksum import (
    DayChecksum,
    check_key_types,
    from_sql_row,
    parquet_checksum,
    sql_checksum_query,
)
from memberscore.warehouse.identifiers import identifier, run_id_path_part
from memberscore.warehouse.publish_lock import day_lock, remove_leftover_spools
from memberscore.warehouse.typemap import (
    Column,
    ExistingColumn,
    columns_for,
    create_table_sql,
    plan_schema,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from memberscore.config import Settings
    from memberscore.lake import Lake
    from memberscore.warehouse.connection import WarehouseConnection

log = logging.getLogger(__name__)


class FaultPoint(StrEnum):
    """The steps of a table publish at which a fault hook is called (tests and drills
    stop a publish there: `memberscore.local.faults`)."""

    AFTER_COPY = "after_copy"
    BETWEEN_TABLES = "between_tables"
    BEFORE_COMMIT = "before_commit"
    AFTER_COMMIT = "after_commit"


FaultHook = Callable[[FaultPoint, str, "WarehouseConnection"], None]


class CommitHooks(Protocol):
    """What else a publish does in Snowflake around its transaction (the "day
    published" event's outbox, memberscore.events): before BEGIN (DDL), inside the
    transaction after every table's swap (so it commits or rolls back with them), and
    after COMMIT and reconciliation (its result is kept in `PublishOutcome.after_commit`)."""

    def before_transaction(self, conn: WarehouseConnection) -> None: ...

    def in_transaction(self, conn: WarehouseConnection, day: dt.date, run_id: str,
                       published_at: dt.datetime) -> None: ...

    def after_commit(self, conn: WarehouseConnection) -> Any: ...

# Set to publish:<point>[:<action>] to stop a publish at a step (docs/publish.md).
FAULT_ENV_VAR = "MEMBERSCORE_FAULT"

STAGE = "MEMBERSCORE_PUBLISH"
LOG_TABLE = "PUBLISH_LOG"
ROWS_PER_FILE = 1_000_000

LOG_TABLE_DDL = (
    f"CREATE TABLE IF NOT EXISTS {LOG_TABLE} ("
    "RUN_ID VARCHAR NOT NULL, TABLE_NAME VARCHAR NOT NULL, AS_OF_DATE DATE NOT NULL, "
    "ROW_COUNT NUMBER(19, 0) NOT NULL, CHECKSUM VARCHAR NOT NULL, "
    "PUBLISHED_AT TIMESTAMP_TZ NOT NULL)"
)


@dataclass(frozen=True)
class TableSelection:
    """Which tables a publish covers, and which of them may be absent for the day."""

    tables: tuple[str, ...]
    optional: frozenset[str]


def published_tables(settings: Settings, requested: Sequence[str] | None) -> TableSelection:
    """The lake tables to publish: conf `snowflake.published_tables`, narrowed by
    `--table` (each must be one of them).  Without `--table`, the tables in conf
    `snowflake.optional_tables` are skipped when the lake has no rows for the day;
    a table named with `--table` is always required."""
    sf = settings.snowflake
    configured = list(dict.fromkeys(sf.published_tables))  # output tables (checked at load)
    if not requested:
        return TableSelection(tuple(configured), frozenset(sf.optional_tables))
    chosen = list(dict.fromkeys(requested))
    bad = [t for t in chosen if t not in configured]
    if bad:
        raise InputError(
            f"--table {bad[0]!r} is not a published table; expected one of "
            f"{', '.join(configured)} (conf snowflake.published_tables)"
        )
    return TableSelection(tuple(chosen), frozenset())


def required_tables(settings: Settings) -> tuple[str, ...]:
    """The Snowflake names of the tables a complete day has: conf
    `snowflake.published_tables` less `snowflake.optional_tables` (so
    MEMBER_FEATURES_DAILY and MEMBER_SCORES).  A day is complete when each has its
    PUBLISH_LOG row; the API serves only complete days and the "day published" event
    is sent only for them."""
    sf = settings.snowflake
    return tuple(identifier(t, "published table") for t in dict.fromkeys(sf.published_tables)
                 if t not in sf.optional_tables)


class NothingToPublishError(TableError):
    """The lake has no rows of a table for the day (or no such table at all)."""


@dataclass(frozen=True)
class PreparedDay:
    """One table-day written to the spool, with what Snowflake must end up holding."""

    table: str  # lake name
    target: str  # Snowflake name
    spec: TableSpec
    day: dt.date
    lake_version: int
    columns: tuple[Column, ...]
    keys: tuple[str, ...]  # Snowflake names
    date_column: str  # Snowflake name
    spool: Path
    files: tuple[Path, ...]
    expected: DayChecksum
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class PublishedDay:
    """What one table publish did, for the job result and the log."""

    table: str
    target: str
    day: dt.date
    rows: int
    replaced_rows: int
    checksum: str
    lake_version: int
    created: bool
    added_columns: tuple[str, ...]
    seconds: dict[str, float] = field(default_factory=dict)


class _Laps:
    """Seconds per step, rounded to the millisecond."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._clock = time.monotonic()

    def __call__(self, step: str) -> None:
        now = time.monotonic()
        self.seconds[step] = round(self.seconds.get(step, 0.0) + now - self._clock, 3)
        self._clock = now


# COPY's result columns, the same in Snowflake and the local warehouse:
# file, status, rows_parsed, rows_loaded, error_limit, errors_seen, first_error, ...
_COPY_STATUS, _COPY_ROWS_LOADED, _COPY_FIRST_ERROR = 1, 3, 6


class Publisher:
    """Publishes days of lake tables to one Snowflake schema (see the module doc)."""

    def __init__(self, lake: Lake, *, spool_root: Path, run_id: str,
                 fault_hook: FaultHook | None = None,
                 hooks: CommitHooks | None = None) -> None:
        self.lake = lake
        self.hooks = hooks
        self.after_commit: Any = None
        self.spool_root = spool_root
        self.run_id = run_id
        self._run_path = run_id_path_part(run_id)
        self._token = secrets.token_hex(4).upper()
        self.fault_hook = fault_hook
        self._ready: weakref.WeakSet[WarehouseConnection] = weakref.WeakSet()

    # ------------------------------------------------------------------ phase 1

    def prepare(self, table: str, day: dt.date, version: int | None = None) -> PreparedDay:
        """Write the day's rows of `table` (at Delta `version`, default the current one)
        to the spool; TableError when there are none."""
        spec = OUTPUT_TABLES[table]
        if not self.lake.exists(table):
            raise NothingToPublishError(
                f"lake table {table!r} does not exist ({self.lake.location(table)}), so "
                f"{day} cannot be published; run the job that produces it first, or "
                "leave it out with --table"
            )
        spool = self.spool_root / day.isoformat() / f"{self._run_path}-{table}"
        if "'" in str(spool):
            raise WarehouseError(f"the spool folder {spool} contains a quote; use another home")
        laps = _Laps()
        try:
            export = self.lake.export_partition(table, {spec.date_column: day}, spool,
                                                version=version, rows_per_file=ROWS_PER_FILE)
            laps("export")
            if export.rows == 0:
                raise NothingToPublishError(
                    f"lake table {table!r} (version {export.version}) has no rows for {day}; "
                    f"nothing was published. Run the job that produces {table} for {day} "
                    "first, or leave it out with --table"
                )
            check_key_types(export.schema, spec.keys, table)
            columns = tuple(columns_for(export.schema, table))
            expected = parquet_checksum(export.files, spec.keys)
            laps("checksum")
            if expected.rows != export.rows:
                raise TableError(
                    f"the spool files of {table} {day} hold {expected.rows} rows but the lake "
                    f"exported {export.rows} from version {export.version}; nothing was "
                    f"published: check the free space and permissions of {self.spool_root}"
                )
        except BaseException:
            shutil.rmtree(spool, ignore_errors=True)
            raise
        log.info("spooled %s %s: %d rows in %d file(s), lake version %d, %s", table, day,
                 expected.rows, len(export.files), export.version, laps.seconds)
        return PreparedDay(
            table=table, target=identifier(table, "table name"), spec=spec, day=day,
            lake_version=export.version, columns=columns,
            keys=tuple(identifier(k, f"key of {table}") for k in spec.keys),
            date_column=identifier(spec.date_column, f"date column of {table}"),
            spool=spool, files=export.files, expected=expected, seconds=laps.seconds,
        )

    def discard(self, prepared: PreparedDay) -> None:
        """Remove the table-day's spool folder (and the day's, once empty)."""
        shutil.rmtree(prepared.spool, ignore_errors=True)
        with contextlib.suppress(OSError):  # not empty: another table still spooled
            prepared.spool.parent.rmdir()

    # ------------------------------------------------------------------ phase 2

    def _fault(self, point: FaultPoint, prepared: PreparedDay,
               conn: WarehouseConnection) -> None:
        if self.fault_hook is not None:
            self.fault_hook(point, prepared.target, conn)

    def _existing_columns(self, conn: WarehouseConnection,
                          tables: Sequence[str]) -> dict[str, dict[str, ExistingColumn]]:
        """The columns of each of `tables` that exists, by table: one query for all."""
        marks = ", ".join("?" for _ in tables)
        rows = conn.execute(
            "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, NUMERIC_PRECISION, NUMERIC_SCALE "
            f"FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME IN ({marks}) "
            "ORDER BY TABLE_NAME, ORDINAL_POSITION",
            [conn.spec.schema, *tables], what=f"read the columns of {', '.join(tables)}",
        )
        found: dict[str, dict[str, ExistingColumn]] = {}
        for table, name, dtype, precision, scale in rows:
            column = ExistingColumn(
                str(name).upper(), str(dtype),
                None if precision is None else int(precision),
                None if scale is None else int(scale))
            found.setdefault(str(table).upper(), {})[column.name] = column
        return found

    def _target_columns(self, prepared: PreparedDay) -> list[Column]:
        """Keys and the date column are NOT NULL in Snowflake; the rest may be null (so
        a feature that becomes nullable later needs no migration)."""
        required = {*prepared.keys, prepared.date_column}
        return [Column(c.source, c.name, c.type, c.name not in required)
                for c in prepared.columns]

    def ensure_target(self, conn: WarehouseConnection,
                      prepared: PreparedDay) -> tuple[bool, tuple[str, ...]]:
        """Create the target when missing, add lake columns it lacks; (created, added).
        Also creates PUBLISH_LOG and the stage when this session has not seen them."""
        known = self._existing_columns(conn, (prepared.target, LOG_TABLE))
        if conn not in self._ready:  # once per session
            if LOG_TABLE not in known:
                conn.execute(LOG_TABLE_DDL, what=f"create table {LOG_TABLE}")
            conn.execute(f"CREATE STAGE IF NOT EXISTS {STAGE}", what=f"create stage {STAGE}")
            self._ready.add(conn)
        existing = known.get(prepared.target)
        if not existing:
            conn.execute(create_table_sql(prepared.target, self._target_columns(prepared)),
                         what=f"create table {prepared.target}")
            log.info("created Snowflake table %s (%d columns)", prepared.target,
                     len(prepared.columns))
            return True, ()
        plan = plan_schema(prepared.target, prepared.columns, existing)
        for column in plan.to_add:
            conn.execute(f"ALTER TABLE {prepared.target} ADD COLUMN {column.name} "
                         f"{column.type.ddl}", what=f"add column {column.name} to "
                         f"{prepared.target}")
            log.info("added column %s %s to %s", column.name, column.type.ddl, prepared.target)
        return False, tuple(c.name for c in plan.to_add)

    def checksum(self, conn: WarehouseConnection, table: str, prepared: PreparedDay,
                 what: str) -> DayChecksum:
        rows = conn.execute(sql_checksum_query(table, prepared.keys, prepared.date_column),
                            [prepared.day], what=what)
        return from_sql_row(rows[0] if rows else None)

    def _check_copy(self, prepared: PreparedDay, staging: str,
                    result: list[tuple[Any, ...]]) -> None:
        """COPY's result must list every spooled file as LOADED and the lake's rows."""
        loaded = [r for r in result if len(r) > _COPY_ROWS_LOADED]
        failed = [r for r in loaded if str(r[_COPY_STATUS]).upper() != "LOADED"]
        rows = sum(int(r[_COPY_ROWS_LOADED] or 0) for r in loaded)
        if failed or len(loaded) != len(prepared.files) or rows != prepared.expected.rows:
            first = next((str(r[_COPY_FIRST_ERROR]) for r in failed
                          if len(r) > _COPY_FIRST_ERROR and r[_COPY_FIRST_ERROR]), "")
            raise WarehouseError(
                f"COPY of {prepared.target} {prepared.day} into {staging} loaded {rows} rows "
                f"from {len(loaded) - len(failed)} of {len(prepared.files)} file(s), expected "
                f"{prepared.expected.rows}{f' ({first})' if first else ''}; the target is "
                "unchanged, re-run publish"
            )

    def staging_name(self, prepared: PreparedDay) -> str:
        """This run's staging table for a table-day: unique per run, so two publishes
        of one day never share one (a killed run's is dropped by the next run)."""
        return f"{prepared.target}__STAGING_{prepared.day:%Y%m%d}_{self._token}"

    def _drop_leftover_staging(self, conn: WarehouseConnection,
                               prepared: PreparedDay) -> None:
        """Drop staging tables of this table-day that earlier, killed runs left."""
        pattern = f"{prepared.target}__STAGING_{prepared.day:%Y%m%d}%"
        rows = conn.execute(
            "SELECT TABLE_NAME FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA = ? "
            "AND TABLE_NAME LIKE ?", [conn.spec.schema, pattern],
            what=f"find staging tables left by earlier publishes of {prepared.target}")
        ours = self.staging_name(prepared)
        for (name,) in rows:
            leftover = identifier(str(name), "staging table")
            if leftover != ours:
                conn.execute(f"DROP TABLE IF EXISTS {leftover}", what=f"drop {leftover}")
                log.info("dropped %s, left by an earlier publish that did not finish",
                         leftover)

    def _load_staging(self, conn: WarehouseConnection, prepared: PreparedDay,
                      laps: _Laps) -> tuple[bool, tuple[str, ...]]:
        """Create (or widen) the target, then PUT and COPY the day into this run's
        staging table, checked; (created, added columns)."""
        target, day = prepared.target, prepared.day
        created, added = self.ensure_target(conn, prepared)
        self._drop_leftover_staging(conn, prepared)
        staging = self.staging_name(prepared)
        names = ", ".join(c.name for c in prepared.columns)
        laps("schema")
        # The target's column types (just checked against the lake).  Transient: a
        # staging table needs no Time Travel or Fail-safe copies.
        conn.execute(f"CREATE OR REPLACE TRANSIENT TABLE {staging} AS "
                     f"SELECT {names} FROM {target} LIMIT 0",
                     what=f"create staging table {staging}")
        laps("stage")
        stage_path = (f"{prepared.table}/{day.isoformat()}/{self._run_path}-"
                      f"{secrets.token_hex(4)}")
        try:
            uploaded = conn.execute(
                f"PUT 'file://{prepared.spool}/part-*.parquet' @{STAGE}/{stage_path}/ "
                "AUTO_COMPRESS = FALSE OVERWRITE = TRUE",
                what=f"PUT {len(prepared.files)} file(s) of {target} {day}")
            failed = [r for r in uploaded if len(r) > 6 and str(r[6]).upper() != "UPLOADED"]
            if len(uploaded) != len(prepared.files) or failed:
                raise WarehouseError(
                    f"PUT of {target} {day}: {len(prepared.files)} file(s) to upload, "
                    f"{len(uploaded) - len(failed)} uploaded; the target is unchanged, "
                    "re-run publish"
                )
            laps("put")
            result = conn.execute(
                f"COPY INTO {staging} FROM @{STAGE}/{stage_path}/ "
                "FILE_FORMAT = (TYPE = PARQUET) MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE "
                "PURGE = TRUE FORCE = TRUE",
                what=f"COPY {target} {day} into {staging}")
        except BaseException:
            self._remove_staged(conn, stage_path)
            raise
        self._check_copy(prepared, staging, result)
        laps("copy")
        self._fault(FaultPoint.AFTER_COPY, prepared, conn)
        return created, added

    def _swap(self, conn: WarehouseConnection, prepared: PreparedDay,
              published_at: dt.datetime) -> int:
        """Inside the open transaction: replace the table-day with the staging rows and
        its PUBLISH_LOG row, then verify the day as it would be committed (wrong keys
        roll back here, before anyone can read them).  The rows replaced."""
        target, day = prepared.target, prepared.day
        staging = self.staging_name(prepared)
        names = ", ".join(c.name for c in prepared.columns)
        replaced = conn.execute_count(
            f"DELETE FROM {target} WHERE {prepared.date_column} = ?", [day],
            what=f"delete {day} from {target}")
        inserted = conn.execute_count(
            f"INSERT INTO {target} ({names}) SELECT {names} FROM {staging}",
            what=f"insert {day} into {target}")
        if inserted != prepared.expected.rows:
            raise WarehouseError(
                f"inserting {target} {day} wrote {inserted} rows, expected "
                f"{prepared.expected.rows}; rolled back, the target is unchanged"
            )
        conn.execute_count(
            f"DELETE FROM {LOG_TABLE} WHERE TABLE_NAME = ? AND AS_OF_DATE = ?",
            [target, day], what=f"replace the {LOG_TABLE} row of {target} {day}")
        conn.execute_count(
            f"INSERT INTO {LOG_TABLE} (RUN_ID, TABLE_NAME, AS_OF_DATE, ROW_COUNT, "
            "CHECKSUM, PUBLISHED_AT) VALUES (?, ?, ?, ?, ?, ?)",
            [self.run_id, target, day, prepared.expected.rows,
             prepared.expected.text, ("TIMESTAMP_TZ", published_at)],
            what=f"insert the {LOG_TABLE} row of {target} {day}")
        swapped = self.checksum(conn, target, prepared, f"verify {target} {day}")
        if swapped != prepared.expected:
            raise WarehouseError(
                f"{target} {day} would hold {swapped.rows} rows ({swapped.text}) but "
                f"the lake's {prepared.table} version {prepared.lake_version} has "
                f"{prepared.expected.rows} ({prepared.expected.text}); rolled back, "
                "the target is unchanged"
            )
        self._fault(FaultPoint.BEFORE_COMMIT, prepared, conn)
        return replaced

    def _reconcile(self, conn: WarehouseConnection, prepared: PreparedDay) -> None:
        target, day = prepared.target, prepared.day
        self._fault(FaultPoint.AFTER_COMMIT, prepared, conn)
        actual = self.checksum(conn, target, prepared, f"reconcile {target} {day}")
        if actual != prepared.expected:
            raise WarehouseError(
                f"reconciliation failed for {target} {day}: Snowflake has {actual.rows} "
                f"rows ({actual.text}), the lake's {prepared.table} version "
                f"{prepared.lake_version} has {prepared.expected.rows} "
                f"({prepared.expected.text}). The publish committed but the day does not "
                f"match: something else changed {target}; re-run publish for {day} and "
                f"find the other writer"
            )

    def publish(self, conn: WarehouseConnection,
                prepared: Sequence[PreparedDay]) -> tuple[PublishedDay, ...]:
        """Load every table-day into its staging table, swap them all in ONE
        transaction (readers see the whole day of every table or none of it), then
        reconcile each; see the module docstring."""
        if not prepared:
            return ()
        laps = {p.table: _Laps() for p in prepared}
        loaded: list[PreparedDay] = []
        shapes: dict[str, tuple[bool, tuple[str, ...]]] = {}
        replaced: dict[str, int] = {}
        day = prepared[0].day
        try:
            for item in prepared:
                loaded.append(item)
                shapes[item.table] = self._load_staging(conn, item, laps[item.table])
            if self.hooks is not None:
                self.hooks.before_transaction(conn)
            published_at = dt.datetime.now(dt.UTC)
            with conn.transaction(f"publish {day} of {', '.join(p.target for p in prepared)}"):
                for i, item in enumerate(prepared):
                    if i:
                        self._fault(FaultPoint.BETWEEN_TABLES, item, conn)
                    replaced[item.table] = self._swap(conn, item, published_at)
                    laps[item.table]("transaction")
                if self.hooks is not None:
                    self.hooks.in_transaction(conn, day, self.run_id, published_at)
            for item in prepared:
                self._reconcile(conn, item)
                laps[item.table]("reconcile")
            if self.hooks is not None:
                self.after_commit = self.hooks.after_commit(conn)
        finally:
            for item in loaded:
                self._cleanup(conn, self.staging_name(item))
                laps[item.table]("cleanup")
        results = []
        for item in prepared:
            created, added = shapes[item.table]
            log.info("published %s %s: %d rows (replaced %d), %s, reconciled", item.target,
                     day, item.expected.rows, replaced[item.table], item.expected.text)
            results.append(PublishedDay(
                table=item.table, target=item.target, day=day, rows=item.expected.rows,
                replaced_rows=replaced[item.table], checksum=item.expected.text,
                lake_version=item.lake_version, created=created, added_columns=added,
                seconds={**item.seconds, **laps[item.table].seconds},
            ))
        return tuple(results)

    def _cleanup(self, conn: WarehouseConnection, staging: str) -> None:
        """Drop a staging table; never masks the outcome."""
        try:
            conn.execute(f"DROP TABLE IF EXISTS {staging}", what=f"drop {staging}")
        except WarehouseError as exc:
            log.warning("could not drop staging table %s (the next publish of this day "
                        "drops it): %s", staging, exc)

    def _remove_staged(self, conn: WarehouseConnection, stage_path: str) -> None:
        """Remove files a failed PUT or COPY left on the stage (COPY ... PURGE removes
        the files it loaded); never masks the outcome."""
        try:
            conn.execute(f"REMOVE @{STAGE}/{stage_path}/", what=f"remove @{STAGE}/{stage_path}")
        except WarehouseError as exc:
            # The local warehouse lacks REMOVE; it empties its stage folder when it stops.
            log.debug("stage cleanup: %s", exc)


@dataclass(frozen=True)
class PublishOutcome:
    """What `publish_day` did: the tables published, optional ones skipped (why), and
    the statements it sent to Snowflake (the session's setup included)."""

    published: tuple[PublishedDay, ...]
    skipped: tuple[tuple[str, str], ...]
    statements: int = 0
    # what the commit hooks' after_commit returned (the event delivery), if they ran
    after_commit: Any = None


def publish_tables(settings: Settings, lake: Lake, spark: SparkSession, *,
                   warehouse_dir: Path, run_id: str, selection: TableSelection, day: dt.date,
                   fault_hook: FaultHook | None = None, verbose: bool = False,
                   versions: Mapping[str, int] | None = None,
                   hooks: CommitHooks | None = None) -> PublishOutcome:
    """Publish `day` of the selected tables, holding the day's publish lock (a second
    publish of the day stops with PublishRunningError; spool folders of killed
    publishes are removed first): every table spooled (so a missing required table
    fails before Snowflake is touched), then every one loaded into its staging table
    and all swapped in one transaction.
    Optional tables without rows for the day are skipped and reported.  `versions`
    pins the Delta version exported per table (the job passes the versions its
    quality gate checked, so what is published is what was vouched for).

    The job calls this; tests call it with a `fault_hook` to stop at a chosen step.
    `spark` is not used (the lake exports with its own session when it needs one); it
    stays in the signature for the callers.
    """
    del spark
    publisher = Publisher(lake, spool_root=warehouse_dir / "spool", run_id=run_id,
                          fault_hook=fault_hook, hooks=hooks)
    lock_dir = warehouse_dir / "locks"
    with day_lock(lock_dir, day, run_id):
        remove_leftover_spools(publisher.spool_root, lock_dir, day)
        return _publish_locked(settings, publisher, warehouse_dir=warehouse_dir,
                               run_id=run_id, selection=selection, day=day,
                               verbose=verbose, versions=versions)


def _publish_locked(settings: Settings, publisher: Publisher, *, warehouse_dir: Path,
                    run_id: str, selection: TableSelection, day: dt.date, verbose: bool,
                    versions: Mapping[str, int] | None) -> PublishOutcome:
    from memberscore.warehouse.session import open_warehouse

    prepared: list[PreparedDay] = []
    skipped: list[tuple[str, str]] = []
    try:
        for table in selection.tables:
            try:
                prepared.append(publisher.prepare(table, day, (versions or {}).get(table)))
            except NothingToPublishError as exc:
                if table not in selection.optional:
                    raise
                # optional: e.g. drift_metrics, which `monitor` writes after this step
                log.info("skipping optional table %s: %s", table, exc)
                skipped.append((table, str(exc).split(";")[0]))
        if not prepared:
            return PublishOutcome((), tuple(skipped))
        with open_warehouse(settings, warehouse_dir, purpose=f"publish {run_id}",
                            verbose=verbose) as conn:
            published = publisher.publish(conn, prepared)
        return PublishOutcome(published, tuple(skipped), conn.statements,
                              publisher.after_commit)
    finally:
        for p in prepared:
            publisher.discard(p)


def publish_day(settings: Settings, lake: Lake, spark: SparkSession, *, warehouse_dir: Path,
                run_id: str, tables: Sequence[str], day: dt.date,
                fault_hook: FaultHook | None = None,
                verbose: bool = False) -> list[PublishedDay]:
    """Publish `day` of `tables`, every one required (e.g. `monitor` publishing the
    drift_metrics day it has just written); see `publish_tables`."""
    outcome = publish_tables(settings, lake, spark, warehouse_dir=warehouse_dir, run_id=run_id,
                             selection=TableSelection(tuple(tables), frozenset()), day=day,
                             fault_hook=fault_hook, verbose=verbose)
    return list(outcome.published)
