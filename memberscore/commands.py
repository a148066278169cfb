"""The commands of memberscore: the one list the CLI, the `memberscore-<job>` console
scripts of the wheel (setup.py) and their functions (memberscore.entrypoints) are made
from.

Standard library only: setup.py loads this file by its path, without importing the
package.
"""

from __future__ import annotations

# command -> one-line description; the module is memberscore.jobs.<command>
COMMANDS: dict[str, str] = {
    "demo": "generate synthetic sources and run the whole pipeline for the last day",
    "generate": "write synthetic landing files (members, transactions, member_outcomes)",
    "ingest": "landing files of one day (or a range) -> bronze Delta tables, bad rows "
              "quarantined",
    "features": "member feature snapshot as of a day -> member_features_daily",
    "backfill": "feature snapshots for every day in a range, resumable, each day atomic",
    "validate": "Great Expectations suites over a day's bronze rows and features",
    "train": "point-in-time training set, train, log and register in MLflow",
    "score": "batch-score a day's feature snapshot with the champion model",
    "publish": "publish a day's rows of the published tables to Snowflake",
    "monitor": "drift and freshness metrics for a day -> drift_metrics",
    "pipeline": "ingest, features, validate, score, publish, monitor for one day",
    "warehouse": "serve the local Snowflake-compatible warehouse in the foreground",
    "broker": "serve the local Kafka broker in the foreground",
    "events": "show the \"day published\" events; send the pending ones",
    "api": "serve the scores API (Flask) over the published tables",
}

# Commands that serve in the foreground, for a person: no Databricks entry point.
SERVERS = frozenset({"warehouse", "broker", "api"})

# Commands a Databricks python_wheel_task runs, as `memberscore-<command>`.
JOBS: tuple[str, ...] = tuple(name for name in COMMANDS if name not in SERVERS)
