"""Shared fixtures: one local Spark for the whole session, a fresh $MEMBERSCORE_HOME
per test, and settings/context objects bound to it."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# Tests never read a developer's own state or a site conf folder.
os.environ.pop("MEMBERSCORE_CONF_DIR", None)
os.environ.setdefault("PYSPARK_PYTHON", os.environ.get("PYSPARK_PYTHON", "python"))

from memberscore.config import Settings, load_settings
from memberscore.context import RunContext
from memberscore.warehouse import WarehouseConnection

# Spark evaluates expressions interpreted in the test session, not compiled to Java.
# Every plan of this suite runs over a few hundred rows, once: compiling it (Janino,
# per query stage) costs more than running it (docs/development.md has the figures).
# The same engine and plans, only the evaluation of expressions differs;
# `compiled_spark` gives a test Spark's default, the mode production runs (the demo
# tests use it).
INTERPRETED = {"spark.sql.codegen.wholeStage": "false",
               "spark.sql.codegen.factoryMode": "NO_CODEGEN"}


@pytest.fixture(scope="session")
def spark():  # type: ignore[no-untyped-def]
    """One local SparkSession for every test (2 cores, 2 shuffle partitions, no UI)."""
    import sys

    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    from memberscore.spark import get_spark

    settings = load_settings("local")
    session = get_spark(
        dataclasses.replace(
            settings.spark,
            master="local[2]",
            app_name="memberscore-tests",
            shuffle_partitions=2,
            driver_memory="2g",
            ui_enabled=False,
            extra_conf={"spark.sql.adaptive.coalescePartitions.enabled": "true",
                        **INTERPRETED},
            # The parallel collector, and the JVM's default tiered JIT: over a whole
            # suite in one JVM, C2-compiled Delta and Catalyst code pays for its
            # compile time (the quick C1 JIT alone: a one-row commit 0.38 s and a
            # read + count 0.64 s, steady state, against 0.33 s and 0.46 s tiered).
            java_options="-XX:+UseParallelGC",
        )
    )
    yield session
    session.stop()


@pytest.fixture(autouse=True)
def _forget_delta_tables() -> Iterator[None]:
    """After each test, drop what Delta keeps per table in the session: every test
    makes its own tables, and their cached logs and file-list states would otherwise
    pile up on the driver for the whole suite."""
    yield
    from pyspark.sql import SparkSession

    session = SparkSession.getActiveSession()
    if session is not None:
        session.catalog.clearCache()
        session._jvm.org.apache.spark.sql.delta.DeltaLog.clearCache()  # type: ignore[union-attr]


@pytest.fixture(autouse=True)
def _console_as_configured_by_default() -> Iterator[None]:
    """A test that ran a command with --verbose leaves the console as a command
    without it configures it (the state is per process, as in a real run)."""
    yield
    from memberscore import logs

    logs.configure_logging(verbose=False)


@pytest.fixture(scope="session", autouse=True)
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One real Kafka broker (the local KRaft broker) for the whole session, on a free
    loopback port; every job of the session sends its events there (through
    MEMBERSCORE__EVENTS__BOOTSTRAP_SERVERS, so subprocesses that keep the variable do
    too).  Its bootstrap address."""
    from memberscore.local.broker_server import local_broker

    with local_broker(tmp_path_factory.mktemp("kafka"), must_serve=True) as handle:
        bootstrap = handle.address().bootstrap_servers
        previous = os.environ.get("MEMBERSCORE__EVENTS__BOOTSTRAP_SERVERS")
        os.environ["MEMBERSCORE__EVENTS__BOOTSTRAP_SERVERS"] = bootstrap
        try:
            yield bootstrap
        finally:
            if previous is None:
                os.environ.pop("MEMBERSCORE__EVENTS__BOOTSTRAP_SERVERS", None)
            else:
                os.environ["MEMBERSCORE__EVENTS__BOOTSTRAP_SERVERS"] = previous


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh $MEMBERSCORE_HOME for one test."""
    path = tmp_path / "home"
    path.mkdir()
    monkeypatch.setenv("MEMBERSCORE_HOME", str(path))
    return path


@pytest.fixture
def settings(home: Path) -> Settings:
    return load_settings("local")


@pytest.fixture
def ctx(settings: Settings, spark) -> Iterator[RunContext]:  # type: ignore[no-untyped-def]
    yield RunContext(settings, run_id="test-run", spark=spark)


@pytest.fixture
def compiled_spark(spark):  # type: ignore[no-untyped-def]
    """The session Spark with whole-stage code generation on, as every job runs
    outside the test suite, for this test only."""
    previous = {key: spark.conf.get(key) for key in INTERPRETED}
    spark.conf.set("spark.sql.codegen.wholeStage", "true")
    spark.conf.set("spark.sql.codegen.factoryMode", "FALLBACK")
    try:
        yield spark
    finally:
        for key, value in previous.items():
            spark.conf.set(key, value)


@pytest.fixture
def warehouse(ctx: RunContext) -> Iterator[WarehouseConnection]:
    """A session on this test's local warehouse (its server started for the test);
    publishes in the test reuse the server."""
    from memberscore.warehouse import open_warehouse

    with open_warehouse(ctx.settings, ctx.paths.warehouse, purpose="test") as conn:
        yield conn


@pytest.fixture(scope="module")
def mlflow_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One MLflow store per test module (creating a SQLite store costs about 1 s);
    tests stay isolated by model name and by their own lake."""
    return tmp_path_factory.mktemp("mlflow-home")
