"""The output tables of the contract: keys, partitioning and (where not derived from
the feature registry) their declared schemas.  Publishing, validation, checksums and
idempotent writes all read keys and partitions from here."""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import types as T


@dataclass(frozen=True)
class TableSpec:
    """An output table: its key columns and the date column it is partitioned by."""

    name: str
    keys: tuple[str, ...]
    date_column: str = "as_of_date"

    @property
    def partition_by(self) -> tuple[str, ...]:
        return (self.date_column,)


MEMBER_FEATURES_DAILY = TableSpec("member_features_daily", ("member_id", "as_of_date"))
MEMBER_SCORES = TableSpec("member_scores", ("member_id", "as_of_date", "model_name"))
DRIFT_METRICS = TableSpec("drift_metrics",
                          ("as_of_date", "model_name", "column_name", "metric"))

OUTPUT_TABLES: dict[str, TableSpec] = {
    spec.name: spec for spec in (MEMBER_FEATURES_DAILY, MEMBER_SCORES, DRIFT_METRICS)
}

MEMBER_SCORES_SCHEMA = T.StructType([
    T.StructField("member_id", T.StringType(), False),
    T.StructField("as_of_date", T.DateType(), False),
    T.StructField("model_name", T.StringType(), False),
    T.StructField("model_version", T.StringType(), False),
    T.StructField("score", T.DoubleType(), False),
    T.StructField("score_band", T.StringType(), False),
    T.StructField("run_id", T.StringType(), False),
    T.StructField("scored_at", T.TimestampType(), False),
])

DRIFT_METRICS_SCHEMA = T.StructType([
    T.StructField("as_of_date", T.DateType(), False),
    T.StructField("model_name", T.StringType(), False),
    T.StructField("column_name", T.StringType(), False),
    T.StructField("metric", T.StringType(), False),
    T.StructField("value", T.DoubleType(), True),
    T.StructField("threshold", T.DoubleType(), True),
    T.StructField("status", T.StringType(), False),
    T.StructField("run_id", T.StringType(), False),
])
