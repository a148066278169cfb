"""Typed, validated configuration loaded once per run.

`conf/base.yml` holds every key with its default; `conf/<env>.yml` overrides some of
them for one environment (local, dev, staging, prod), and `MEMBERSCORE__SECTION__KEY`
environment variables override single keys.  The merged mapping is validated by
pydantic into frozen dataclasses: a key the classes do not declare, a declared key
that no file sets, a value of the wrong type or outside its range fails at start-up in
one line naming the file (or variable) the key came from, the key path and what was
expected.  Every range check on a conf value lives here, on its field.  The files and
the variables are merged by this module, not by pydantic-settings: a variable's value
is YAML (`[a.b.churn]` is a list), and each key remembers where it was set.

Secrets are never values in these files.  A string of the form `${NAME}` is an
environment reference and `{{secrets/<scope>/<key>}}` a Databricks secret-scope
reference; both become `Secret` objects that resolve only when `.reveal()` is called
and print as `Secret(${NAME})`, never as the value.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal, get_args, get_type_hints

import yaml
from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    PlainValidator,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
)
from pydantic.dataclasses import dataclass
from pydantic_core import ErrorDetails

from memberscore.errors import ConfigError

# the largest money value of the contract's decimal(18,2)
MAX_MONEY = Decimal("9999999999999999.99")

ENVIRONMENTS = ("local", "dev", "staging", "prod")
ENV_OVERRIDE_PREFIX = "MEMBERSCORE__"

_ENV_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_SCOPE_REF = re.compile(r"^\{\{secrets/([A-Za-z0-9_.\-]+)/([A-Za-z0-9_.\-]+)\}\}$")


class Secret:
    """A reference to a secret; the value is looked up only when revealed."""

    __slots__ = ("_kind", "_name", "_ref", "_scope")

    def __init__(self, ref: str) -> None:
        env = _ENV_REF.match(ref)
        scope = _SCOPE_REF.match(ref)
        if env:
            self._kind, self._name, self._scope = "env", env.group(1), ""
        elif scope:
            self._kind, self._scope, self._name = "scope", scope.group(1), scope.group(2)
        else:
            raise ValueError("a secret must be written as ${ENV_VAR} or {{secrets/scope/key}}")
        self._ref = ref

    @property
    def reference(self) -> str:
        """The reference as written in conf (safe to log)."""
        return self._ref

    def is_set(self) -> bool:
        """True when the referenced value can be found (without revealing it)."""
        if self._kind == "env":
            return bool(os.environ.get(self._name))
        return _dbutils() is not None

    def reveal(self) -> str:
        """Return the secret value; raises ConfigError naming the reference when absent."""
        if self._kind == "env":
            value = os.environ.get(self._name)
            if not value:
                raise ConfigError(
                    f"environment variable {self._name} is not set "
                    f"(referenced as {self._ref} in conf); export it before running"
                )
            return value
        dbutils = _dbutils()
        if dbutils is None:
            raise ConfigError(
                f"{self._ref} refers to a Databricks secret scope, which is only "
                "available on Databricks; locally use an ${ENV_VAR} reference"
            )
        return str(dbutils.secrets.get(scope=self._scope, key=self._name))

    def __repr__(self) -> str:
        return f"Secret({self._ref})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._ref == self._ref

    def __hash__(self) -> int:
        return hash(self._ref)


def _dbutils() -> Any:
    """The Databricks dbutils object when running on Databricks, else None."""
    if "DATABRICKS_RUNTIME_VERSION" not in os.environ:
        return None
    try:  # pragma: no cover - only on Databricks
        from databricks.sdk.runtime import dbutils  # type: ignore[import-not-found]

        return dbutils
    except ImportError:  # pragma: no cover
        return None


# --------------------------------------------------------------------------- field types
# A validator raises ValueError saying what is expected (and what was found, never a
# secret); `_one_line` adds the key and the file or variable it came from.  The
# checks whose rules live elsewhere import them when they run: the modules holding
# them import Spark or this module.


def _secret(value: object) -> Secret:
    if isinstance(value, Secret):
        return value
    if not isinstance(value, str):
        raise ValueError("must be a secret reference string")
    try:
        return Secret(value)
    except ValueError as exc:
        raise ValueError(f"{exc}; secret values never go in conf files") from None


def _written_out(value: str) -> str:
    if _ENV_REF.match(value) or _SCOPE_REF.match(value):
        raise ValueError("is not a secret field; write its value, not a reference")
    return value


def _snowflake_name(value: str) -> str:
    from memberscore.warehouse.identifiers import conf_identifier

    return conf_identifier(value)


def _snowflake_account(value: str) -> str:
    from memberscore.warehouse.identifiers import conf_account

    return conf_account(value)


def _snowflake_user(value: str) -> str:
    from memberscore.warehouse.identifiers import conf_user

    return conf_user(value)


def _snowflake_host(value: str) -> str:
    from memberscore.warehouse.identifiers import conf_host

    return conf_host(value)


_BOOTSTRAP_SERVER = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.\-]*[A-Za-z0-9])?)"
                               r":([0-9]{1,5})$")


def _bootstrap_servers(value: str) -> str:
    """`host:port[,host:port...]`, each port 1-65535 (Kafka's bootstrap.servers)."""
    servers = [part.strip() for part in value.split(",")]
    for server in servers:
        match = _BOOTSTRAP_SERVER.match(server)
        if match is None or not 0 < int(match.group(2)) <= 65535:
            where = f" in {value!r}" if len(servers) > 1 else ""
            raise ValueError(f"expected host:port[,host:port...], found {server!r}{where}")
    return ",".join(servers)


def _kafka_topic(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9._\-]{1,249}", value) or value in {".", ".."}:
        raise ValueError(f"expected a Kafka topic name (letters, digits, '.', '_', '-'), "
                         f"found {value!r}")
    return value


def _lake_table(value: str) -> str:
    from memberscore.errors import TableError
    from memberscore.lake.base import validate_identifier

    try:
        return validate_identifier(value)
    except TableError as exc:
        raise ValueError(str(exc)) from None


def _chunk_days(value: int) -> int:
    from memberscore.transforms.tiles import MAX_CHUNK_DAYS

    if not 1 <= value <= MAX_CHUNK_DAYS:
        raise ValueError(f"must be between 1 and {MAX_CHUNK_DAYS} (a chunk's counterparty "
                         f"masks hold one bit per day), found {value}")
    return value


def _sources(values: tuple[str, ...]) -> tuple[str, ...]:
    from memberscore.schemas import SOURCES

    return _known(values, SOURCES, "sources of the contract")


def _output_tables(values: tuple[str, ...]) -> tuple[str, ...]:
    from memberscore.tables import OUTPUT_TABLES

    return _known(values, OUTPUT_TABLES, "output tables")


def _known(values: tuple[str, ...], known: Mapping[str, object], what: str) -> tuple[str, ...]:
    unknown = [v for v in values if v not in known]
    if unknown:
        raise ValueError(f"must name {what} ({', '.join(known)}), found "
                         f"{', '.join(map(repr, unknown))}")
    return values


def _score_bands(bands: tuple[ScoreBand, ...]) -> tuple[ScoreBand, ...]:
    """Bands must tile [0, 1] without gaps or overlaps, so every probability gets
    exactly one band; the message lists every problem found."""
    problems: list[str] = []
    ordered = sorted(bands, key=lambda b: b.lower)
    if not ordered:
        problems.append("no bands are configured")
    for band in ordered:
        if not band.lower < band.upper:
            problems.append(f"band {band.name!r} has lower {band.lower} >= upper {band.upper}")
    for previous, current in itertools.pairwise(ordered):
        if current.lower != previous.upper:
            problems.append(
                f"band {current.name!r} starts at {current.lower} but {previous.name!r} "
                f"ends at {previous.upper} (bands must meet exactly)"
            )
    if ordered and ordered[0].lower > 0.0:
        problems.append(f"the lowest band starts at {ordered[0].lower}, not at 0")
    if ordered and ordered[-1].upper <= 1.0:
        problems.append(f"the highest band ends at {ordered[-1].upper}; it must end above 1 "
                        "(upper bounds are exclusive) so a score of 1.0 has a band")
    names = [b.name for b in bands]
    if len(set(names)) != len(names):
        problems.append(f"band names repeat: {names}")
    if problems:
        raise ValueError("models.score_bands is invalid: " + "; ".join(problems))
    return bands


# Strict types, as conf is typed: a bool is not a number, a string not a number (a
# YAML 1 is a float, though); text that is a secret reference is refused.
Text = Annotated[StrictStr, AfterValidator(_written_out)]
AtLeastOne = Annotated[StrictInt, Field(ge=1)]
SecretRef = Annotated[Secret, PlainValidator(_secret)]
SnowflakeName = Annotated[Text, AfterValidator(_snowflake_name)]
LakeTable = Annotated[Text, AfterValidator(_lake_table)]
Names = tuple[Text, ...]
# read-only; the values go to Spark as they are
FreeMap = Annotated[Mapping[StrictStr, Any], AfterValidator(MappingProxyType)]

# Unknown keys are refused; a value never appears in pydantic's own messages (a
# literal where a secret belongs would be one); the classes are built on first use,
# which keeps importing this module cheap.
_CONF = ConfigDict(extra="forbid", hide_input_in_errors=True, defer_build=True)


# --------------------------------------------------------------------------- sections


@dataclass(frozen=True, config=_CONF)
class SparkSettings:
    """How the local Spark session is built (ignored on Databricks, which has one)."""

    master: Text
    app_name: Text
    shuffle_partitions: StrictInt
    driver_memory: Text
    ui_enabled: StrictBool
    extra_conf: FreeMap
    # Delta's jars for the local session; None = <python prefix>/share/memberscore/jars
    jars_dir: Text | None
    # extra JVM flags of the local driver (e.g. the test suite's faster-starting JIT)
    java_options: Text


@dataclass(frozen=True, config=_CONF)
class LakeSettings:
    """Where the Delta tables live and which backend reads and writes them."""

    backend: Literal["auto", "delta-rs", "delta-spark"]
    # Unity Catalog names: Snowflake-style identifiers (they go into SQL text)
    catalog: SnowflakeName | None
    schema: SnowflakeName | None
    root: Text | None


@dataclass(frozen=True, config=_CONF)
class IngestSettings:
    """Landing-file ingest rules."""

    max_bad_row_share: StrictFloat
    # a transaction with a larger absolute amount (GBP) is quarantined as
    # `amount_out_of_range`: at most this per row, a member's 90-day sum stays within
    # decimal(18,2) for up to 10 million rows
    max_abs_amount: Annotated[Decimal, Field(gt=0, le=MAX_MONEY)]
    sources: Annotated[Names, AfterValidator(_sources)]
    # the landing days ingest completed (memberscore.ingest_log)
    log_table: LakeTable
    # a range ingest goes in chunks of whole days holding at most this many MB of
    # landing files, each written and recorded before the next is read
    range_chunk_mb: Annotated[StrictFloat, Field(gt=0)]


@dataclass(frozen=True, config=_CONF)
class GenerateSettings:
    """Defaults for the synthetic data generator."""

    members: StrictInt
    days: StrictInt
    seed: StrictInt
    dirty_share: StrictFloat


@dataclass(frozen=True, config=_CONF)
class FeatureSettings:
    """Feature snapshot rules."""

    allowed_lateness_hours: StrictFloat
    build_log_table: LakeTable
    # at most transforms.tiles.MAX_CHUNK_DAYS
    backfill_chunk_days: Annotated[StrictInt, AfterValidator(_chunk_days)]


@dataclass(frozen=True, config=_CONF)
class ValidationSettings:
    """Data-quality gate."""

    row_count_tolerance: StrictFloat
    build_data_docs: StrictBool
    # Which engine Great Expectations computes its metrics with: `spark`, `pandas`
    # (the day's rows collected to the driver), or `auto`: pandas while the day has
    # at most `pandas_max_rows` rows, Spark above.
    engine: Literal["auto", "spark", "pandas"]
    pandas_max_rows: StrictInt


@dataclass(frozen=True, config=_CONF)
class ScoreBand:
    """A named score band: scores in [lower, upper) get this name."""

    name: Text
    lower: StrictFloat
    upper: StrictFloat


@dataclass(frozen=True, config=_CONF)
class ModelSettings:
    """Model training, the registry, and scoring."""

    tracking_uri: Text | None
    registry_uri: Text | None
    experiment: Text
    names: Names
    champion_alias: Text
    challenger_alias: Text
    feature_ttl_days: AtLeastOne
    holdout_weeks: AtLeastOne
    score_bands: Annotated[tuple[ScoreBand, ...], AfterValidator(_score_bands)]
    algorithm: Literal["hist_gradient_boosting", "logistic_regression"]
    max_iter: StrictInt
    learning_rate: StrictFloat
    min_training_rows: StrictInt
    random_seed: StrictInt


@dataclass(frozen=True, config=_CONF)
class SnowflakeSettings:
    """The warehouse that features and scores are published to."""

    account: Annotated[Text, AfterValidator(_snowflake_account)]
    user: Annotated[Text, AfterValidator(_snowflake_user)]
    role: SnowflakeName | None
    warehouse: SnowflakeName | None
    database: SnowflakeName
    schema: SnowflakeName
    host: Annotated[Text, AfterValidator(_snowflake_host)] | None
    port: StrictInt | None
    protocol: Literal["http", "https"]
    password: SecretRef | None
    private_key: SecretRef | None
    private_key_passphrase: SecretRef | None
    published_tables: Annotated[Names, AfterValidator(_output_tables)]
    optional_tables: Annotated[Names, AfterValidator(_output_tables)]
    local_server: StrictBool
    login_timeout_seconds: AtLeastOne
    # give up a statement the connector keeps retrying (HTTP 5xx, resets) after this long
    network_timeout_seconds: AtLeastOne


@dataclass(frozen=True, config=_CONF)
class MonitorSettings:
    """Drift and freshness thresholds."""

    psi_warn: StrictFloat
    psi_alert: StrictFloat
    ks_warn: StrictFloat
    ks_alert: StrictFloat
    psi_bins: StrictInt
    warn_only: StrictBool
    max_source_staleness_hours: StrictFloat


@dataclass(frozen=True, config=_CONF)
class ApiSettings:
    """The scores API (`memberscore api`, docs/api.md)."""

    host: Text
    port: Annotated[StrictInt, Field(ge=0, le=65535)]
    # bearer tokens a client may present (several, so a token can be rotated)
    tokens: Annotated[tuple[SecretRef, ...], Field(min_length=1)]
    # warehouse sessions kept open and shared by the requests
    pool_size: AtLeastOne
    # requests served at once (the others wait in the server's queue)
    threads: AtLeastOne
    # connecting, waiting for a pooled session, and each query: beyond this, 503
    timeout_seconds: AtLeastOne
    # the model `/score` answers for when the request names none (null: models.names[0])
    model_name: Text | None


@dataclass(frozen=True, config=_CONF)
class EventsSettings:
    """The "day published" event on Kafka (memberscore.events, docs/events.md)."""

    # false: publish records and sends no event (the outbox is left alone)
    enabled: StrictBool
    topic: Annotated[Text, AfterValidator(_kafka_topic)]
    # host:port,...; null: the local broker under <home>/broker (events.local_broker)
    bootstrap_servers: Annotated[Text, AfterValidator(_bootstrap_servers)] | None
    # true: start the local broker when bootstrap_servers is null
    local_broker: StrictBool
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None
    sasl_username: SecretRef | None
    sasl_password: SecretRef | None
    client_id: Text
    # a CA bundle (PEM) for SSL / SASL_SSL brokers signed by the bank's own CA
    ssl_ca_location: Text | None
    # an unacknowledged event is left pending after this long (the publish succeeds)
    delivery_timeout_seconds: AtLeastOne

    def __post_init__(self) -> None:
        if self.enabled and self.bootstrap_servers is None and not self.local_broker:
            raise ValueError("events.bootstrap_servers is required when events.enabled is "
                             "true and events.local_broker is false")
        if self.security_protocol.startswith("SASL_") and (
                self.sasl_mechanism is None or self.sasl_username is None
                or self.sasl_password is None):
            raise ValueError(f"events.security_protocol {self.security_protocol} needs "
                             "sasl_mechanism, sasl_username and sasl_password")


@dataclass(frozen=True, config=_CONF)
class Settings:
    """Everything a run needs to know, for one environment."""

    env: StrictStr
    home: Text | None
    spark: SparkSettings
    lake: LakeSettings
    generate: GenerateSettings
    ingest: IngestSettings
    features: FeatureSettings
    validation: ValidationSettings
    models: ModelSettings
    snowflake: SnowflakeSettings
    monitor: MonitorSettings
    api: ApiSettings
    events: EventsSettings

    def home_path(self) -> Path:
        """The directory holding all local state: conf `home`, else $MEMBERSCORE_HOME,
        else `.memberscore/` in the working directory."""
        raw = self.home or os.environ.get("MEMBERSCORE_HOME") or ".memberscore"
        return Path(raw).expanduser().resolve()


def check_score_bands(bands: Sequence[ScoreBand]) -> None:
    """ConfigError listing every problem of `bands`: the check of `models.score_bands`."""
    try:
        _score_bands(tuple(bands))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


# --------------------------------------------------------------------------- loading


def _read_yaml(name: str, conf_dir: Path | None) -> tuple[dict[str, Any], str]:
    if conf_dir is not None:
        path = conf_dir / name
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        text, where = path.read_text(encoding="utf-8"), str(path)
    else:
        res = resources.files("memberscore.conf").joinpath(name)
        if not res.is_file():
            raise ConfigError(f"config file conf/{name} is not in the memberscore package")
        text, where = res.read_text(encoding="utf-8"), f"conf/{name}"
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must hold a mapping at the top level")
    return data, where


def _merge(base: dict[str, Any], override: dict[str, Any], origin: dict[str, str],
           where: str, prefix: str = "") -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and isinstance(out.get(key), dict) and not _is_free_map(path):
            out[key] = _merge(out[key], value, origin, where, f"{path}.")
        else:
            out[key] = value
            origin[path] = where
    return out


# Keys whose values are free-form mappings (not sections with declared keys).
_FREE_MAPS = {"spark.extra_conf"}


def _is_free_map(path: str) -> bool:
    return path in _FREE_MAPS


def _record_origin(data: Any, origin: dict[str, str], where: str, prefix: str = "") -> None:
    if isinstance(data, dict) and not _is_free_map(prefix.rstrip(".")):
        for key, value in data.items():
            origin[f"{prefix}{key}"] = where
            _record_origin(value, origin, where, f"{prefix}{key}.")


def load_settings(env: str = "local", conf_dir: str | Path | None = None) -> Settings:
    """Load `base.yml` merged with `<env>.yml` and the environment's overrides into a
    frozen Settings.

    `conf_dir` defaults to the `conf/` packaged in the wheel; `$MEMBERSCORE_CONF_DIR`
    points at another folder (for a site's own overrides).
    """
    if env not in ENVIRONMENTS:
        raise ConfigError(
            f"unknown environment {env!r}: expected one of {', '.join(ENVIRONMENTS)}"
        )
    directory = conf_dir if conf_dir is not None else os.environ.get("MEMBERSCORE_CONF_DIR")
    cdir = Path(directory) if directory else None
    base, base_where = _read_yaml("base.yml", cdir)
    override, env_where = _read_yaml(f"{env}.yml", cdir)
    origin: dict[str, str] = {}
    _record_origin(base, origin, base_where)
    merged = _merge(base, override, origin, env_where)
    for var, nested in _environment_overrides().items():
        merged = _merge(merged, nested, origin, f"environment variable {var}")
    merged["env"] = env
    origin["env"] = "--env"
    try:
        return Settings(**{str(key): value for key, value in merged.items()})
    except ValidationError as exc:
        raise ConfigError(_one_line(exc, origin, base_where)) from None


def _environment_overrides() -> dict[str, dict[str, Any]]:
    """`MEMBERSCORE__LAKE__CATALOG=x` overrides `lake.catalog` (value parsed as YAML).

    This is how a person sets one key for one run without a second copy of the conf
    files.  Keys are checked like file keys.
    """
    out: dict[str, dict[str, Any]] = {}
    for var in sorted(os.environ):
        if not var.startswith(ENV_OVERRIDE_PREFIX):
            continue
        parts = [p.lower() for p in var[len(ENV_OVERRIDE_PREFIX):].split("__")]
        if not all(parts):
            raise ConfigError(f"environment variable {var}: expected MEMBERSCORE__SECTION__KEY")
        try:
            value: Any = yaml.safe_load(os.environ[var])
        except yaml.YAMLError:
            value = os.environ[var]
        for part in reversed(parts):
            value = {part: value}
        out[var] = value
    return out


# --------------------------------------------------------------------------- messages

# What a value of pydantic's error types must be, in the words of conf.
_EXPECTED = {
    "int_type": "must be a whole number", "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number", "float_parsing": "must be a number",
    "decimal_type": "must be a number", "decimal_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false", "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "tuple_type": "must be a list", "list_type": "must be a list",
    "dict_type": "must be a mapping", "dataclass_type": "must be a mapping",
    "dataclass_args_type": "must be a mapping", "mapping_type": "must be a mapping",
}
_UNKNOWN = ("unexpected_keyword_argument", "extra_forbidden", "invalid_key")
_BOUNDS = {"greater_than": ("gt", "above"), "greater_than_equal": ("ge", "at least"),
           "less_than": ("lt", "below"), "less_than_equal": ("le", "at most")}


def _one_line(exc: ValidationError, origin: Mapping[str, str], base_where: str) -> str:
    """The first of the errors in one line: where the key came from, its path, and what
    it must be; the count of the others."""
    # a misspelled key is reported before the missing key it leaves behind
    errors = sorted(exc.errors(include_url=False), key=lambda e: e["type"] not in _UNKNOWN)
    error = errors[0]
    loc = error["loc"]
    kind = error["type"]
    key = _key_path(loc)
    where = _where(loc, origin, base_where)
    if kind in _UNKNOWN:
        key = _key_path((*loc[:-1], str(loc[-1])))  # a key YAML read as a number, too
        known = ", ".join(f.name for f in dataclasses.fields(_section(loc[:-1])))
        line = f"{where}: unknown key '{key}' (known keys here: {known})"
    elif kind == "missing":
        line = f"{where}: missing key '{key}'"
    elif loc[-1:] == ("[key]",):  # a key of a free-form mapping (spark.extra_conf)
        line = f"{where}: conf key '{_key_path(loc[:-2])}' must have string keys, found " \
               f"{loc[-2]!r}"
    else:
        line = f"{where}: {_problem(key, error)}"
    more = len(errors) - 1
    return line + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else "")


