"""The model registry as the jobs see it: register a version, move an alias, resolve
an alias to a concrete version, and read what a version carries (signature,
baseline).

Scoring never loads `models:/<name>@champion` directly: the alias is resolved once to
a version number and every later step (signature check, Spark UDF, the
`model_version` column of each output row) uses `models:/<name>/<version>`, so an
alias moved by a concurrent `train` cannot make one run mix two versions.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memberscore.errors import ModelError
from memberscore.logs import mlflow_prints_to_log
from memberscore.models.baseline import ARTIFACT_PATH
from memberscore.models.tracking import safe_uri

if TYPE_CHECKING:
    from mlflow.models import ModelSignature

    from memberscore.models.tracking import MlflowSetup

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResolvedModel:
    """One concrete registered model version."""

    name: str
    version: str
    run_id: str | None
    alias: str | None = None

    @property
    def uri(self) -> str:
        """`models:/<name>/<version>`: the version itself, whatever aliases do later."""
        return f"models:/{self.name}/{self.version}"

    def __str__(self) -> str:
        via = f"@{self.alias} -> " if self.alias else ""
        return f"{self.name} {via}version {self.version}"


class ModelRegistry:
    """Registered models in the configured registry (local SQLite or Unity Catalog)."""

    def __init__(self, setup: MlflowSetup) -> None:
        self.setup = setup
        self.client = setup.client()

    # ------------------------------------------------------------------ aliases

    def aliases(self, name: str) -> dict[str, str] | None:
        """alias -> version of a registered model; None when the model does not exist."""
        from mlflow.exceptions import MlflowException

        try:
            model = self.client.get_registered_model(name)
        except MlflowException as exc:
            if _is_not_found(exc):
                return None
            raise ModelError(f"cannot read registered model {name!r} from the registry "
                             f"{safe_uri(self.setup.registry_uri)}: {_first_line(exc)}") from exc
        return {str(k): str(v) for k, v in (model.aliases or {}).items()}

    def find(self, name: str, alias: str) -> ResolvedModel | None:
        """The version `alias` points at, or None when the model or alias is absent."""
        aliases = self.aliases(name)
        if not aliases or alias not in aliases:
            return None
        return self.version(name, aliases[alias], alias)

    def resolve(self, name: str, alias: str) -> ResolvedModel:
        """The version `alias` points at; ModelError (what to run) when there is none."""
        aliases = self.aliases(name)
        if aliases is None:
            raise ModelError(
                f"no registered model named {name!r} in the registry "
                f"{safe_uri(self.setup.registry_uri)}, so models:/{name}@{alias} cannot be "
                "resolved; "
                "run `memberscore train --run-date D` to train and register one"
            )
        if alias not in aliases:
            held = ", ".join(f"@{a} -> v{v}" for a, v in sorted(aliases.items())) or "none"
            raise ModelError(
                f"registered model {name!r} has no {alias!r} alias (aliases: {held}), so "
                f"models:/{name}@{alias} cannot be resolved; run `memberscore train "
                f"--run-date D` (it sets @{alias} on the first version and on any version "
                f"that beats the current one)"
            )
        resolved = self.version(name, aliases[alias], alias)
        log.info("resolved models:/%s@%s to version %s (run %s)", name, alias,
                 resolved.version, resolved.run_id)
        return resolved

    def version(self, name: str, version: str, alias: str | None = None) -> ResolvedModel:
        """A concrete version, checked to exist."""
        from mlflow.exceptions import MlflowException

        try:
            found = self.client.get_model_version(name, version)
        except MlflowException as exc:
            raise ModelError(f"registered model {name!r} has no version {version}: "
                             f"{_first_line(exc)}") from exc
        return ResolvedModel(name, str(found.version), found.run_id, alias)

    def set_alias(self, model: ResolvedModel, alias: str) -> ResolvedModel:
        """Point `alias` at this version (moving it from wherever it was)."""
        self.client.set_registered_model_alias(model.name, alias, model.version)
        log.info("set alias %s@%s -> version %s", model.name, alias, model.version)
        return ResolvedModel(model.name, model.version, model.run_id, alias)

    # ------------------------------------------------------------------ versions

    def register(self, model_uri: str, name: str, run_id: str,
                 tags: dict[str, str]) -> ResolvedModel:
        """A new version of `name` from a logged model."""
        import mlflow

        with mlflow_prints_to_log():
            found = mlflow.register_model(model_uri, name, tags=tags)
        log.info("registered %s version %s from %s", name, found.version, model_uri)
        return ResolvedModel(name, str(found.version), run_id)

    def tag(self, model: ResolvedModel, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_model_version_tag(model.name, model.version, key, value)

    def signature(self, model: ResolvedModel) -> ModelSignature:
        """The version's logged signature; ModelError when it has none."""
        import mlflow

        try:
            info = mlflow.models.get_model_info(model.uri)
        except Exception as exc:
            raise ModelError(f"cannot read the MLmodel of {model} ({model.uri}): "
                             f"{_first_line(exc)}") from exc
        if info.signature is None or info.signature.inputs is None:
            raise ModelError(
                f"{model} was logged without an input signature, so its inputs cannot be "
                "checked against the feature snapshot; retrain it with `memberscore train`"
            )
        return info.signature

    def load(self, model: ResolvedModel) -> Any:
        """The version as an MLflow pyfunc model (in this process)."""
        import mlflow

        return mlflow.pyfunc.load_model(model.uri)

    def baseline(self, model: ResolvedModel) -> dict[str, Any]:
        """The drift baseline logged by the training run of this version."""
        import mlflow

        if not model.run_id:
            raise ModelError(f"{model} has no training run, so it has no baseline")
        with tempfile.TemporaryDirectory() as tmp:
            try:
                path = mlflow.artifacts.download_artifacts(
                    run_id=model.run_id, artifact_path=ARTIFACT_PATH, dst_path=tmp,
                    tracking_uri=self.setup.tracking_uri)
            except Exception as exc:
                raise ModelError(f"{model}: cannot read {ARTIFACT_PATH} of run "
                                 f"{model.run_id}: {_first_line(exc)}") from exc
            result: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
            return result


def _is_not_found(exc: Exception) -> bool:
    code = str(getattr(exc, "error_code", ""))
    return code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND") or "not found" in str(exc).lower() \
        or "does not exist" in str(exc).lower()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
