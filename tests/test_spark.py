"""The one Spark session factory: UTC, small shuffles, a clear Java message."""

from __future__ import annotations

import re
import subprocess
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


# ------------------------------------------------------------------ Delta's jars


def test_the_session_runs_delta_from_the_installed_jars(spark) -> None:  # type: ignore[no-untyped-def]
    """The jars `make install` fetched are on Spark's classpath, exactly those, with
    Delta's SQL extension and catalog, and Delta's classes come from them."""
    from memberscore.spark import (
        DELTA_CATALOG,
        DELTA_EXTENSION,
        default_jars_dir,
        delta_spark_available,
        local_jars,
    )

    expected = local_jars(default_jars_dir())
    assert {p.name for p in expected} == {"delta-spark_2.13-4.0.1.jar",
                                          "delta-storage-4.0.1.jar"}
    assert spark.conf.get("spark.jars").split(",") == [str(p) for p in expected]
    assert spark.conf.get("spark.sql.extensions") == DELTA_EXTENSION
    assert spark.conf.get("spark.sql.catalog.spark_catalog") == DELTA_CATALOG
    assert delta_spark_available(spark)
    jvm = spark._jvm
    loader = jvm.java.lang.Thread.currentThread().getContextClassLoader()
    for cls, jar in (("io.delta.tables.DeltaTable", "delta-spark_2.13-4.0.1.jar"),
                     ("io.delta.storage.LogStore", "delta-storage-4.0.1.jar")):
        found = jvm.java.lang.Class.forName(cls, False, loader)
        assert found.getProtectionDomain().getCodeSource().getLocation().getPath() \
            .endswith(jar)


def test_the_jar_pins_match_the_python_package() -> None:
    """requirements/jars.txt, the installed manifest and the delta-spark package agree."""
    import importlib.metadata

    from memberscore.spark import default_jars_dir

    repo = Path(__file__).resolve().parents[1]
    pinned = (repo / "requirements" / "jars.txt").read_text()
    assert (default_jars_dir() / "jars.txt").read_text() == pinned
    delta = importlib.metadata.version("delta-spark")
    assert f"io.delta:delta-spark_2.13:{delta} " in pinned
    assert f"io.delta:delta-storage:{delta} " in pinned


def test_a_missing_jar_is_named_with_the_command_that_fetches_it(tmp_path: Path) -> None:
    from memberscore.spark import default_jars_dir, local_jars

    (tmp_path / "jars.txt").write_text((default_jars_dir() / "jars.txt").read_text())
    (tmp_path / "delta-spark_2.13-4.0.1.jar").write_bytes(b"")
    with pytest.raises(MissingDependencyError) as err:
        local_jars(tmp_path)
    message = str(err.value)
    assert "delta-storage-4.0.1.jar (io.delta:delta-storage:4.0.1)" in message
    assert "delta-spark_2.13" not in message.split("missing jar(s)")[1].split(";")[0]
    assert "make jars" in message and str(tmp_path) in message


def test_a_jars_folder_without_its_manifest_says_how_to_install(tmp_path: Path) -> None:
    from memberscore.spark import local_jars

    with pytest.raises(MissingDependencyError, match=r"not installed: .*jars.txt not found; "
                                                     r"run `make jars`"):
        local_jars(tmp_path / "nothing-here")


def test_a_delta_jar_of_another_version_than_the_package_is_refused(tmp_path: Path) -> None:
    from memberscore.spark import local_jars

    (tmp_path / "jars.txt").write_text("io.delta:delta-spark_2.13:3.2.0  abc\n")
    (tmp_path / "delta-spark_2.13-3.2.0.jar").write_bytes(b"")
    with pytest.raises(MissingDependencyError, match=r"Delta's jar is 3\.2\.0 .* delta-spark "
                                                     r"package is 4\.0\.1"):
        local_jars(tmp_path)


def _fetch_jars(dest: Path, fake_bin: Path) -> subprocess.CompletedProcess[str]:
    import os

    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PATH": f"{fake_bin}:{os.environ['PATH']}"}
    return subprocess.run(
        ["bash", str(repo / "requirements" / "fetch-jars.sh"),
         str(repo / "requirements" / "jars.txt"), str(dest)],
        capture_output=True, text=True, env=env, timeout=60, check=False)


def test_a_second_install_fetches_nothing_and_a_damaged_jar_is_fetched_again(
        tmp_path: Path) -> None:
    """Jars already present with their pinned sha256 are not fetched (Maven is not even
    called); a jar whose bytes differ is, and Maven's failure is reported by name."""
    import shutil

    from memberscore.spark import default_jars_dir

    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    calls = tmp_path / "mvn-calls"
    (fake_bin / "mvn").write_text(f'#!/bin/sh\necho "$@" >> {calls}\nexit 1\n')
    (fake_bin / "mvn").chmod(0o755)
    dest = tmp_path / "jars"
    dest.mkdir()
    for jar in default_jars_dir().glob("*.jar"):
        shutil.copy(jar, dest)

    again = _fetch_jars(dest, fake_bin)
    assert again.returncode == 0, again.stderr
    assert "0 fetched, 2 already present" in again.stdout
    assert not calls.exists()
    assert (dest / "jars.txt").exists()

    (dest / "delta-storage-4.0.1.jar").write_bytes(b"not a jar")
    damaged = _fetch_jars(dest, fake_bin)
    assert damaged.returncode == 1
    assert "Maven could not fetch io.delta:delta-storage:4.0.1" in damaged.stderr
    assert "io.delta:delta-storage:4.0.1" in calls.read_text()
    assert "delta-spark" not in calls.read_text()


def test_the_suite_evaluates_interpreted_and_compiled_spark_compiles(
        spark, request: pytest.FixtureRequest) -> None:  # type: ignore[no-untyped-def]
    def plan() -> str:
        frame = spark.range(10).where("id % 3 = 0").selectExpr("sum(id * 2) AS total")
        assert frame.collect()[0]["total"] == 2 * (0 + 3 + 6 + 9)
        return frame._jdf.queryExecution().executedPlan().toString()

    # a compiled stage prints as `*(n) Operator`
    assert not re.search(r"\*\(\d+\) ", plan())
    request.getfixturevalue("compiled_spark")
    assert re.search(r"\*\(\d+\) HashAggregate", plan())
    assert spark.conf.get("spark.sql.codegen.factoryMode") == "FALLBACK"