def _problem(key: str, error: ErrorDetails) -> str:
    kind = error["type"]
    if kind == "value_error":  # our validators: their own words, never a secret
        text = str(error["ctx"]["error"])
        if text.startswith(key):
            return text
        return f"conf key '{key}'{' ' if text.startswith(('must ', 'is ')) else ': '}{text}"
    if kind == "literal_error":
        choices = ", ".join(re.findall(r"'([^']*)'", error["ctx"]["expected"]))
        expected = f"must be one of {choices}"
    elif kind in _BOUNDS:
        name, words = _BOUNDS[kind]
        expected = f"must be {words} {error['ctx'][name]}"
    else:
        expected = _EXPECTED.get(kind, f"is invalid ({error['msg']})")
    return f"conf key '{key}' {expected}, found {error['input']!r}"


def _where(loc: tuple[int | str, ...], origin: Mapping[str, str], base_where: str) -> str:
    """The file or variable that set the key at `loc`, else the one that set its nearest
    parent (the items of a list are not recorded: the list's origin is theirs)."""
    names = [str(part) for part in itertools.takewhile(lambda p: isinstance(p, str), loc)]
    for end in range(len(names), 0, -1):
        where = origin.get(".".join(names[:end]))
        if where:
            return where
    return base_where


def _key_path(loc: tuple[int | str, ...]) -> str:
    """`models.score_bands[1].upper` from pydantic's ('models', 'score_bands', 1, 'upper')."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else part
    return path


def _section(loc: tuple[int | str, ...]) -> Any:
    """The settings class of the section at `loc`."""
    section: Any = Settings
    for part in loc:
        hint = get_type_hints(section)[part] if isinstance(part, str) else section
        section = next(a for a in (hint, *get_args(hint)) if dataclasses.is_dataclass(a))
    return section
