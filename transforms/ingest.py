"""Ingest as pure transforms: raw landing rows -> typed rows, each with every rule it
breaks; then kept rows (bronze) and quarantined rows, nothing dropped in between.

The chain for one source and landing day is

    combine_files([parse_rows(landing rows 1), parse_rows(landing rows 2), ...])
      -> flag_duplicates(...)                                  (transactions only)

(the job takes the same steps on cached rows: union_files, then file_blocks and
duplicate_rows, both small, then number_rows and mark_duplicates)
      -> bronze_rows(...)        rows that broke no rule, in the bronze schema
      -> quarantine_rows(...)    every other row: the raw record and its rules

Rule names (the `rules` column of a quarantine table):

- `required:<column>`: a value the contract requires is missing (null, or blank text);
- `unparseable:<column>`: a value is present but is not a valid value of its type
  (a timestamp, a date, a boolean, or an amount with at most 2 decimal places that
  fits decimal(18,2)); `unparseable:record` when the line could not be split into
  fields at all (broken JSON, a CSV line with the wrong number of fields or an
  unclosed quote) or holds bytes that are not UTF-8;
- `currency_not_gbp`, `unknown_status`, `unknown_channel`, `booked_after_ingested`;
- `impossible_dates`: a members row onboarded after its own `updated_at`, or closed
  before it was onboarded (the member keeps their earlier record);
- `amount_out_of_range`: a transaction whose absolute amount exceeds the ingest's
  `max_abs_amount`, so that no accepted amount can overflow a later sum;
- `duplicate`: the transaction_id was kept on an earlier landing day, or appears
  earlier among this day's rows.

Text values are trimmed and blank text counts as missing.  Values of typed Parquet
columns are converted exactly or not at all: a decimal with more than 2 non-zero
decimal places, an integer or float out of range, or a timestamp column of some other
type is `unparseable`, never rounded or truncated silently.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from functools import reduce

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from memberscore.schemas import CHANNELS, CURRENCIES, MONEY, SOURCES, STATUSES, bronze_schema

CORRUPT_RECORD = "_corrupt_record"
REPLACEMENT_CHARACTER = "\ufffd"  # what a reader puts for bytes that are not UTF-8
# where a raw row comes from, when many files are read in one scan
FILE_NAME = "_source_file"
LANDING_DAY = "_landing_date"
FILE_BLOCK = "_file_block"  # the start of the file block (split) the row was read from
ROW_ORDER = "_row_order"  # increasing in file order within a block
POSITION = (FILE_NAME, LANDING_DAY, FILE_BLOCK, ROW_ORDER)

RAW_RECORD = "raw_record"
RULES = "rules"
SOURCE_ROW = "source_row"

UNPARSEABLE_RECORD = "unparseable:record"
CURRENCY_NOT_GBP = "currency_not_gbp"
UNKNOWN_STATUS = "unknown_status"
UNKNOWN_CHANNEL = "unknown_channel"
BOOKED_AFTER_INGESTED = "booked_after_ingested"
IMPOSSIBLE_DATES = "impossible_dates"
AMOUNT_OUT_OF_RANGE = "amount_out_of_range"
DUPLICATE = "duplicate"

QUARANTINE_SCHEMA = T.StructType([
    T.StructField(RAW_RECORD, T.StringType(), False),
    T.StructField(RULES, T.ArrayType(T.StringType(), True), False),
    T.StructField("source_file", T.StringType(), False),
    T.StructField(SOURCE_ROW, T.LongType(), False),
    T.StructField("landing_date", T.DateType(), False),
    T.StructField("run_id", T.StringType(), False),
    T.StructField("quarantined_at", T.TimestampType(), False),
])
"""Every `quarantine_<source>` table: the row as read (a JSON object of all the
file's fields, nulls included), every rule it broke, the file, the record's position
in the file (1-based, counting records, not lines), the landing day (partition), the
ingest run, and when."""

_WIDE_DECIMAL = T.DecimalType(38, 18)
_STRINGLIKE = (T.StringType, T.VarcharType, T.CharType)
_NUMERIC = (T.ByteType, T.ShortType, T.IntegerType, T.LongType, T.FloatType,
            T.DoubleType, T.DecimalType)
_SIMPLE = (*_NUMERIC, T.BooleanType, T.DateType, T.TimestampType, T.TimestampNTZType,
           T.BinaryType)


def required_rule(column: str) -> str:
    """`required:<column>`."""
    return f"required:{column}"


def unparseable_rule(column: str) -> str:
    """`unparseable:<column>`."""
    return f"unparseable:{column}"


def parsed_schema(source: str) -> T.StructType:
    """The shape of `combine_files` output: the bronze columns, then raw record, rules,
    source row, and the file order columns."""
    return T.StructType([
        *bronze_schema(source).fields,
        T.StructField(RAW_RECORD, T.StringType(), False),
        T.StructField(RULES, T.ArrayType(T.StringType(), True), False),
        T.StructField(SOURCE_ROW, T.LongType(), False),
        T.StructField(FILE_BLOCK, T.LongType(), False),
        T.StructField(ROW_ORDER, T.LongType(), False),
    ])


# ----------------------------------------------------------------------------- parsing


def parse_rows(raw: DataFrame, source: str, *, run_id: str, source_file: str | None = None,
               landing_date: dt.date | None = None,
               max_abs_amount: Decimal | None = None) -> DataFrame:
    """Landing rows, typed against the source's declared schema, with the raw record and
    every rule each row breaks (see the module docstring).

    `raw` holds the columns as delivered plus `_row_order` (file order) and, when some
    lines could not be split, `_corrupt_record`.  The file and landing day are either
    given (`source_file`, `landing_date`: all rows from one file) or columns of `raw`
    (`_source_file`, `_landing_date`, `_file_block`: a scan of many files, see
    `memberscore.landing.read_landing_batches`).  Every declared column must be there
    (the reader fills JSON keys that are legitimately absent with nulls); other columns
    are kept in the raw record only.  `max_abs_amount` bounds a transaction's absolute
    amount (`amount_out_of_range` above it; None: no bound).
    """
    schema = SOURCES[source]
    missing = [f.name for f in schema.fields if f.name not in raw.columns]
    if missing or ROW_ORDER not in raw.columns:
        raise ValueError(f"parse_rows({source}): raw rows lack {missing or [ROW_ORDER]}")
    located = FILE_NAME in raw.columns and LANDING_DAY in raw.columns
    if not located and (source_file is None or landing_date is None):
        raise ValueError(f"parse_rows({source}): give source_file and landing_date, or rows "
                         f"with {FILE_NAME} and {LANDING_DAY}")
    types = {f.name: f.dataType for f in raw.schema.fields}
    file_columns = [c for c in raw.columns if c not in POSITION]

    values: list[Column] = []
    present: list[Column] = []
    for fld in schema.fields:
        is_present, parsed = _parse(F.col(_quote(fld.name)), types[fld.name], fld.dataType)
        values.append(parsed.cast(fld.dataType).alias(fld.name))
        present.append(is_present.alias(_present(fld.name)))
    raw_record = F.to_json(F.struct(*[F.col(_quote(c)) for c in file_columns]),
                           {"ignoreNullFields": "false"})
    # bytes that are not UTF-8 reach us as U+FFFD: such a record is not taken as read
    malformed = F.instr(raw_record, REPLACEMENT_CHARACTER) > 0
    if CORRUPT_RECORD in raw.columns:
        malformed = F.col(CORRUPT_RECORD).isNotNull() | malformed
    typed = raw.select(
        *values, *present, malformed.alias("_malformed"), raw_record.alias(RAW_RECORD),
        (F.lit(source_file) if source_file is not None else F.col(FILE_NAME))
        .alias("source_file"),
        (F.lit(landing_date) if landing_date is not None else F.col(LANDING_DAY))
        .cast(T.DateType()).alias("landing_date"),
        # rows not from a file scan: each task's rows are a block (the task is the
        # upper bits of monotonically_increasing_id)
        (F.col(FILE_BLOCK) if FILE_BLOCK in raw.columns
         else F.shiftright(F.col(ROW_ORDER), 33)).cast(T.LongType()).alias(FILE_BLOCK),
        F.col(ROW_ORDER),
    )

    checks: list[tuple[Column, str]] = []
    for fld in schema.fields:
        is_present = F.col(_present(fld.name))
        if not fld.nullable:
            checks.append((~is_present, required_rule(fld.name)))
        checks.append((is_present & F.col(fld.name).isNull(), unparseable_rule(fld.name)))
    checks += _business_rules(source, max_abs_amount)
    broken = F.array_compact(F.array(*[F.when(cond, F.lit(name)) for cond, name in checks]))
    rules = F.when(F.col("_malformed"), F.array(F.lit(UNPARSEABLE_RECORD))).otherwise(broken)

    return (
        typed
        .withColumns({RULES: rules, "run_id": F.lit(run_id)})
        .select(*[F.col(f.name) for f in parsed_schema(source).fields if f.name != SOURCE_ROW])
    )


def _business_rules(source: str, max_abs_amount: Decimal | None) -> list[tuple[Column, str]]:
    """(condition, rule) of the rules between values of one row; a comparison with a
    missing or unparseable value breaks nothing here (that value has its own rule)."""
    if source == "members":
        onboarded, updated, closed = (F.col("onboarded_at"), F.col("updated_at"),
                                      F.col("closed_at"))
        impossible = F.coalesce(onboarded > updated, F.lit(False)) | \
            F.coalesce(closed < onboarded, F.lit(False))
        return [(impossible, IMPOSSIBLE_DATES)]
    if source != "transactions":
        return []
    currency, status, channel = F.col("currency"), F.col("status"), F.col("channel")
    is_foreign = currency.isNotNull() & ~currency.isin(*CURRENCIES)
    is_unknown_status = status.isNotNull() & ~status.isin(*STATUSES)
    is_unknown_channel = channel.isNotNull() & ~channel.isin(*CHANNELS)
    is_booked_late = F.col("booked_at") > F.col("ingested_at")
    rules = [
        (is_foreign, CURRENCY_NOT_GBP),
        (is_unknown_status, UNKNOWN_STATUS),
        (is_unknown_channel, UNKNOWN_CHANNEL),
        (F.coalesce(is_booked_late, F.lit(False)), BOOKED_AFTER_INGESTED),
    ]
    if max_abs_amount is not None:
        too_large = F.abs(F.col("amount")) > F.lit(max_abs_amount).cast(MONEY)
        rules.append((F.coalesce(too_large, F.lit(False)), AMOUNT_OUT_OF_RANGE))
    return rules


def _parse(raw: Column, raw_type: T.DataType, target: T.DataType) -> tuple[Column, Column]:
    """(is the value present, the value typed or null when it cannot be) for one column."""
    if isinstance(raw_type, _STRINGLIKE):
        text = F.nullif(F.trim(raw), F.lit(""))
        return text.isNotNull(), _parse_text(text, target)
    if isinstance(raw_type, T.NullType):
        return F.lit(False), F.lit(None).cast(target)
    return raw.isNotNull(), _convert(raw, raw_type, target)


def _parse_text(text: Column, target: T.DataType) -> Column:
    if isinstance(target, T.StringType):
        return text
    if isinstance(target, T.DecimalType):
        return _exact_decimal(text, target)
    # timestamps: ISO-8601, with or without offset (naive = UTC, the session zone);
    # booleans: true/false, t/f, yes/no, y/n, 1/0 (Spark's cast, case-insensitive)
    return text.try_cast(target)


def _convert(raw: Column, raw_type: T.DataType, target: T.DataType) -> Column:
    """A typed (Parquet) value converted exactly to the target type, or null."""
    unparseable = F.lit(None).cast(target)
    if isinstance(target, T.StringType):
        return raw.cast(T.StringType()) if isinstance(raw_type, _SIMPLE) else unparseable
    if isinstance(target, T.DecimalType):
        return _exact_decimal(raw, target) if isinstance(raw_type, _NUMERIC) else unparseable
    if isinstance(target, T.TimestampType):
        if isinstance(raw_type, (T.TimestampType, T.TimestampNTZType, T.DateType)):
            return raw.cast(T.TimestampType())
        return unparseable
    if isinstance(target, T.DateType):
        if isinstance(raw_type, T.DateType):
            return raw
        if isinstance(raw_type, (T.TimestampType, T.TimestampNTZType)):
            return F.to_date(raw)
        return unparseable
    if isinstance(target, T.BooleanType):
        if isinstance(raw_type, T.BooleanType):
            return raw
        if isinstance(raw_type, (T.ByteType, T.ShortType, T.IntegerType, T.LongType)):
            return F.when(raw.isin(0, 1), raw == 1)
        return unparseable
    return unparseable


def _exact_decimal(value: Column, target: T.DecimalType) -> Column:
    """The value as `target` when that loses nothing (scale and range), else null."""
    wide = value.try_cast(_WIDE_DECIMAL)
    narrow = wide.try_cast(target)
    return F.when(narrow == wide, narrow)


def _present(name: str) -> str:
    return f"_present_{name}"


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def combine_files(frames: Sequence[DataFrame]) -> DataFrame:
    """The parsed rows of one source's files (from `parse_rows`) as one frame, each row
    numbered with its position in its file (`source_row`, 1-based): `number_rows` of
    `union_files`."""
    return number_rows(union_files(frames))


def union_files(frames: Sequence[DataFrame]) -> DataFrame:
    """The parsed rows of one source's files (from `parse_rows`) as one frame, not yet
    numbered: the job caches this frame, then numbers and flags the cached rows."""
    if not frames:
        raise ValueError("union_files needs at least one frame")
    return reduce(lambda a, b: a.unionByName(b), frames)


def file_blocks(rows: DataFrame) -> DataFrame:
    """One row per file block read (source_file, _file_block) with `_row_offset`: what
    turns a row's `_row_order` into its position in its file.

    A scan reads a file in blocks (splits), each block whole within one task, and
    `_row_order` (monotonically_increasing_id) counts up by one from row to row within
    a task; so a row's position is the rows of the file's earlier blocks, plus its
    distance from its block's first row, plus one.  Small (one row per block), so
    numbering costs one aggregate pass, not a shuffle and sort of every row by file."""
    blocks = (rows.groupBy("source_file", FILE_BLOCK)
              .agg(F.min(ROW_ORDER).alias("_first"), F.count(F.lit(1)).alias("_rows")))
    earlier_blocks = (Window.partitionBy("source_file").orderBy(FILE_BLOCK)
                      .rowsBetween(Window.unboundedPreceding, -1))
    before = F.coalesce(F.sum("_rows").over(earlier_blocks), F.lit(0))
    return blocks.select("source_file", FILE_BLOCK,
                         (before - F.col("_first") + 1).alias("_row_offset"))


def number_rows(rows: DataFrame, blocks: DataFrame | None = None) -> DataFrame:
    """`rows` (from `union_files`) with `source_row`, in `parsed_schema` order; `blocks`
    is `file_blocks(rows)`, computed here when not given."""
    blocks = file_blocks(rows) if blocks is None else blocks
    return (
        rows.join(F.broadcast(blocks), on=["source_file", FILE_BLOCK])
        .withColumn(SOURCE_ROW, (F.col(ROW_ORDER) + F.col("_row_offset")).cast(T.LongType()))
        .select(*_parsed_names(rows))
    )


def _parsed_names(rows: DataFrame) -> list[str]:
    """parse_rows' columns in `parsed_schema` order (SOURCE_ROW before the order)."""
    names = [c for c in rows.columns if c not in (FILE_BLOCK, ROW_ORDER, SOURCE_ROW)]
    return [*names, SOURCE_ROW, FILE_BLOCK, ROW_ORDER]


# ----------------------------------------------------------------------------- duplicates


def ids_seen_outside(bronze: DataFrame, parsed: DataFrame, start: dt.date,
                     end: dt.date) -> DataFrame:
    """One row per transaction_id of the rows being ingested (landing days [start,
    end]) that bronze holds on a landing day outside that range: `seen_before` (an
    earlier day kept it, so these rows are duplicates) and `seen_after` (a later day
    kept it: those days were ingested out of order and must be re-run).  The days
    being replaced are never "other days"."""
    ids = parsed.select("transaction_id").where(F.col("transaction_id").isNotNull())
    first, last = F.lit(start), F.lit(end)
    return (
        bronze
        .where((F.col("landing_date") < first) | (F.col("landing_date") > last))
        .select("transaction_id", "landing_date")
        .join(F.broadcast(ids), on="transaction_id", how="left_semi")
        .groupBy("transaction_id")
        .agg(F.max(F.col("landing_date") < first).alias("seen_before"),
             F.max(F.col("landing_date") > last).alias("seen_after"))
    )


SEEN_SCHEMA = T.StructType([
    T.StructField("transaction_id", T.StringType(), False),
    T.StructField("seen_before", T.BooleanType(), True),
    T.StructField("seen_after", T.BooleanType(), True),
])
"""The shape of `ids_seen_outside`."""


def no_ids_seen(spark: SparkSession) -> DataFrame:
    """`ids_seen_outside` when bronze holds no other day: no rows."""
    return spark.createDataFrame([], SEEN_SCHEMA)


def flag_duplicates(parsed: DataFrame, seen: DataFrame) -> DataFrame:
    """Add the `duplicate` rule to every row whose transaction_id was kept on an earlier
    landing day: in bronze before the ingested days (`seen`, from `ids_seen_outside`),
    or on an earlier day among the rows being ingested; or that appears earlier among
    its own day's rows.  Ingesting days [D1, Dn] at once flags exactly what ingesting
    them one by one in date order would.

    Among one day's rows with one id, the one kept is the earliest-ingested of those
    that break no other rule (ties: file name, then position in the file); if none is
    clean, the first by that order is quarantined for its own rules only, and the
    others are duplicates as well.  A day's row is kept only when no earlier day has a
    clean row with its id (that row was kept there).

    `mark_duplicates(parsed, duplicate_rows(parsed, seen))`: the job materializes the
    (small) duplicate_rows once and marks its cached rows with them.
    """
    return mark_duplicates(parsed, duplicate_rows(parsed, seen))


ROW_KEY = ("source_file", FILE_BLOCK, ROW_ORDER)
"""What identifies one row of a scan (its file, block and order within the block)."""


def duplicate_rows(parsed: DataFrame, seen: DataFrame) -> DataFrame:
    """The ROW_KEY of every row `flag_duplicates` flags.  Only the columns the rule
    needs are shuffled (by transaction_id), never the whole rows and raw records."""
    is_clean = F.size(RULES) == 0
    first_wins = Window.partitionBy("transaction_id", "landing_date").orderBy(
        F.when(F.col("_clean"), 0).otherwise(1), F.col("ingested_at").asc_nulls_last(),
        *[F.col(c) for c in ROW_KEY])
    first_clean_day = F.min(F.when(F.col("_clean"), F.col("landing_date"))).over(
        Window.partitionBy("transaction_id"))
    earlier = (seen.where(F.col("seen_before")).select("transaction_id")
               .withColumn("_seen_before", F.lit(True)))
    is_duplicate = (
        (F.col("_rank") > 1)
        | F.col("_seen_before").isNotNull()
        | F.coalesce(F.col("_first_clean_day") < F.col("landing_date"), F.lit(False)))
    return (
        parsed
        .where(F.col("transaction_id").isNotNull())
        .select("transaction_id", "landing_date", "ingested_at", is_clean.alias("_clean"),
                *ROW_KEY)
        .join(earlier, on="transaction_id", how="left")
        .withColumns({"_first_clean_day": first_clean_day,
                      "_rank": F.row_number().over(first_wins)})
        .where(is_duplicate)
        .select(*ROW_KEY)
    )


def mark_duplicates(parsed: DataFrame, duplicates: DataFrame, *,
                    broadcast: bool = True) -> DataFrame:
    """`parsed` with `duplicate` added to the rules of the rows `duplicates` (from
    `duplicate_rows`) names; `broadcast`: `duplicates` is small enough to send whole
    to every task (otherwise both sides are shuffled by row)."""
    flagged = duplicates.withColumn("_duplicate", F.lit(True))
    return (
        parsed
        .join(F.broadcast(flagged) if broadcast else flagged, on=list(ROW_KEY), how="left")
        .withColumn(RULES, F.when(F.col("_duplicate").isNotNull(),
                                  F.array_append(F.col(RULES), F.lit(DUPLICATE)))
                    .otherwise(F.col(RULES)))
        .select(*parsed.columns)
    )


# ----------------------------------------------------------------------------- outputs


def bronze_rows(checked: DataFrame, source: str) -> DataFrame:
    """The rows that broke no rule, in exactly the bronze schema of the source."""
    schema = bronze_schema(source)
    return (
        checked
        .where(F.size(RULES) == 0)
        .select(*[F.col(f.name).cast(f.dataType) for f in schema.fields])
    )


def quarantine_rows(checked: DataFrame, quarantined_at: dt.datetime) -> DataFrame:
    """The rows that broke at least one rule, in QUARANTINE_SCHEMA."""
    return (
        checked
        .where(F.size(RULES) > 0)
        .withColumn("quarantined_at", F.lit(quarantined_at).cast(T.TimestampType()))
        .select(*[F.col(f.name).cast(f.dataType) for f in QUARANTINE_SCHEMA.fields])
    )


def outcome_counts(checked: DataFrame) -> DataFrame:
    """Rows per landing day, source_file and combination of broken rules (an empty
    `rules` array counts the kept rows): small, and enough to report read, kept,
    quarantined and rows per rule for every file and day."""
    return (checked.groupBy("landing_date", "source_file", RULES)
            .agg(F.count(F.lit(1)).alias("rows")))
