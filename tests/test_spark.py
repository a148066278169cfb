"""The one Spark session factory: UTC, small shuffles, a clear Java message."""

from __future__ import annotations

from pathlib import Path

import pytest

from memberscore.errors import MissingDependencyError
from memberscore.spark import check_java, java_major_version


def test_session_is_utc_with_small_shuffles(spark) -> None:  # type: ignore[no-untyped-def]
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    assert spark.conf.get("spark.sql.shuffle.partitions") == "2"
    row = spark.sql("select cast('2026-03-29 01:30:00' as timestamp) as ts").first()
    assert spark.sql("select date_format(cast('2026-03-29 01:30:00' as timestamp), "
                     "'HH:mm') as t").first()["t"] == "01:30"  # no DST shift (BST starts)
    assert row is not None


def test_java_17_is_found_here() -> None:
    major = java_major_version()
    assert major is not None and major >= 17


def test_missing_java_is_one_clear_message(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-jdk"))
    with pytest.raises(MissingDependencyError) as err:
        check_java()
    assert "Java 17 is required" in str(err.value) and "JAVA_HOME" in str(err.value)


def test_old_java_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "jdk8" / "bin"
    fake.mkdir(parents=True)
    (fake / "java").write_text('#!/bin/sh\necho \'openjdk version "1.8.0_392"\' >&2\n')
    (fake / "java").chmod(0o755)
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "jdk8"))
    with pytest.raises(MissingDependencyError, match="found Java 8"):
        check_java()


def test_python_workers_run_the_drivers_interpreter(spark) -> None:  # type: ignore[no-untyped-def]
    """UDF workers (model scoring) must import what the driver imports: they run the
    venv's Python even when `.venv/bin/memberscore` runs without an activated venv."""
    import os
    import sys

    from pyspark.sql import functions as F

    @F.udf("string")
    def interpreter(_: int) -> str:
        import sys as worker_sys

        return worker_sys.executable

    expected = os.environ.get("PYSPARK_PYTHON", sys.executable)
    assert spark.range(1).select(interpreter("id")).first()[0] == expected


def test_python_workers_import_the_installed_pyspark(spark) -> None:  # type: ignore[no-untyped-def]
    """The local daemon (memberscore.spark_daemon) takes Spark's zips and jars off the
    workers' path, so a task no longer re-reads their directories; the workers then
    import the same pyspark package the driver imported."""
    import pyspark
    from pyspark.sql import functions as F

    assert spark.conf.get("spark.python.daemon.module") == "memberscore.spark_daemon"

    @F.udf("string")
    def worker_view(_: int) -> str:
        import sys as worker_sys

        import pyspark as worker_pyspark

        from memberscore.spark_daemon import is_spark_archive

        archives = [p for p in worker_sys.path if is_spark_archive(p)]
        return f"{worker_pyspark.__file__}|{len(archives)}"

    origin, archives = spark.range(1).select(worker_view("id")).first()[0].split("|")
    assert origin == pyspark.__file__ and ".zip" not in origin
    assert archives == "0"


def test_spark_archives_are_pruned_only_when_they_belong_to_the_installed_pyspark(
        tmp_path: Path) -> None:
    from memberscore.spark_daemon import prune_spark_archives

    site = tmp_path / "site-packages"
    package = site / "pyspark"
    (package / "python" / "lib").mkdir(parents=True)
    (package / "jars").mkdir()
    (package / "__init__.py").write_text("")
    ours = [str(package / "python" / "lib" / "pyspark.zip"),
            str(package / "python" / "lib" / "py4j-0.10.9.9-src.zip"),
            str(package / "jars" / "spark-core_2.13-4.0.1.jar")]
    path = [*ours, str(tmp_path / "work"), str(site)]
    assert prune_spark_archives(path) == [str(tmp_path / "work"), str(site)]
    # a SPARK_HOME elsewhere: its Python files may differ from the package, keep all
    other = [str(tmp_path / "spark-home" / "python" / "lib" / "pyspark.zip"), str(site)]
    assert prune_spark_archives(other) == other
    # no installed pyspark to fall back on: keep all
    assert prune_spark_archives([*ours, str(tmp_path / "work")]) == \
        [*ours, str(tmp_path / "work")]
    assert prune_spark_archives([str(site)]) == [str(site)]
