"""Where MLflow keeps runs and registered models, set up once per job.

Locally (conf `models.tracking_uri` null) both the tracking store and the model
registry are one SQLite database, `$MEMBERSCORE_HOME/mlflow/mlflow.db`, and artifacts
(models, baselines) are files under `$MEMBERSCORE_HOME/mlflow/artifacts`; two homes
never share a registry.  On Databricks conf names the workspace (`databricks`) and
Unity Catalog (`databricks-uc`), which manage artifacts themselves.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from memberscore.errors import ModelError
from memberscore.logs import LogStream

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from memberscore.context import RunContext

log = logging.getLogger(__name__)

DB_FILE = "mlflow.db"
ARTIFACTS_DIR = "artifacts"


@dataclass(frozen=True)
class MlflowSetup:
    """The resolved MLflow locations for one run (safe to log: no credentials)."""

    tracking_uri: str
    registry_uri: str
    experiment_name: str
    experiment_id: str
    artifact_root: str | None

    def client(self) -> MlflowClient:
        """A client bound to these URIs (independent of MLflow's global state)."""
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.registry_uri)


def local_uris(mlflow_dir: Path) -> tuple[str, str, str]:
    """(tracking URI, registry URI, artifact root) of the local store under `mlflow_dir`."""
    database = f"sqlite:///{(mlflow_dir / DB_FILE).resolve()}"
    return database, database, (mlflow_dir / ARTIFACTS_DIR).resolve().as_uri()


def configure_mlflow(ctx: RunContext) -> MlflowSetup:
    """Point MLflow (globally, for this process) at the configured tracking store and
    registry, and make sure the experiment exists.

    MLflow's fluent API (`start_run`, `log_model`, `spark_udf` on `models:/` URIs) reads
    the global URIs, so they are set here and nowhere else.
    """
    import mlflow

    conf = ctx.settings.models
    artifact_root: str | None = None
    if conf.tracking_uri is None:
        ctx.paths.mlflow.mkdir(parents=True, exist_ok=True)
        tracking_uri, default_registry, artifact_root = local_uris(ctx.paths.mlflow)
        registry_uri = conf.registry_uri or default_registry
    else:
        tracking_uri = conf.tracking_uri
        registry_uri = conf.registry_uri or conf.tracking_uri
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(registry_uri)
    setup_without_experiment = MlflowSetup(tracking_uri, registry_uri, conf.experiment, "",
                                           artifact_root)
    try:
        with _logging_preserved():
            client = setup_without_experiment.client()
            experiment = client.get_experiment_by_name(conf.experiment)
            if registry_uri.startswith("sqlite:"):  # create its tables here, see below
                client.search_registered_models(max_results=1)
        if experiment is None:
            experiment_id = client.create_experiment(conf.experiment,
                                                     artifact_location=artifact_root)
            log.info("created MLflow experiment %s (id %s)", conf.experiment, experiment_id)
        else:
            experiment_id = experiment.experiment_id
    except Exception as exc:
        raise ModelError(
            f"cannot open the MLflow tracking store {safe_uri(tracking_uri)} (experiment "
            f"{conf.experiment!r}): {_first_line(exc)}; check models.tracking_uri in conf"
        ) from exc
    return MlflowSetup(tracking_uri, registry_uri, conf.experiment, experiment_id,
                       artifact_root)


@contextmanager
def _logging_preserved() -> Iterator[None]:
    """Undo what opening a new SQL store does to logging.

    The first open of an MLflow SQL store runs its Alembic migrations, whose env.py
    calls `logging.config.fileConfig`: the root logger's handlers are replaced and its
    level set to WARN, which would silence every later log line of the job (the
    job-boundary line included).  The logging configuration is put back as it was,
    and what the migration logged meanwhile went to the run log.
    """
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    loggers = {name: (item.level, list(item.handlers), item.propagate, item.disabled)
               for name, item in logging.Logger.manager.loggerDict.items()
               if isinstance(item, logging.Logger)}
    try:
        # the handler fileConfig installs writes to the sys.stderr of that moment:
        # the migration's lines go to the run log
        with contextlib.redirect_stderr(LogStream("alembic")):
            yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, (lvl, kept, propagate, disabled) in loggers.items():
            item = logging.getLogger(name)
            item.setLevel(lvl)
            item.handlers[:] = kept
            item.propagate = propagate
            item.disabled = disabled
        for name in ("alembic", "sqlalchemy.engine"):  # new ones stay quiet
            if name not in loggers:
                logging.getLogger(name).setLevel(logging.WARNING)


def safe_uri(uri: str) -> str:
    """The URI without any user:password@ part, for messages and logs."""
    scheme, sep, rest = uri.partition("://")
    if not sep or "@" not in rest.split("/", 1)[0]:
        return uri
    return f"{scheme}://***@{rest.split('@', 1)[1]}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
