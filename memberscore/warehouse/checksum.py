"""The day checksum that reconciles a lake table with its Snowflake copy.

Both sides compute, for the rows of one day:
- `rows`: the row count;
- `keysum`: the sum, over rows, of an integer taken from the MD5 of the row's
  canonical key string.

The canonical key string joins the key columns' text forms with the unit separator
(U+001F), a null key becoming the record separator (U+001E): strings as they are,
dates as `YYYY-MM-DD`, integers and booleans in their plain text.  The integer is
the last 14 hex digits of the lower-case MD5 hex digest (56 bits), so a row adds
less than 2**56 and a day of a billion rows stays far inside NUMBER(38, 0).

Why this shape: Snowflake's HASH and Spark's hash are different functions, so
neither can be used; MD5 of the same UTF-8 bytes is identical everywhere.  A sum is
order-independent (no sorting, no shuffle) and is one aggregate on each side: Spark
computes it while writing the Parquet files (an Observation, no extra pass), and
Snowflake in one query.  A missing, extra, duplicated or altered key changes
`rows` or `keysum` except with probability about 2**-56.

Snowflake has no hex-to-number function that every engine we run against accepts
(TO_NUMBER with an 'XX' format is missing from the local warehouse), so the SQL
reads the 14 digits as 7 bytes: each two-digit pair is found in the list
'00,01,...,ff', whose position gives its value.  Every step is exact integer
arithmetic, and the sum comes back as text so no client turns it into a float.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql import types as T

from memberscore.errors import WarehouseError

VERSION = "v1"
SEPARATOR = "\x1f"
NULL_TOKEN = "\x1e"
_DIGITS = 14  # hex digits taken from the digest: 56 bits (7 bytes)
_FIRST = 32 - _DIGITS + 1  # 1-based position of the first of them
_BYTES = ",".join(f"{value:02x}" for value in range(256))  # '00,01,...,ff'

KEY_TYPES = (T.StringType, T.DateType, T.ByteType, T.ShortType, T.IntegerType, T.LongType,
             T.BooleanType)


@dataclass(frozen=True)
class DayChecksum:
    """Row count and key sum of one table-day; equal on both sides when reconciled."""

    rows: int
    keysum: int

    @property
    def text(self) -> str:
        """The form stored in PUBLISH_LOG.CHECKSUM: `v1:<keysum>`."""
        return f"{VERSION}:{self.keysum}"


def check_key_types(schema: T.StructType, keys: Sequence[str], table: str) -> None:
    """Refuse key columns whose text form could differ between Spark and Snowflake."""
    by_name = {f.name: f for f in schema.fields}
    for key in keys:
        field = by_name.get(key)
        if field is None:
            raise WarehouseError(
                f"{table} has no key column {key!r} (columns: {', '.join(by_name)}); "
                "the table does not match memberscore.tables.OUTPUT_TABLES"
            )
        if not isinstance(field.dataType, KEY_TYPES):
            raise WarehouseError(
                f"key column {key!r} of {table} has type {field.dataType.simpleString()}; "
                "reconciliation supports string, date, integer and boolean keys"
            )


# ------------------------------------------------------------------------ Spark side


def spark_key_value(keys: Sequence[str]) -> Column:
    """Per row: the 60-bit integer from the MD5 of the canonical key string."""
    parts = [F.coalesce(F.col(k).cast("string"), F.lit(NULL_TOKEN)) for k in keys]
    digest = F.md5(F.concat_ws(SEPARATOR, *parts))
    return F.conv(F.substring(digest, _FIRST, _DIGITS), 16, 10).cast(T.DecimalType(20, 0))


def spark_aggregates(keys: Sequence[str]) -> list[Column]:
    """Aggregates `rows` and `keysum` (for `DataFrame.observe` or `agg`)."""
    return [
        F.count(F.lit(1)).alias("rows"),
        F.coalesce(F.sum(spark_key_value(keys)), F.lit(0).cast(T.DecimalType(38, 0)))
        .alias("keysum"),
    ]


# -------------------------------------------------------------------- Snowflake side


def _byte(position: int) -> str:
    """SQL for the value of the hex pair at `position` of H: its place in '00,...,ff'."""
    return f"CAST((POSITION(SUBSTR(H, {position}, 2), '{_BYTES}') - 1) / 3 AS BIGINT)"


def sql_checksum_query(table: str, keys: Sequence[str], date_column: str) -> str:
    """One query returning (rows, keysum as text) for the day bound to its `?`.

    `table`, `keys` and `date_column` are validated Snowflake identifiers.  The key sum
    is returned as text so no client or engine turns it into a float on the way.
    """
    canonical = f" || CHR({ord(SEPARATOR)}) || ".join(
        f"COALESCE(TO_VARCHAR({k}), CHR({ord(NULL_TOKEN)}))" for k in keys
    )
    value = " + ".join(
        f"{_byte(p)} * {256 ** ((31 - p) // 2)}" for p in range(_FIRST, 33, 2)
    )
    return (
        f"SELECT COUNT(*) AS ROW_COUNT, "
        f"TO_VARCHAR(SUM(CAST({value} AS NUMBER(38, 0)))) AS KEYSUM "
        f"FROM (SELECT MD5({canonical}) AS H FROM {table} WHERE {date_column} = ?)"
    )


def from_sql_row(row: tuple[object, ...] | None) -> DayChecksum:
    """The DayChecksum from the query's one row."""
    if row is None:
        return DayChecksum(0, 0)
    count, keysum = row
    return DayChecksum(int(str(count or 0)), int(str(keysum)) if keysum is not None else 0)
