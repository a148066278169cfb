"""Where this process runs."""

from __future__ import annotations

import os


def on_databricks() -> bool:
    """True inside a Databricks runtime (job cluster, all-purpose cluster, serverless)."""
    return "DATABRICKS_RUNTIME_VERSION" in os.environ
