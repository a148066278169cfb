"""The one place a SparkSession is made.

On Databricks the runtime already has a session and we use it as it is.  Locally we
build one from `conf` (`spark:` section): UTC session time zone, few shuffle
partitions, Arrow transfers on, the UI off unless asked for, and Delta the way
Databricks runs it: Delta's jars on the classpath with its SQL extension and catalog.
The jars are the ones `make install` fetched with Maven (pinned in
`requirements/jars.txt`, copied into the jars folder as its manifest); nothing is
fetched at run time, and a missing jar fails the start with its name and the command
that fetches it.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
import re
import shutil
import subprocess
import sys
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from memberscore.errors import MissingDependencyError
from memberscore.logs import process_output_to_run_log
from memberscore.runtime import on_databricks

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from memberscore.config import SparkSettings

log = logging.getLogger(__name__)

MIN_JAVA = 17
DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"
JARS_MANIFEST = "jars.txt"
FETCH_JARS = "make jars"


def java_major_version() -> int | None:
    """The major version of the `java` Spark will start, or None when there is none."""
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not java or not Path(java).exists():
        return None
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def check_java() -> None:
    """Fail early, in one clear line, when Java 17+ is not there for local Spark."""
    major = java_major_version()
    if major is None:
        raise MissingDependencyError(
            f"Java {MIN_JAVA} is required for local Spark but no `java` was found "
            "(checked $JAVA_HOME and PATH); install a JDK 17, e.g. "
            "`apt-get install openjdk-17-jre-headless`, and set JAVA_HOME"
        )
    if major < MIN_JAVA:
        raise MissingDependencyError(
            f"Java {MIN_JAVA} or newer is required for Spark 4, found Java {major}; "
            "point JAVA_HOME at a JDK 17"
        )


def default_jars_dir() -> Path:
    """Where `make install` puts the jars: `<venv>/share/memberscore/jars`."""
    return Path(sys.prefix) / "share" / "memberscore" / "jars"


def jars_dir(settings: SparkSettings) -> Path:
    """The jars folder of these settings (`spark.jars_dir`, null = the default)."""
    return Path(settings.jars_dir) if settings.jars_dir else default_jars_dir()


def _jars_named_in_conf(settings: SparkSettings) -> bool:
    """True when `spark.extra_conf` brings Delta itself (`spark.jars[.packages]`)."""
    extra = " ".join(
        str(settings.extra_conf.get(k, "")) for k in ("spark.jars", "spark.jars.packages")
    )
    return "delta" in extra


def local_jars(folder: Path) -> list[Path]:
    """The jars listed in `folder`'s manifest, each checked present; the Delta jar's
    version must be the installed `delta-spark` package's."""
    manifest = folder / JARS_MANIFEST
    if not manifest.is_file():
        raise MissingDependencyError(
            f"Delta's jars are not installed: {manifest} not found; run `{FETCH_JARS}` "
            "in the memberscore repository (it fetches the jars pinned in "
            "requirements/jars.txt with Maven), or set spark.jars_dir to a folder that "
            "has them"
        )
    jars: list[Path] = []
    missing: list[str] = []
    for line in manifest.read_text(encoding="utf-8").splitlines():
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        group, artifact, version = fields[0].split(":")
        path = folder / f"{artifact}-{version}.jar"
        jars.append(path)
        if not path.is_file():
            missing.append(f"{path.name} ({group}:{artifact}:{version})")
        if artifact.startswith("delta-spark_"):
            _check_delta_version(version, manifest)
    if missing:
        raise MissingDependencyError(
            f"missing jar(s) in {folder}: {', '.join(missing)}; run `{FETCH_JARS}` in the "
            "memberscore repository to fetch them with Maven"
        )
    return jars


def _check_delta_version(jar_version: str, manifest: Path) -> None:
    try:
        package = importlib.metadata.version("delta-spark")
    except importlib.metadata.PackageNotFoundError:
        return
    if package != jar_version:
        raise MissingDependencyError(
            f"Delta's jar is {jar_version} ({manifest}) but the delta-spark package is "
            f"{package}; pin the same version in requirements/jars.txt and "
            f"requirements/constraints.txt, then run `{FETCH_JARS}`"
        )


