"""Delta (Spark) column types -> Snowflake column types, and the table DDL built from them.

The mapping keeps meaning, not just bits:
- decimals stay decimals: `decimal(p,s)` -> `NUMBER(p,s)` (money never becomes FLOAT);
- integers keep their range: byte/short/int/long -> `NUMBER(3|5|10|19, 0)`;
- dates stay dates: `date` -> `DATE`;
- instants keep UTC: Spark `timestamp` (an instant, stored as UTC) -> `TIMESTAMP_TZ`.
  We chose TIMESTAMP_TZ over "TIMESTAMP_NTZ holding UTC wall-clock": the offset
  (+00:00) travels with every value, so a reader whose session TIMEZONE is not UTC
  still compares and converts instants correctly, and nobody has to know a convention.
  Spark `timestamp_ntz` (no zone by definition) -> `TIMESTAMP_NTZ`.
- double/float -> `FLOAT` (Snowflake's FLOAT is a 64-bit double); string -> `VARCHAR`;
  boolean -> `BOOLEAN`; binary -> `BINARY`.
Nested types (arrays, maps, structs) are refused: nothing we publish has them, and a
silent VARIANT would hide a schema change from analysts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pyspark.sql import types as T

from memberscore.errors import WarehouseError
from memberscore.warehouse.identifiers import identifier


@dataclass(frozen=True)
class SnowflakeType:
    """A Snowflake column type as it appears in DDL and in INFORMATION_SCHEMA.COLUMNS."""

    name: str  # INFORMATION_SCHEMA data_type: NUMBER, FLOAT, TEXT, DATE, TIMESTAMP_TZ, ...
    precision: int | None = None
    scale: int | None = None

    @property
    def ddl(self) -> str:
        if self.name == "NUMBER":
            return f"NUMBER({self.precision}, {self.scale})"
        if self.name == "TEXT":
            return "VARCHAR"
        return self.name

    def matches(self, data_type: str, precision: int | None, scale: int | None) -> bool:
        """Whether an existing column (from INFORMATION_SCHEMA) has this type."""
        if data_type.upper() != self.name:
            return False
        if self.name == "NUMBER":
            return (precision, scale) == (self.precision, self.scale)
        return True


_INTEGER_DIGITS: dict[type[T.DataType], int] = {
    T.ByteType: 3,
    T.ShortType: 5,
    T.IntegerType: 10,
    T.LongType: 19,
}


def snowflake_type(dtype: T.DataType, where: str) -> SnowflakeType:
    """The Snowflake type for a Spark type; WarehouseError naming `where` when unsupported."""
    if isinstance(dtype, T.DecimalType):
        return SnowflakeType("NUMBER", dtype.precision, dtype.scale)
    for spark_type, digits in _INTEGER_DIGITS.items():
        if isinstance(dtype, spark_type):
            return SnowflakeType("NUMBER", digits, 0)
    if isinstance(dtype, (T.DoubleType, T.FloatType)):
        return SnowflakeType("FLOAT")
    if isinstance(dtype, (T.StringType, T.VarcharType, T.CharType)):
        return SnowflakeType("TEXT")
    if isinstance(dtype, T.BooleanType):
        return SnowflakeType("BOOLEAN")
    if isinstance(dtype, T.DateType):
        return SnowflakeType("DATE")
    if isinstance(dtype, T.TimestampNTZType):
        return SnowflakeType("TIMESTAMP_NTZ")
    if isinstance(dtype, T.TimestampType):
        return SnowflakeType("TIMESTAMP_TZ")
    if isinstance(dtype, T.BinaryType):
        return SnowflakeType("BINARY")
    raise WarehouseError(
        f"{where} has type {dtype.simpleString()}, which is not published to Snowflake "
        "(supported: decimal, integers, double, string, boolean, date, timestamp, binary)"
    )


@dataclass(frozen=True)
class Column:
    """One published column: its lake name, Snowflake name and type."""

    source: str  # the lake (Spark) column name, e.g. inflow_sum_30d
    name: str  # the Snowflake identifier, e.g. INFLOW_SUM_30D
    type: SnowflakeType
    nullable: bool

    @property
    def ddl(self) -> str:
        return f"{self.name} {self.type.ddl}" + ("" if self.nullable else " NOT NULL")


def columns_for(schema: T.StructType, table: str) -> list[Column]:
    """The Snowflake columns for a lake table's schema, in the lake's column order."""
    columns = []
    seen: set[str] = set()
    for field in schema.fields:
        where = f"column {field.name!r} of {table}"
        name = identifier(field.name, where)
        if name in seen:
            raise WarehouseError(
                f"{table} has two columns named {name} once upper-cased; Snowflake "
                "identifiers are case-insensitive, rename one in the lake table"
            )
        seen.add(name)
        columns.append(Column(field.name, name, snowflake_type(field.dataType, where),
                              field.nullable))
    return columns


def create_table_sql(table: str, columns: Sequence[Column], *, replace: bool = False) -> str:
    """`CREATE TABLE` DDL; `table` and the column names are validated identifiers."""
    verb = "CREATE OR REPLACE TABLE" if replace else "CREATE TABLE IF NOT EXISTS"
    body = ", ".join(c.ddl for c in columns)
    return f"{verb} {table} ({body})"


@dataclass(frozen=True)
class ExistingColumn:
    """A column of an existing Snowflake table, from INFORMATION_SCHEMA.COLUMNS."""

    name: str
    data_type: str
    precision: int | None
    scale: int | None


@dataclass(frozen=True)
class SchemaPlan:
    """How an existing target table relates to the lake schema: columns to add."""

    to_add: tuple[Column, ...]


def plan_schema(table: str, wanted: Sequence[Column],
                existing: Mapping[str, ExistingColumn]) -> SchemaPlan:
    """Compare the lake's columns with an existing Snowflake table.

    A lake column the target lacks is added (nullable: rows published before it have
    no value).  A target column the lake lacks, or a column whose type differs, fails
    with both sides named: changing a published type needs a deliberate migration.
    """
    problems = []
    for column in wanted:
        have = existing.get(column.name)
        if have is not None and not column.type.matches(have.data_type, have.precision,
                                                        have.scale):
            found = have.data_type + (f"({have.precision}, {have.scale})"
                                      if have.data_type.upper() == "NUMBER" else "")
            problems.append(f"{column.name} is {found} in Snowflake but {column.type.ddl} "
                            "in the lake")
    extra = sorted(set(existing) - {c.name for c in wanted})
    if extra:
        problems.append(f"Snowflake has columns the lake table lacks: {', '.join(extra)}")
    if problems:
        raise WarehouseError(
            f"Snowflake table {table} does not match the lake schema: "
            + "; ".join(problems)
            + ". Migrate the Snowflake table (or drop it to have publish recreate it "
            "and republish its days)"
        )
    return SchemaPlan(tuple(c for c in wanted if c.name not in existing))
