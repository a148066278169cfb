"""Configuration: typed, merged per environment, strict about keys, secrets unrevealed."""

from __future__ import annotations

import dataclasses
import logging
import re
import shutil
from decimal import Decimal
from importlib import resources
from pathlib import Path

import pytest
from pydantic import ValidationError

from memberscore.cli import main
from memberscore.config import ENVIRONMENTS, ScoreBand, Secret, load_settings
from memberscore.errors import ConfigError


@pytest.fixture
def conf_dir(tmp_path: Path) -> Path:
    """A writable copy of the packaged conf/ folder."""
    target = tmp_path / "conf"
    source = resources.files("memberscore.conf")
    target.mkdir()
    for name in ["base.yml", *(f"{env}.yml" for env in ENVIRONMENTS)]:
        (target / name).write_text(source.joinpath(name).read_text())
    return target


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_packaged_environment_loads(env: str) -> None:
    settings = load_settings(env)
    assert settings.env == env
    assert settings.ingest.max_bad_row_share == 0.01
    assert settings.ingest.max_abs_amount == Decimal("1000000000.00")
    assert settings.features.allowed_lateness_hours == 6.0
    assert settings.models.feature_ttl_days == 7
    assert settings.snowflake.published_tables == (
        "member_features_daily", "member_scores", "drift_metrics")


def test_local_overrides_base_and_databricks_targets_use_unity_catalog() -> None:
    local, prod = load_settings("local"), load_settings("prod")
    assert local.snowflake.protocol == "http" and local.snowflake.local_server is True
    assert local.lake.catalog is None and local.lake.backend == "auto"
    assert prod.lake.catalog == "memberscore_prod" and prod.lake.backend == "delta-spark"
    assert prod.snowflake.local_server is False  # from base.yml, not overridden
    assert prod.snowflake.database == "ANALYTICS"
    assert isinstance(prod.snowflake.private_key, Secret)


def test_settings_are_frozen() -> None:
    settings = load_settings("local")
    with pytest.raises(AttributeError):
        settings.ingest.max_bad_row_share = 0.5  # type: ignore[misc]


def test_unknown_key_names_file_and_key(conf_dir: Path) -> None:
    path = conf_dir / "local.yml"
    path.write_text(path.read_text() + "\ningest:\n  max_bad_row_shares: 0.2\n")
    with pytest.raises(ConfigError) as err:
        load_settings("local", conf_dir)
    message = str(err.value)
    assert str(path) in message
    assert "unknown key 'ingest.max_bad_row_shares'" in message


