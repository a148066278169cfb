"""The day checksum that reconciles a lake table with its Snowflake copy.

Every engine computes, for the rows of one day:
- `rows`: the row count;
- `keysum`: the sum, over rows, of an integer taken from the MD5 of the row's
  canonical key string.

The canonical key string joins the key columns' text forms with the unit separator
(U+001F), a null key becoming the record separator (U+001E): strings as they are,
dates as `YYYY-MM-DD`, integers and booleans in their plain text.  The integer is
the last 14 hex digits of the lower-case MD5 hex digest (56 bits: the low 7 bytes
of the digest read big-endian), so a row adds less than 2**56 and a day of a
billion rows stays far inside NUMBER(38, 0).

Why this shape: Snowflake's HASH and Spark's hash are different functions, so
neither can be used; MD5 of the same UTF-8 bytes is identical everywhere.  A sum is
order-independent (no sorting, no shuffle) and is one aggregate on each side.  A
missing, extra, duplicated or altered key changes `rows` or `keysum` except with
probability about 2**-56.

The three implementations, proven equal by tests (edge values included):
- Arrow (`arrow_checksum`, `parquet_checksum`): what the publisher computes over the
  Parquet files it is about to load, exported from one pinned Delta version;
- Spark (`spark_aggregates`): the same as column aggregates, for checks in Spark;
- Snowflake (`sql_checksum_query`): `MD5_NUMBER_LOWER64` is the low 8 bytes of the
  digest read big-endian, so modulo 2**56 it is our integer; one short query with
  exact NUMBER arithmetic, the sum returned as text so no client turns it into a
  float.  (The local warehouse translates `MD5_NUMBER_LOWER64` for DuckDB, see
  `local_server`.)
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql import types as T

from memberscore.errors import WarehouseError

VERSION = "v1"
SEPARATOR = "\x1f"
NULL_TOKEN = "\x1e"
_DIGITS = 14  # hex digits taken from the digest: 56 bits (7 bytes)
_FIRST = 32 - _DIGITS + 1  # 1-based position of the first of them
_MODULUS = 2 ** (4 * _DIGITS)  # 2**56
_TAIL = _DIGITS // 2  # the digest's last 7 bytes

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
    """Refuse key columns whose text form could differ between the engines."""
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


# ------------------------------------------------------------------------ Arrow side


def _key_strings(batch: pa.RecordBatch, keys: Sequence[str]) -> pa.Array:
    """The canonical key string of every row, as UTF-8 binary."""
    parts = []
    for key in keys:
        column = batch.column(key)
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
                or pa.types.is_date32(column.type) or pa.types.is_integer(column.type)
                or pa.types.is_boolean(column.type)):
            raise WarehouseError(
                f"key column {key!r} has Arrow type {column.type}; reconciliation supports "
                "string, date, integer and boolean keys"
            )
        # Arrow's text forms are Spark's and Snowflake's: 2026-03-31, -42, true.
        parts.append(pc.fill_null(pc.cast(column, pa.string()), NULL_TOKEN))
    joined = parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, SEPARATOR)
    return pc.cast(joined, pa.large_binary())


def _keysum(strings: pa.Array) -> int:
    """Sum of the 56-bit integers of the MD5s of `strings` (no nulls), exact."""
    if len(strings) == 0:
        return 0
    # Slice the values out of Arrow's buffers: much faster than to_pylist().
    _, offsets_buffer, data_buffer = strings.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64)[
        strings.offset:strings.offset + len(strings) + 1].tolist()
    data = data_buffer.to_pybytes() if data_buffer is not None else b""
    md5 = hashlib.md5
    digests = b"".join([md5(data[start:end]).digest()
                        for start, end in itertools.pairwise(offsets)])
    tail = np.frombuffer(digests, dtype=np.uint8).reshape(-1, 16)[:, 16 - _TAIL:]
    tail = tail.astype(np.int64)
    # Two 28-bit halves summed in int64 stay exact for up to 2**35 rows per call.
    high = (tail[:, 0] << 20) | (tail[:, 1] << 12) | (tail[:, 2] << 4) | (tail[:, 3] >> 4)
    low = ((tail[:, 3] & 0x0F) << 24) | (tail[:, 4] << 16) | (tail[:, 5] << 8) | tail[:, 6]
    return (int(high.sum()) << 28) + int(low.sum())


def arrow_checksum(batches: Iterable[pa.RecordBatch | pa.Table],
                   keys: Sequence[str]) -> DayChecksum:
    """The checksum of the rows of `batches` (all of them: filter the day first)."""
    rows = keysum = 0
    for item in batches:
        for batch in item.to_batches() if isinstance(item, pa.Table) else (item,):
            rows += batch.num_rows
            if batch.num_rows:
                keysum += _keysum(_key_strings(batch, keys))
    return DayChecksum(rows, keysum)


def parquet_checksum(files: Sequence[Path], keys: Sequence[str],
                     batch_rows: int = 1 << 20) -> DayChecksum:
    """The checksum of the rows in Parquet `files`, reading only the key columns a
    batch at a time (memory stays bounded on a large day)."""
    import pyarrow.parquet as pq

    def batches() -> Iterable[pa.RecordBatch]:
        for path in files:
            with pq.ParquetFile(path) as parquet:
                yield from parquet.iter_batches(batch_size=batch_rows, columns=list(keys))

    return arrow_checksum(batches(), keys)


# ------------------------------------------------------------------------ Spark side


def spark_key_value(keys: Sequence[str]) -> Column:
    """Per row: the 56-bit integer from the MD5 of the canonical key string."""
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


def sql_checksum_query(table: str, keys: Sequence[str], date_column: str) -> str:
    """One query returning (rows, keysum as text) for the day bound to its `?`.

    `table`, `keys` and `date_column` are validated Snowflake identifiers.  The key sum
    is returned as text so no client or engine turns it into a float on the way.
    """
    canonical = f" || CHR({ord(SEPARATOR)}) || ".join(
        f"COALESCE(TO_VARCHAR({k}), CHR({ord(NULL_TOKEN)}))" for k in keys
    )
    return (
        f"SELECT COUNT(*) AS ROW_COUNT, TO_VARCHAR(SUM(CAST(MOD(MD5_NUMBER_LOWER64("
        f"{canonical}), {_MODULUS}) AS NUMBER(38, 0)))) AS KEYSUM "
        f"FROM {table} WHERE {date_column} = ?"
    )


def from_sql_row(row: tuple[object, ...] | None) -> DayChecksum:
    """The DayChecksum from the query's one row."""
    if row is None:
        return DayChecksum(0, 0)
    count, keysum = row
    return DayChecksum(int(str(count or 0)), int(str(keysum)) if keysum is not None else 0)
