"""Publish one day of lake tables to Snowflake: bulk, atomic, idempotent, reconciled.

For each table, in two phases:

1. Lake, for every table before Snowflake is touched: the lake exports the day's
   rows of the table's current Delta version (which is recorded) as Parquet files
   into a spool folder (`Lake.export_partition`: without Spark on delta-rs, in Spark
   on delta-spark), and the publisher computes the day's row count and key checksum
   from those files (`checksum.parquet_checksum`: the key columns only), so what is
   reconciled is exactly what is loaded.  A missing table or an empty day fails
   here, so nothing is published when any table is not ready.
2. Warehouse, one table at a time, on one session:
   - one INFORMATION_SCHEMA query reads the target's and PUBLISH_LOG's columns; the
     target is created when missing (types from the Delta schema, `typemap`) or
     gains lake columns it lacks; PUBLISH_LOG and the named internal stage
     MEMBERSCORE_PUBLISH are created once per session when needed;
   - a transient staging table with the target's columns is created, the files are
     PUT to the stage and COPYed into it; COPY's own result must report every file
     loaded and the lake's row count;
   - ONE transaction: delete the day from the target, insert the staging rows (the
     inserted count must be the lake's), replace the table-day's PUBLISH_LOG row,
     then compute the target day's count and key checksum inside the transaction:
     anything but the lake's rolls back, so wrong rows are never committed;
   - after COMMIT the committed day is reconciled against the lake (count +
     checksum); a mismatch (another writer) raises WarehouseError;
   - the staging table is dropped and the stage path removed whatever happens.

A failure or a kill at any point before COMMIT leaves the target and PUBLISH_LOG as
they were (the transaction never committed); a rerun publishes the day again.  Each
table-day is its own transaction: when the second table fails, the first stays
published (complete, logged) and the rerun replaces it with the same rows.

Per-step seconds are kept in `PublishedDay.seconds` (export, checksum, schema, stage,
put, copy, transaction, reconcile, cleanup).
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import shutil
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memberscore.errors import ConfigError, InputError, TableError, WarehouseError
from memberscore.tables import OUTPUT_TABLES, TableSpec
from memberscore.warehouse.checksum import (
    DayChecksum,
    check_key_types,
    from_sql_row,
    parquet_checksum,
    sql_checksum_query,
)
from memberscore.warehouse.faults import FaultHook, FaultPoint
from memberscore.warehouse.identifiers import identifier, run_id_path_part
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
    configured = list(dict.fromkeys(sf.published_tables))
    for key, names in (("published_tables", configured), ("optional_tables", sf.optional_tables)):
        unknown = [t for t in names if t not in OUTPUT_TABLES]
        if unknown:
            raise ConfigError(
                f"conf key 'snowflake.{key}' names {', '.join(map(repr, unknown))}, which is "
                f"not an output table (known: {', '.join(OUTPUT_TABLES)})"
            )
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
                 fault_hook: FaultHook | None = None) -> None:
        self.lake = lake
        self.spool_root = spool_root
        self.run_id = run_id
        self._run_path = run_id_path_part(run_id)
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
        spool = self.spool_root / f"{self._run_path}-{table}-{day.isoformat()}"
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
        """Remove the day's spool folder."""
        shutil.rmtree(prepared.spool, ignore_errors=True)

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

    def publish(self, conn: WarehouseConnection, prepared: PreparedDay) -> PublishedDay:
        """Load, swap in one transaction, log, reconcile; see the module docstring."""
        target, day = prepared.target, prepared.day
        laps = _Laps()
        created, added = self.ensure_target(conn, prepared)
        staging = f"{target}__STAGING_{day:%Y%m%d}"
        stage_path = (f"{prepared.table}/{day.isoformat()}/{self._run_path}-"
                      f"{secrets.token_hex(4)}")
        names = ", ".join(c.name for c in prepared.columns)
        copied = False
        laps("schema")
        try:
            # The target's column types (just checked against the lake).  Transient: a
            # staging table needs no Time Travel or Fail-safe copies.
            conn.execute(f"CREATE OR REPLACE TRANSIENT TABLE {staging} AS "
                         f"SELECT {names} FROM {target} LIMIT 0",
                         what=f"create staging table {staging}")
            laps("stage")
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
            copied = True
            self._check_copy(prepared, staging, result)
            laps("copy")
            self._fault(FaultPoint.AFTER_COPY, prepared, conn)
            published_at = dt.datetime.now(dt.UTC)
            with conn.transaction(f"publish {target} {day}"):
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
                # The day as it would be committed: wrong keys roll back here, before
                # anyone can read them.
                swapped = self.checksum(conn, target, prepared, f"verify {target} {day}")
                if swapped != prepared.expected:
                    raise WarehouseError(
                        f"{target} {day} would hold {swapped.rows} rows ({swapped.text}) but "
                        f"the lake's {prepared.table} version {prepared.lake_version} has "
                        f"{prepared.expected.rows} ({prepared.expected.text}); rolled back, "
                        "the target is unchanged"
                    )
                self._fault(FaultPoint.BEFORE_COMMIT, prepared, conn)
            laps("transaction")
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
            laps("reconcile")
        finally:
            self._cleanup(conn, staging, None if copied else stage_path)
        laps("cleanup")
        log.info("published %s %s: %d rows (replaced %d), %s, reconciled", target, day,
                 prepared.expected.rows, replaced, prepared.expected.text)
        return PublishedDay(
            table=prepared.table, target=target, day=day, rows=prepared.expected.rows,
            replaced_rows=replaced, checksum=prepared.expected.text,
            lake_version=prepared.lake_version, created=created, added_columns=added,
            seconds={**prepared.seconds, **laps.seconds},
        )

    def _cleanup(self, conn: WarehouseConnection, staging: str,
                 stage_path: str | None) -> None:
        """Drop the staging table and, when COPY did not purge them, the staged files;
        never masks the outcome."""
        try:
            conn.execute(f"DROP TABLE IF EXISTS {staging}", what=f"drop {staging}")
        except WarehouseError as exc:
            log.warning("could not drop staging table %s (the next publish of this day "
                        "replaces it): %s", staging, exc)
        if stage_path is None:
            return  # COPY ... PURGE = TRUE removed the loaded files
        try:
            conn.execute(f"REMOVE @{STAGE}/{stage_path}/", what=f"remove @{STAGE}/{stage_path}")
        except WarehouseError as exc:
            # The local warehouse lacks REMOVE; it empties its stage folder when it stops.
            log.debug("stage cleanup: %s", exc)