def get_spark(settings: SparkSettings) -> SparkSession:
    """Return the active session on Databricks, else build (or reuse) the local one."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise MissingDependencyError(
            "pyspark is not installed; install memberscore with the `local` extra "
            "(`make test` or `pip install -e .[local]`)"
        ) from exc

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    if on_databricks():  # pragma: no cover - Databricks only
        return SparkSession.builder.getOrCreate()

    check_java()
    # A local session listens on loopback only.
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    # Python workers (UDFs, model scoring) run this interpreter, not `python3` from
    # PATH: `.venv/bin/memberscore` works without an activated virtualenv.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    log4j = Path(__file__).with_name("log4j2.properties")
    java_options = (f"-Duser.timezone=UTC -Dlog4j.configurationFile={log4j.as_uri()} "
                    f"{settings.java_options}").strip()
    builder = (
        SparkSession.builder.master(settings.master)
        .appName(settings.app_name)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.extraJavaOptions", java_options)
        .config("spark.executor.extraJavaOptions", java_options)
        .config("spark.sql.shuffle.partitions", str(settings.shuffle_partitions))
        .config("spark.default.parallelism", str(settings.shuffle_partitions))
        .config("spark.driver.memory", settings.driver_memory)
        .config("spark.ui.enabled", str(settings.ui_enabled).lower())
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.adaptive.enabled", "true")
        # The delta-rs lake hands Spark the exact file list of a version; above this
        # many paths Spark would run a distributed job just to stat them, so stat
        # them on the driver.
        .config("spark.sql.sources.parallelPartitionDiscovery.threshold", "100000")
    )
    if os.environ["PYSPARK_PYTHON"] == sys.executable:
        # Workers run this interpreter, which can import memberscore: use the daemon
        # that spares every Python UDF task a re-read of Spark's zips and jars.
        builder = builder.config("spark.python.daemon.module", "memberscore.spark_daemon")
    if not _jars_named_in_conf(settings):
        jars = local_jars(jars_dir(settings))
        builder = builder.config("spark.jars", ",".join(str(j) for j in jars))
    builder = (
        builder.config("spark.sql.extensions", DELTA_EXTENSION)
        .config("spark.sql.catalog.spark_catalog", DELTA_CATALOG)
        # Delta rebuilds a table's state (its file list) after every commit, with a
        # shuffle of this many partitions: 50 by default, sized for clusters.  A local
        # lake's log is small: one partition (docs/lake.md has the measurement).
        .config("spark.databricks.delta.snapshotPartitions", "1")
    )
    for key, value in settings.extra_conf.items():
        builder = builder.config(key, str(value))
    log.info("starting local Spark master=%s shuffle_partitions=%s",
             settings.master, settings.shuffle_partitions)
    # the JVM prints its start-up warnings, and anything later, to the run log
    with process_output_to_run_log():
        spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def show_task_failures(spark: SparkSession) -> None:
    """With --verbose: log failed Spark tasks with their JVM stack traces (off by
    default, see log4j2.properties: the job reports the failure in one line)."""
    jvm = spark._jvm  # type: ignore[attr-defined]
    if jvm is None or on_databricks():  # pragma: no cover - Databricks keeps its own
        return
    configurator = jvm.org.apache.logging.log4j.core.config.Configurator
    error = jvm.org.apache.logging.log4j.Level.ERROR
    for name in ("org.apache.spark.executor.Executor", "org.apache.spark.scheduler.TaskSetManager"):
        configurator.setLevel(name, error)


@contextlib.contextmanager
def session_conf(spark: SparkSession, key: str, value: str) -> Iterator[None]:
    """Set a runtime SQL conf for the duration of the block, then restore it."""
    previous = spark.conf.get(key, None)
    spark.conf.set(key, value)
    try:
        yield
    finally:
        if previous is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, previous)


# Per session: the answer cannot change while the session lives, and asking the JVM
# costs ~75 py4j round trips (each job opens the lake once per run context).
_DELTA_SPARK: weakref.WeakKeyDictionary[SparkSession, bool] = weakref.WeakKeyDictionary()


def delta_spark_available(spark: SparkSession) -> bool:
    """Whether this session can read and write Delta natively (jars + extension)."""
    if on_databricks():
        return True
    known = _DELTA_SPARK.get(spark)
    if known is None:
        known = _DELTA_SPARK[spark] = _delta_spark_available(spark)
    return known


def _delta_spark_available(spark: SparkSession) -> bool:
    try:
        jvm = spark._jvm  # type: ignore[attr-defined]
        if jvm is None:
            return False
        # spark.jars are on Spark's class loader, not the JVM's system one
        loader = jvm.java.lang.Thread.currentThread().getContextClassLoader()
        jvm.java.lang.Class.forName("io.delta.tables.DeltaTable", False, loader)
    except Exception:  # noqa: BLE001 - any failure means "not available"
        return False
    return DELTA_EXTENSION in (spark.conf.get("spark.sql.extensions", "") or "")


def release(*frames: DataFrame) -> None:
    """Unpersist `frames`, never raising: called in `finally` blocks, where a failure
    to unpersist (a JVM that ran out of memory is gone) must not replace the error
    that got there, which is the one a person can act on."""
    for frame in frames:
        try:
            frame.unpersist()
        except Exception as exc:  # noqa: BLE001 - see docstring
            log.debug("could not unpersist a cached frame: %s", exc)
