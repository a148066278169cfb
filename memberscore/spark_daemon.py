"""The Python worker daemon of local Spark sessions (`spark.python.daemon.module`).

Why it exists: local Spark puts `pyspark.zip`, the py4j zip and the spark-core jar
on every Python worker's sys.path, and each task starts with
`importlib.invalidate_caches()`.  On Python 3.11 that makes `zipimport` re-read the
whole directory of every zip and jar on the path (the spark-core jar alone has over
5,000 entries) once per cached zip importer: 0.1-0.3 s of CPU at the start of every
Python UDF task, measured with cProfile inside the worker.  A one-partition
`mlflow.pyfunc.spark_udf` scoring pass paid it on every run.

What it does: when the pyspark these archives carry is the installed pyspark package
(a pip-installed pyspark is its own SPARK_HOME, so the zip lies inside the package
folder), it drops the archives from sys.path before pyspark is imported, so the
workers import the very same pyspark from the package folder and the per-task cache
invalidation only touches plain directories.  Anything else (a separate
SPARK_HOME, whose Python files may differ from the installed package) keeps
Spark's path untouched.  Then it runs pyspark's own daemon unchanged.

Only `memberscore.spark.get_spark` sets it, for sessions it builds itself;
Databricks keeps its own workers.
"""

from __future__ import annotations

import importlib.machinery
import sys
from pathlib import Path


def is_spark_archive(entry: str) -> bool:
    """pyspark.zip, py4j-*.zip, or a jar (paths into them included)."""
    lowered = entry.lower()
    return ".jar" in lowered or "pyspark.zip" in lowered or (
        "py4j" in lowered and ".zip" in lowered)


def _installed_pyspark(path: list[str]) -> Path | None:
    """The folder of the pyspark package importable from `path`, if any."""
    spec = importlib.machinery.PathFinder.find_spec("pyspark", path)
    if spec is None or not spec.origin:
        return None
    return Path(spec.origin).resolve().parent


def prune_spark_archives(path: list[str]) -> list[str]:
    """`path` without Spark's archives when the installed pyspark package is the one
    they come from; otherwise `path` unchanged."""
    archives = [p for p in path if is_spark_archive(p)]
    if not archives:
        return path
    kept = [p for p in path if not is_spark_archive(p)]
    package = _installed_pyspark(kept)
    if package is None:
        return path
    for archive in archives:
        try:
            Path(archive).resolve().relative_to(package)
        except ValueError:
            return path  # an archive from elsewhere: its pyspark may differ
    return kept


def main() -> None:
    pruned = prune_spark_archives(list(sys.path))
    if pruned != sys.path:
        sys.path[:] = pruned
        # importers created while `python -m` searched for this module
        for key in [k for k in sys.path_importer_cache if is_spark_archive(k)]:
            del sys.path_importer_cache[key]
    from pyspark import daemon

    daemon.manager()


if __name__ == "__main__":
    main()
