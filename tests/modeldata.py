"""Hand-made lake tables and settings for the training and scoring tests.

Rows of `member_features_daily` are written with the registry's declared schema and
labels with the bronze schema of `member_outcomes`, exactly as the real jobs write
them; features a test does not care about take a neutral value (0, or null where
the registry allows null).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from memberscore.config import Settings
from memberscore.context import RunContext
from memberscore.feature_registry import (
    FEATURES,
    MAX_WINDOW_DAYS,
    feature_table_schema,
    model_feature_names,
)
from memberscore.schemas import bronze_schema, bronze_table

FEATURE_TABLE = "member_features_daily"
LABEL_TABLE = bronze_table("member_outcomes")
MODEL_FEATURES = tuple(model_feature_names())
CUTOFF = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


def _neutral(dtype: T.DataType, nullable: bool) -> Any:
    if nullable:
        return None
    if isinstance(dtype, T.DecimalType):
        return Decimal("0.00")
    if isinstance(dtype, T.DoubleType):
        return 0.0
    return 0


def _typed(dtype: T.DataType, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(dtype, T.DecimalType):
        return Decimal(str(value)).quantize(Decimal("0.01"))
    if isinstance(dtype, T.DoubleType):
        return float(value)
    if isinstance(dtype, (T.LongType, T.IntegerType)):
        return int(value)
    return value


def feature_frame(spark: SparkSession, records: Iterable[Mapping[str, Any]]) -> DataFrame:
    """Rows of member_features_daily: each record gives member_id, as_of_date and any
    feature values; the rest are neutral, history complete (90 days) unless given,
    lineage is fixed."""
    rows = []
    for record in records:
        row = []
        for feature in FEATURES:
            if feature.name in record:
                row.append(_typed(feature.dtype, record[feature.name]))
            elif feature.name in ("feature_cutoff_at", "computed_at"):
                row.append(CUTOFF)
            elif feature.name == "run_id":
                row.append("test-features")
            elif feature.name == "history_days":
                row.append(MAX_WINDOW_DAYS)
            else:
                row.append(_neutral(feature.dtype, feature.nullable))
        rows.append(tuple(row))
    return spark.createDataFrame(rows, feature_table_schema())


def label_frame(spark: SparkSession, records: Iterable[tuple[str, dt.date, bool | None]],
                landing_date: dt.date | None = None, source_file: str = "outcomes.csv"
                ) -> DataFrame:
    """Rows of bronze_member_outcomes (member_id, label_date, churned + lineage)."""
    rows = [(member, label_date, churned, landing_date or label_date, source_file, "test-ingest")
            for member, label_date, churned in records]
    return spark.createDataFrame(rows, bronze_schema("member_outcomes"))


def write_features(ctx: RunContext, frame: DataFrame) -> None:
    ctx.lake.append(FEATURE_TABLE, frame, ["as_of_date"])


def write_labels(ctx: RunContext, frame: DataFrame) -> None:
    ctx.lake.append(LABEL_TABLE, frame)


def model_settings(settings: Settings, *, home: Path, lake_root: Path, names: tuple[str, ...],
                   **models: Any) -> Settings:
    """`settings` with its own lake, a shared MLflow home, and model overrides (small
    models by default: tests are about behaviour, not accuracy)."""
    model_conf = {"max_iter": 50, "min_training_rows": 50, "holdout_weeks": 2, **models}
    return dataclasses.replace(
        settings,
        home=str(home),
        lake=dataclasses.replace(settings.lake, root=str(lake_root)),
        models=dataclasses.replace(settings.models, names=names, **model_conf),
    )