@dataclass(frozen=True)
class PublishOutcome:
    """What `publish_day` did: the tables published, and optional ones skipped (why)."""

    published: tuple[PublishedDay, ...]
    skipped: tuple[tuple[str, str], ...]


def publish_tables(settings: Settings, lake: Lake, spark: SparkSession, *,
                   warehouse_dir: Path, run_id: str, selection: TableSelection, day: dt.date,
                   fault_hook: FaultHook | None = None, verbose: bool = False,
                   versions: Mapping[str, int] | None = None) -> PublishOutcome:
    """Publish `day` of the selected tables: every table spooled first (so a missing
    required table fails before Snowflake is touched), then each loaded and swapped.
    Optional tables without rows for the day are skipped and reported.  `versions`
    pins the Delta version exported per table (the job passes the versions its
    quality gate checked, so what is published is what was vouched for).

    The job calls this; tests call it with a `fault_hook` to stop at a chosen step.
    `spark` is not used (the lake exports with its own session when it needs one); it
    stays in the signature for the callers.
    """
    from memberscore.warehouse.session import open_warehouse

    del spark
    publisher = Publisher(lake, spool_root=warehouse_dir / "spool", run_id=run_id,
                          fault_hook=fault_hook)
    prepared: list[PreparedDay] = []
    skipped: list[tuple[str, str]] = []
    try:
        for table in selection.tables:
            try:
                prepared.append(publisher.prepare(table, day, (versions or {}).get(table)))
            except NothingToPublishError as exc:
                if table not in selection.optional:
                    raise
                log.warning("skipping optional table %s: %s", table, exc)
                skipped.append((table, str(exc).split(";")[0]))
        if not prepared:
            return PublishOutcome((), tuple(skipped))
        with open_warehouse(settings, warehouse_dir, purpose=f"publish {run_id}",
                            verbose=verbose) as conn:
            published = tuple(publisher.publish(conn, p) for p in prepared)
        return PublishOutcome(published, tuple(skipped))
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
