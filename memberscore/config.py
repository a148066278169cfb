"""Typed, validated configuration loaded once per run.

`conf/base.yml` holds every key with its default; `conf/<env>.yml` overrides some of
them for one environment (local, dev, staging, prod).  The merged mapping is bound to
frozen dataclasses: a key that the dataclasses do not declare, a declared key that no
file sets, or a value of the wrong type fails at start-up with the file and the key
path named.

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
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

import yaml

from memberscore.errors import ConfigError

# the largest money value of the contract's decimal(18,2)
MAX_MONEY = Decimal("9999999999999999.99")

ENVIRONMENTS = ("local", "dev", "staging", "prod")

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


# --------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class SparkSettings:
    """How the local Spark session is built (ignored on Databricks, which has one)."""

    master: str
    app_name: str
    shuffle_partitions: int
    driver_memory: str
    ui_enabled: bool
    extra_conf: Mapping[str, str]
    # Delta's jars for the local session; None = <python prefix>/share/memberscore/jars
    jars_dir: str | None
    # extra JVM flags of the local driver (e.g. the test suite's faster-starting JIT)
    java_options: str


@dataclass(frozen=True)
class LakeSettings:
    """Where the Delta tables live and which backend reads and writes them."""

    backend: Literal["auto", "delta-rs", "delta-spark"]
    catalog: str | None
    schema: str | None
    root: str | None


@dataclass(frozen=True)
class IngestSettings:
    """Landing-file ingest rules."""

    max_bad_row_share: float
    # a transaction with a larger absolute amount (GBP) is quarantined as
    # `amount_out_of_range`: at most this per row, a member's 90-day sum stays within
    # decimal(18,2) for up to 10 million rows
    max_abs_amount: Decimal
    sources: tuple[str, ...]
    # the landing days ingest completed (memberscore.ingest_log)
    log_table: str

    def __post_init__(self) -> None:
        if not Decimal("0") < self.max_abs_amount <= MAX_MONEY:
            raise ConfigError(
                f"ingest.max_abs_amount must be above 0 and at most {MAX_MONEY:,} "
                f"(decimal(18,2)), found {self.max_abs_amount}")


@dataclass(frozen=True)
class GenerateSettings:
    """Defaults for the synthetic data generator."""

    members: int
    days: int
    seed: int
    dirty_share: float


@dataclass(frozen=True)
class FeatureSettings:
    """Feature snapshot rules."""

    allowed_lateness_hours: float
    build_log_table: str
    backfill_chunk_days: int


@dataclass(frozen=True)
class ValidationSettings:
    """Data-quality gate."""

    row_count_tolerance: float
    build_data_docs: bool
    # Which engine Great Expectations computes its metrics with: `spark`, `pandas`
    # (the day's rows collected to the driver), or `auto`: pandas while the day has
    # at most `pandas_max_rows` rows, Spark above.
    engine: Literal["auto", "spark", "pandas"]
    pandas_max_rows: int


@dataclass(frozen=True)
class ScoreBand:
    """A named score band: scores in [lower, upper) get this name."""

    name: str
    lower: float
    upper: float


@dataclass(frozen=True)
class ModelSettings:
    """Model training, the registry, and scoring."""

    tracking_uri: str | None
    registry_uri: str | None
    experiment: str
    names: tuple[str, ...]
    champion_alias: str
    challenger_alias: str
    feature_ttl_days: int
    holdout_weeks: int
    score_bands: tuple[ScoreBand, ...]
    algorithm: Literal["hist_gradient_boosting", "logistic_regression"]
    max_iter: int
    learning_rate: float
    min_training_rows: int
    random_seed: int


@dataclass(frozen=True)
class SnowflakeSettings:
    """The warehouse that features and scores are published to."""

    account: str
    user: str
    role: str | None
    warehouse: str | None
    database: str
    schema: str
    host: str | None
    port: int | None
    protocol: Literal["http", "https"]
    password: Secret | None
    private_key: Secret | None
    private_key_passphrase: Secret | None
    published_tables: tuple[str, ...]
    optional_tables: tuple[str, ...]
    local_server: bool
    login_timeout_seconds: int
    # give up a statement the connector keeps retrying (HTTP 5xx, resets) after this long
    network_timeout_seconds: int


@dataclass(frozen=True)
class MonitorSettings:
    """Drift and freshness thresholds."""

    psi_warn: float
    psi_alert: float
    ks_warn: float
    ks_alert: float
    psi_bins: int
    warn_only: bool
    max_source_staleness_hours: float


@dataclass(frozen=True)
class Settings:
    """Everything a run needs to know, for one environment."""

    env: str
    home: str | None
    spark: SparkSettings
    lake: LakeSettings
    generate: GenerateSettings
    ingest: IngestSettings
    features: FeatureSettings
    validation: ValidationSettings
    models: ModelSettings
    snowflake: SnowflakeSettings
    monitor: MonitorSettings

    def home_path(self) -> Path:
        """The directory holding all local state: conf `home`, else $MEMBERSCORE_HOME,
        else `.memberscore/` in the working directory."""
        raw = self.home or os.environ.get("MEMBERSCORE_HOME") or ".memberscore"
        return Path(raw).expanduser().resolve()


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


# Keys whose values are free-form mappings (not bound to dataclass fields).
_FREE_MAPS = {"spark.extra_conf"}


def _is_free_map(path: str) -> bool:
    return path in _FREE_MAPS


def _record_origin(data: Any, origin: dict[str, str], where: str, prefix: str = "") -> None:
    if isinstance(data, dict) and not _is_free_map(prefix.rstrip(".")):
        for key, value in data.items():
            origin[f"{prefix}{key}"] = where
            _record_origin(value, origin, where, f"{prefix}{key}.")


def load_settings(env: str = "local", conf_dir: str | Path | None = None) -> Settings:
    """Load `base.yml` merged with `<env>.yml` into a frozen Settings.

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
    settings = _bind(Settings, merged, origin, base_where, "")
    _check_names(settings)
    check_score_bands(settings.models.score_bands)
    return settings