@pytest.mark.parametrize("value", ["0", "-5", "1e17", "lots"])
def test_max_abs_amount_is_a_positive_money_value(value: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMBERSCORE__INGEST__MAX_ABS_AMOUNT", value)
    with pytest.raises(ConfigError, match="max_abs_amount"):
        load_settings("local")
    monkeypatch.setenv("MEMBERSCORE__INGEST__MAX_ABS_AMOUNT", "2500000.50")
    assert load_settings("local").ingest.max_abs_amount == Decimal("2500000.50")


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("MEMBERSCORE__SNOWFLAKE__SCHEMA", "X; DROP TABLE Y", "conf key 'snowflake.schema' must"),
    ("MEMBERSCORE__SNOWFLAKE__DATABASE", "ANALYTICS'", "conf key 'snowflake.database' must"),
    ("MEMBERSCORE__LAKE__SCHEMA", "s;x", "conf key 'lake.schema' must"),
    ("MEMBERSCORE__FEATURES__BUILD_LOG_TABLE", "log'x",
     "conf key 'features.build_log_table': invalid table"),
    ("MEMBERSCORE__INGEST__LOG_TABLE", "log;", "conf key 'ingest.log_table': invalid table"),
    ("MEMBERSCORE__SNOWFLAKE__NETWORK_TIMEOUT_SECONDS", "0",
     "conf key 'snowflake.network_timeout_seconds' must be at least 1"),
])
def test_names_bound_for_sql_and_paths_are_checked_at_load(
        variable: str, value: str, message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if variable == "MEMBERSCORE__LAKE__SCHEMA":
        monkeypatch.setenv("MEMBERSCORE__LAKE__CATALOG", "main")
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings("local")


def test_unknown_top_level_key(conf_dir: Path) -> None:
    path = conf_dir / "dev.yml"
    path.write_text(path.read_text() + "\nfeaturez: {}\n")
    with pytest.raises(ConfigError, match=r"dev\.yml: unknown key 'featurez'"):
        load_settings("dev", conf_dir)


def test_missing_key_names_file_and_key(conf_dir: Path) -> None:
    path = conf_dir / "base.yml"
    text = path.read_text().replace("  max_bad_row_share: 0.01\n", "")
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_settings("local", conf_dir)
    assert str(path) in str(err.value)
    assert "missing key 'ingest.max_bad_row_share'" in str(err.value)


def test_wrong_type_is_refused(conf_dir: Path) -> None:
    path = conf_dir / "local.yml"
    path.write_text(path.read_text() + "\nspark:\n  shuffle_partitions: many\n")
    with pytest.raises(ConfigError, match=r"'spark.shuffle_partitions' must be a whole number"):
        load_settings("local", conf_dir)


def test_score_bands_that_leave_a_gap_are_refused_when_the_conf_is_loaded(
        conf_dir: Path) -> None:
    path = conf_dir / "base.yml"
    path.write_text(path.read_text().replace("{name: medium, lower: 0.2, upper: 0.5}",
                                             "{name: medium, lower: 0.25, upper: 0.5}"))
    with pytest.raises(ConfigError, match=r"models.score_bands is invalid: band 'medium' "
                                          r"starts at 0.25 but 'low' ends at 0.2"):
        load_settings("local", conf_dir)


def test_bad_choice_is_refused(conf_dir: Path) -> None:
    path = conf_dir / "local.yml"
    path.write_text(path.read_text() + "\nlake:\n  backend: parquet\n")
    with pytest.raises(ConfigError, match=r"'lake.backend' must be one of auto, delta-rs"):
        load_settings("local", conf_dir)


def test_unknown_environment() -> None:
    with pytest.raises(ConfigError, match="unknown environment 'qa'"):
        load_settings("qa")


def test_missing_override_file(conf_dir: Path) -> None:
    (conf_dir / "staging.yml").unlink()
    with pytest.raises(ConfigError, match=r"staging\.yml does not exist"):
        load_settings("staging", conf_dir)


def test_env_var_secret_is_resolved_only_when_revealed(
    conf_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = conf_dir / "local.yml"
    # into the snowflake section (local.yml does not end with it)
    path.write_text(path.read_text().replace(
        "\nsnowflake:\n", "\nsnowflake:\n  password: ${MS_TEST_SNOWFLAKE_PASSWORD}\n", 1))
    monkeypatch.delenv("MS_TEST_SNOWFLAKE_PASSWORD", raising=False)
    settings = load_settings("local", conf_dir)  # loading does not need the value
    secret = settings.snowflake.password
    assert isinstance(secret, Secret)
    assert not secret.is_set()
    with pytest.raises(ConfigError) as err:
        secret.reveal()
    assert "MS_TEST_SNOWFLAKE_PASSWORD is not set" in str(err.value)

    monkeypatch.setenv("MS_TEST_SNOWFLAKE_PASSWORD", "hunter2-very-secret")
    assert secret.reveal() == "hunter2-very-secret"
    shown = f"{settings!r} {settings.snowflake} {secret}"
    assert "hunter2" not in shown
    assert "Secret(${MS_TEST_SNOWFLAKE_PASSWORD})" in shown


def test_literal_secret_values_are_refused(conf_dir: Path) -> None:
    path = conf_dir / "local.yml"
    # into the snowflake section (local.yml does not end with it)
    path.write_text(path.read_text().replace(
        "\nsnowflake:\n", "\nsnowflake:\n  password: plain-text-password\n", 1))
    with pytest.raises(ConfigError) as err:
        load_settings("local", conf_dir)
    assert "secret values never go in conf files" in str(err.value)
    assert "plain-text-password" not in str(err.value)


def test_scope_secret_needs_databricks(conf_dir: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABRICKS_RUNTIME_VERSION", raising=False)
    path = conf_dir / "prod.yml"
    path.write_text(path.read_text().replace(
        "${SNOWFLAKE_PRIVATE_KEY}", '"{{secrets/memberscore-prod/snowflake-private-key}}"'))
    secret = load_settings("prod", conf_dir).snowflake.private_key
    assert secret is not None
    assert repr(secret) == "Secret({{secrets/memberscore-prod/snowflake-private-key}})"
    with pytest.raises(ConfigError, match="only available on Databricks"):
        secret.reveal()


def test_home_defaults_to_env_then_cwd(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MEMBERSCORE_HOME", str(tmp_path / "h"))
    assert load_settings("local").home_path() == (tmp_path / "h").resolve()
    monkeypatch.delenv("MEMBERSCORE_HOME")
    monkeypatch.chdir(tmp_path)
    assert load_settings("local").home_path() == (tmp_path / ".memberscore").resolve()


def test_conf_dir_from_environment(conf_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = conf_dir / "local.yml"
    path.write_text(path.read_text() + "\ningest:\n  max_bad_row_share: 0.05\n")
    monkeypatch.setenv("MEMBERSCORE_CONF_DIR", str(conf_dir))
    assert load_settings("local").ingest.max_bad_row_share == 0.05
    shutil.rmtree(conf_dir)
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings("local")


def test_environment_variable_overrides_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMBERSCORE__LAKE__CATALOG", "team_catalog")
    monkeypatch.setenv("MEMBERSCORE__MODELS__NAMES", "[a.b.churn, a.b.other]")
    monkeypatch.setenv("MEMBERSCORE__INGEST__MAX_BAD_ROW_SHARE", "0.02")
    settings = load_settings("prod")
    assert settings.lake.catalog == "team_catalog"
    assert settings.models.names == ("a.b.churn", "a.b.other")
    assert settings.ingest.max_bad_row_share == 0.02


def test_misspelled_environment_override_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMBERSCORE__LAKE__CATALOGUE", "x")
    with pytest.raises(ConfigError) as err:
        load_settings("dev")
    assert "environment variable MEMBERSCORE__LAKE__CATALOGUE" in str(err.value)
    assert "unknown key 'lake.catalogue'" in str(err.value)


# --------------------------------------------------------------------------- the model


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("MEMBERSCORE__FEATURES__BACKFILL_CHUNK_DAYS", "63",
     "conf key 'features.backfill_chunk_days' must be between 1 and 62"),
    ("MEMBERSCORE__FEATURES__BACKFILL_CHUNK_DAYS", "0",
     "conf key 'features.backfill_chunk_days' must be between 1 and 62"),
    ("MEMBERSCORE__MODELS__HOLDOUT_WEEKS", "0", "conf key 'models.holdout_weeks' must be at "
                                                "least 1, found 0"),
    ("MEMBERSCORE__MODELS__FEATURE_TTL_DAYS", "-1", "conf key 'models.feature_ttl_days' must "
                                                    "be at least 1, found -1"),
    ("MEMBERSCORE__INGEST__MAX_ABS_AMOUNT", "-5", "conf key 'ingest.max_abs_amount' must be "
                                                  "above 0, found -5"),
    ("MEMBERSCORE__INGEST__SOURCES", "[members, accounts]",
     "conf key 'ingest.sources' must name sources of the contract (members, transactions, "
     "member_outcomes), found 'accounts'"),
    ("MEMBERSCORE__SNOWFLAKE__PUBLISHED_TABLES", "[member_scores, scores]",
     "conf key 'snowflake.published_tables' must name output tables"),
    ("MEMBERSCORE__SNOWFLAKE__OPTIONAL_TABLES", "[drift]",
     "conf key 'snowflake.optional_tables' must name output tables"),
    ("MEMBERSCORE__SNOWFLAKE__ACCOUNT", "my account", "conf key 'snowflake.account' must be "
                                                      "an account identifier"),
    ("MEMBERSCORE__SNOWFLAKE__USER", "a b", "conf key 'snowflake.user' must be a login name"),
    ("MEMBERSCORE__SNOWFLAKE__HOST", "a host", "conf key 'snowflake.host' must be a host name"),
    ("MEMBERSCORE__SNOWFLAKE__ROLE", "select", "conf key 'snowflake.role' must be a Snowflake "
                                               "identifier"),
    ("MEMBERSCORE__LAKE__CATALOG", "main.x", "conf key 'lake.catalog' must be a Snowflake "
                                             "identifier"),
])
def test_every_range_check_runs_when_the_conf_is_loaded(
        variable: str, value: str, message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each message names the variable the value came from, the key and what it must be."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as err:
        load_settings("local")
    assert str(err.value).startswith(f"environment variable {variable}: {message}")


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("MEMBERSCORE__SPARK__SHUFFLE_PARTITIONS", "true",
     "'spark.shuffle_partitions' must be a whole number, found True"),
    ("MEMBERSCORE__SPARK__SHUFFLE_PARTITIONS", "2.0",
     "'spark.shuffle_partitions' must be a whole number, found 2.0"),
    ("MEMBERSCORE__INGEST__MAX_BAD_ROW_SHARE", "'0.1'",
     "'ingest.max_bad_row_share' must be a number, found '0.1'"),
    ("MEMBERSCORE__MONITOR__WARN_ONLY", "1", "'monitor.warn_only' must be true or false"),
    ("MEMBERSCORE__MODELS__NAMES", "a.b.churn", "'models.names' must be a list, found "
                                                "'a.b.churn'"),
    ("MEMBERSCORE__MODELS__NAMES", "[a, 7]", "'models.names[1]' must be a string, found 7"),
    ("MEMBERSCORE__LAKE", "delta", "'lake' must be a mapping, found 'delta'"),
    ("MEMBERSCORE__SNOWFLAKE__USER", "${SNOWFLAKE_USER}",
     "'snowflake.user' is not a secret field; write its value, not a reference"),
    ("MEMBERSCORE__SPARK__EXTRA_CONF", "{1: x}", "'spark.extra_conf' must have string keys"),
])
def test_types_are_strict(variable: str, value: str, message: str,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings("local")


def test_a_whole_number_is_a_number(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMBERSCORE__MONITOR__MAX_SOURCE_STALENESS_HOURS", "48")
    value = load_settings("local").monitor.max_source_staleness_hours
    assert value == 48.0 and isinstance(value, float)


def test_keys_inside_a_list_are_named_with_their_index(conf_dir: Path) -> None:
    path = conf_dir / "prod.yml"
    bands = ("\nmodels:\n  score_bands:\n    - {name: low, lower: 0.0, upper: 0.5}\n"
             "    - {name: high, lower: 0.5, %s}\n")
    path.write_text(path.read_text() + bands % "upper: lots")
    with pytest.raises(ConfigError) as err:
        load_settings("prod", conf_dir)
    assert str(err.value) == (f"{path}: conf key 'models.score_bands[1].upper' must be a "
                              "number, found 'lots'")

    path.write_text(path.read_text().replace("upper: lots", "top: 1.1"))
    with pytest.raises(ConfigError) as err:
        load_settings("prod", conf_dir)
    assert str(err.value) == (f"{path}: unknown key 'models.score_bands[1].top' (known keys "
                              "here: name, lower, upper) (and 1 more problem)")


def test_settings_stay_dataclasses_and_a_replaced_value_is_checked_too() -> None:
    """Tests and the demo derive settings with dataclasses.replace; what they build
    passes the same checks as conf."""
    settings = load_settings("local")
    smaller = dataclasses.replace(settings.features, backfill_chunk_days=2)
    assert dataclasses.replace(settings, features=smaller).features.backfill_chunk_days == 2
    with pytest.raises(ValidationError, match="must be between 1 and 62"):
        dataclasses.replace(settings.features, backfill_chunk_days=63)
    assert dataclasses.replace(settings.models, names=["a", "b"]).names == ("a", "b")
    band = ScoreBand("low", 0, 0.5)
    assert band == ScoreBand(name="low", lower=0.0, upper=0.5) and hash(band) == hash(
        ScoreBand("low", 0.0, 0.5))
    with pytest.raises(TypeError):
        settings.spark.extra_conf["spark.x"] = "1"  # type: ignore[index]


def test_a_secret_value_appears_in_no_message(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str],
                                              caplog: pytest.LogCaptureFixture) -> None:
    """A secret set in the environment, and a literal where a secret belongs, next to
    a key that fails: neither value is in the error, its cause, the CLI's line (with
    the traceback of --verbose) or a log record."""
    referenced, literal = "s3cr3t-from-the-env-4711", "s3cr3t-literal-0815"
    monkeypatch.setenv("MS_TEST_SNOWFLAKE_KEY", referenced)
    monkeypatch.setenv("MEMBERSCORE__SNOWFLAKE__PRIVATE_KEY", "${MS_TEST_SNOWFLAKE_KEY}")
    monkeypatch.setenv("MEMBERSCORE__SNOWFLAKE__PORT", "not-a-port")
    with pytest.raises(ConfigError) as err:
        load_settings("local")
    assert "conf key 'snowflake.port' must be a whole number" in str(err.value)
    shown = [str(err.value), repr(err.value), str(err.value.__context__)]

    monkeypatch.setenv("MEMBERSCORE__SNOWFLAKE__PASSWORD", literal)
    with pytest.raises(ConfigError) as err:
        load_settings("local")
    assert "(and 1 more problem)" in str(err.value)
    shown += [str(err.value), repr(err.value), str(err.value.__context__)]
    monkeypatch.delenv("MEMBERSCORE__SNOWFLAKE__PORT")
    with pytest.raises(ConfigError, match="secret values never go in conf files") as err:
        load_settings("local")
    shown += [str(err.value), repr(err.value), str(err.value.__context__)]
    with monkeypatch.context() as env:
        env.delenv("MEMBERSCORE__SNOWFLAKE__PASSWORD")
        snowflake = load_settings("local").snowflake
    with pytest.raises(ValidationError) as built:
        dataclasses.replace(snowflake, password=literal)  # type: ignore[arg-type]
    shown.append(str(built.value))

    with caplog.at_level(logging.DEBUG):
        assert main(["--verbose", "features", "--run-date", "2026-03-01"]) == 3
    captured = capsys.readouterr()
    assert "secret values never go in conf files" in captured.err
    shown += [captured.out, captured.err, *(r.getMessage() for r in caplog.records)]
    for text in shown:
        assert referenced not in text and literal not in text


# --------------------------------------------------------------------------- events


@pytest.fixture
def packaged_events_conf(monkeypatch: pytest.MonkeyPatch) -> None:
    """The events section as the conf files set it: without the test session's broker
    (conftest points MEMBERSCORE__EVENTS__BOOTSTRAP_SERVERS at it)."""
    monkeypatch.delenv("MEMBERSCORE__EVENTS__BOOTSTRAP_SERVERS", raising=False)


@pytest.mark.usefixtures("packaged_events_conf")
def test_local_sends_events_to_the_local_broker_without_auth() -> None:
    events = load_settings("local").events
    assert events.enabled and events.local_broker and events.bootstrap_servers is None
    assert (events.security_protocol, events.sasl_mechanism) == ("PLAINTEXT", None)
    assert events.topic == "memberscore.day_published.v1"


@pytest.mark.usefixtures("packaged_events_conf")
@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_databricks_targets_send_events_over_sasl_ssl_with_secret_references(
        env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The bank's broker of the target, SASL_SSL with SCRAM, and the credentials as
    references to the env vars the bundle fills from the secret scope: loading the conf
    needs neither variable (a secret is looked up only when the producer is built)."""
    monkeypatch.delenv("KAFKA_SASL_USERNAME", raising=False)
    monkeypatch.delenv("KAFKA_SASL_PASSWORD", raising=False)
    events = load_settings(env).events
    assert events.enabled and not events.local_broker
    assert events.bootstrap_servers == f"kafka-{env}.bank.internal:9093"
    assert (events.security_protocol, events.sasl_mechanism) == ("SASL_SSL", "SCRAM-SHA-512")
    assert isinstance(events.sasl_username, Secret) and isinstance(events.sasl_password, Secret)
    assert (events.sasl_username.reference, events.sasl_password.reference) == (
        "${KAFKA_SASL_USERNAME}", "${KAFKA_SASL_PASSWORD}")
    assert not events.sasl_password.is_set()
    with pytest.raises(ConfigError, match="environment variable KAFKA_SASL_PASSWORD is not set"):
        events.sasl_password.reveal()


@pytest.mark.usefixtures("packaged_events_conf")
@pytest.mark.parametrize(("env", "overrides", "message"), [
    ("local", {"MEMBERSCORE__EVENTS__BOOTSTRAP_SERVERS": "nonsense"},
     "environment variable MEMBERSCORE__EVENTS__BOOTSTRAP_SERVERS: conf key "
     "'events.bootstrap_servers': expected host:port[,host:port...], found 'nonsense'"),
    ("prod", {"MEMBERSCORE__EVENTS__BOOTSTRAP_SERVERS": "kafka-1.bank.internal:9093,kafka-2:0"},
     "conf key 'events.bootstrap_servers': expected host:port[,host:port...], found "
     "'kafka-2:0'"),
    ("local", {"MEMBERSCORE__EVENTS__SECURITY_PROTOCOL": "SASL_SSL"},
     "events.security_protocol SASL_SSL needs sasl_mechanism, sasl_username and "
     "sasl_password"),
    ("local", {"MEMBERSCORE__EVENTS__SECURITY_PROTOCOL": "SASL_SSL",
               "MEMBERSCORE__EVENTS__SASL_MECHANISM": "SCRAM-SHA-512",
               "MEMBERSCORE__EVENTS__SASL_USERNAME": "${KAFKA_SASL_USERNAME}"},
     "events.security_protocol SASL_SSL needs sasl_mechanism, sasl_username and "
     "sasl_password"),
    ("prod", {"MEMBERSCORE__EVENTS__SASL_PASSWORD": "null"},
     "events.security_protocol SASL_SSL needs sasl_mechanism, sasl_username and "
     "sasl_password"),
    ("prod", {"MEMBERSCORE__EVENTS__SASL_MECHANISM": "GSSAPI"},
     "conf key 'events.sasl_mechanism' must be one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"),
    ("dev", {"MEMBERSCORE__EVENTS__BOOTSTRAP_SERVERS": "null"},
     "events.bootstrap_servers is required when events.enabled is true and "
     "events.local_broker is false"),
    ("local", {"MEMBERSCORE__EVENTS__TOPIC": "day published"},
     "conf key 'events.topic': expected a Kafka topic name"),
    ("local", {"MEMBERSCORE__EVENTS__DELIVERY_TIMEOUT_SECONDS": "0"},
     "conf key 'events.delivery_timeout_seconds' must be at least 1, found 0"),
])
def test_events_conf_is_checked_when_it_is_loaded(
        env: str, overrides: dict[str, str], message: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A broker address that is not host:port, SASL without its mechanism and both
    credentials, no broker at all: one line naming the key, before any work starts."""
    for variable, value in overrides.items():
        monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as err:
        load_settings(env)
    text = str(err.value)
    assert message in text
    assert "\n" not in text


@pytest.mark.usefixtures("packaged_events_conf")
def test_events_disabled_needs_no_broker_and_a_literal_sasl_secret_is_refused(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMBERSCORE__EVENTS__ENABLED", "false")
    monkeypatch.setenv("MEMBERSCORE__EVENTS__BOOTSTRAP_SERVERS", "null")
    assert load_settings("prod").events.enabled is False
    monkeypatch.setenv("MEMBERSCORE__EVENTS__SASL_PASSWORD", "s3cr3t-kafka-password")
    with pytest.raises(ConfigError) as err:
        load_settings("prod")
    assert "conf key 'events.sasl_password'" in str(err.value)
    assert "secret values never go in conf files" in str(err.value)
    assert "s3cr3t-kafka-password" not in str(err.value)
