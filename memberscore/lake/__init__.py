"""The table I/O layer: one interface (`Lake`), two backends, chosen by conf.

`lake.backend: auto` is delta-spark, on Databricks and locally alike (the local Spark
session carries Delta's jars); `delta-rs` is chosen only by name.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from memberscore.errors import MissingDependencyError
from memberscore.lake.base import (
    Between,
    Commit,
    HistoryEntry,
    Lake,
    OneOf,
    PartitionExport,
    PartitionFilter,
    PartitionValue,
)
from memberscore.spark import delta_spark_available

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from memberscore.config import LakeSettings

__all__ = [
    "Between", "Commit", "HistoryEntry", "Lake", "OneOf", "PartitionExport", "PartitionFilter",
    "PartitionValue",
    "open_lake", "resolve_backend",
]


def resolve_backend(settings: LakeSettings, spark: SparkSession) -> str:
    """The backend `open_lake` will use for these settings and this session."""
    return "delta-spark" if settings.backend == "auto" else settings.backend


def open_lake(settings: LakeSettings, spark: SparkSession, home: Path) -> Lake:
    """The Lake for these settings; `home` is the local-state root (for `<home>/lake`)."""
    root = Path(settings.root) if settings.root else home / "lake"
    backend = resolve_backend(settings, spark)
    if backend == "delta-spark":
        if not delta_spark_available(spark):
            raise MissingDependencyError(
                "the delta-spark lake needs Delta on Spark's classpath with its SQL "
                "extension, and this Spark session has neither; build it with "
                "memberscore.spark.get_spark (run `make jars` if a jar is missing)"
            )
        from memberscore.lake.delta_spark import DeltaSparkLake

        use_root = None if settings.catalog else root
        return DeltaSparkLake(spark, use_root, settings.catalog, settings.schema)
    if settings.catalog:
        raise MissingDependencyError(
            "lake.catalog is set (Unity Catalog tables) but the delta-rs backend only "
            "reaches local folders; use lake.backend delta-spark on Databricks"
        )
    from memberscore.lake.delta_rs import DeltaRsLake

    return DeltaRsLake(spark, root)