def _check_names(settings: Settings) -> None:
    """Names that end up in SQL or paths are checked at load, not when first used: a
    quote or `;` in a table, schema or database name fails here, naming the key."""
    from memberscore.errors import TableError
    from memberscore.lake.base import validate_identifier
    from memberscore.warehouse.connection import ConnectionSpec
    from memberscore.warehouse.identifiers import conf_identifier

    ConnectionSpec.from_settings(settings.snowflake)  # account, user, role, names
    for key, value in (("lake.catalog", settings.lake.catalog),
                       ("lake.schema", settings.lake.schema)):
        if value is not None:
            conf_identifier(value, key)
    for key, value in (("features.build_log_table", settings.features.build_log_table),
                       ("ingest.log_table", settings.ingest.log_table)):
        try:
            validate_identifier(value)
        except TableError as exc:
            raise ConfigError(f"conf key '{key}': {exc}") from None


ENV_OVERRIDE_PREFIX = "MEMBERSCORE__"


def _environment_overrides() -> dict[str, dict[str, Any]]:
    """`MEMBERSCORE__LAKE__CATALOG=x` overrides `lake.catalog` (value parsed as YAML).

    This is how a deployment (the Databricks bundle's job cluster) sets per-target
    values without a second copy of the conf files.  Keys are checked like file keys.
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


def _bind(cls: type, data: Any, origin: dict[str, str], default_where: str, prefix: str) -> Any:
    where = origin.get(prefix.rstrip("."), default_where)
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: key '{prefix.rstrip('.')}' must be a mapping, found {data!r}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        key = f"{prefix}{unknown[0]}"
        raise ConfigError(
            f"{origin.get(key, where)}: unknown key '{key}' "
            f"(known keys here: {', '.join(sorted(fields))})"
        )
    values: dict[str, Any] = {}
    for name, fdef in fields.items():
        key = f"{prefix}{name}"
        if name not in data:
            has_default = (fdef.default is not dataclasses.MISSING
                           or fdef.default_factory is not dataclasses.MISSING)
            if has_default:
                continue
            raise ConfigError(f"{default_where}: missing key '{key}'")
        values[name] = _coerce(hints[name], data[name], key, origin.get(key, where), origin,
                               default_where)
    return cls(**values)


def _coerce(tp: Any, value: Any, key: str, where: str, origin: dict[str, str],
            default_where: str) -> Any:
    origin_tp = get_origin(tp)
    args = get_args(tp)
    if origin_tp in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        errors = []
        for arg in non_none:
            try:
                return _coerce(arg, value, key, where, origin, default_where)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[0]
    if tp is Secret:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: key '{key}' must be a secret reference string")
        try:
            return Secret(value)
        except ValueError as exc:
            raise ConfigError(
                f"{where}: key '{key}': {exc}; secret values never go in conf files"
            ) from None
    if origin_tp is Literal:
        if value not in args:
            raise ConfigError(
                f"{where}: key '{key}' must be one of {', '.join(map(str, args))}, found {value!r}"
            )
        return value
    if origin_tp is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: key '{key}' must be a list, found {value!r}")
        return tuple(
            _coerce(args[0], item, f"{key}[{i}]", where, origin, default_where)
            for i, item in enumerate(value)
        )
    if origin_tp in (Mapping, dict) or tp in (dict, Mapping):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: key '{key}' must be a mapping, found {value!r}")
        return types.MappingProxyType(dict(value))
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: key '{key}' must be a mapping, found {value!r}")
        return _bind(typing.cast(type, tp), value, origin, where, f"{key}.")
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: key '{key}' must be true or false, found {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: key '{key}' must be a whole number, found {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: key '{key}' must be a number, found {value!r}")
        return float(value)
    if tp is Decimal:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ConfigError(f"{where}: key '{key}' must be a number, found {value!r}")
        try:
            return Decimal(str(value).replace("_", ""))
        except ArithmeticError:
            raise ConfigError(f"{where}: key '{key}' must be a number, found {value!r}") from None
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: key '{key}' must be a string, found {value!r}")
        if _ENV_REF.match(value) or _SCOPE_REF.match(value):
            raise ConfigError(
                f"{where}: key '{key}' is not a secret field; write its value, not a reference"
            )
        return value
    raise ConfigError(f"{where}: key '{key}' has an unsupported type {tp!r}")  # pragma: no cover


def check_score_bands(bands: Sequence[ScoreBand]) -> None:
    """Bands must tile [0, 1] without gaps or overlaps, so every probability gets
    exactly one band; ConfigError lists every problem found."""
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
        raise ConfigError("models.score_bands is invalid: " + "; ".join(problems))
