"""One training run in MLflow: everything needed to trust, reproduce and monitor the
model, logged with it.

Logged per run:
- params: the algorithm and its settings, run date, TTL, holdout weeks and start,
  feature table and its Delta version, the feature count;
- metrics: `holdout_auc`, `holdout_average_precision`, `holdout_log_loss`,
  `holdout_brier`, `holdout_churn_rate`, the same with `train_`, and the row counts
  (`training_set_rows`, `train_rows`, `holdout_rows`, `labels_total`,
  `labels_dropped_no_snapshot`, `labels_superseded`);
- artifacts: `features.json` (the exact input list, in order),
  `baseline/feature_baseline.json` (see `memberscore.models.baseline`), and the model
  (`model/`: scikit-learn flavour, pyfunc returning `predict_proba`, signature and
  input example);
- tags: memberscore run id, environment, run date.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from memberscore.models.baseline import ARTIFACT_PATH, dumps
from memberscore.models.estimator import TrainedModel
from memberscore.models.tracking import MlflowSetup

MODEL_ARTIFACT = "model"
FEATURES_ARTIFACT = "features.json"
INPUT_EXAMPLE_ROWS = 5


@dataclass(frozen=True)
class LoggedRun:
    """Where a training run and its model were logged."""

    run_id: str
    model_uri: str
    experiment_id: str


def log_training_run(setup: MlflowSetup, *, trained: TrainedModel, example: pd.DataFrame,
                     baseline: dict[str, Any], params: dict[str, Any],
                     counts: dict[str, int], tags: dict[str, str], run_name: str) -> LoggedRun:
    """Log params, metrics, artifacts and the model as one MLflow run."""
    import mlflow

    features = list(trained.features)
    inputs = example[features]
    signature = mlflow.models.infer_signature(
        inputs, trained.pipeline.predict_proba(inputs))
    with mlflow.start_run(experiment_id=setup.experiment_id, run_name=run_name,
                          tags=tags) as run:
        mlflow.log_params({**{k: _param(v) for k, v in params.items()},
                           **{f"model_{k}": _param(v) for k, v in trained.params.items()},
                           "feature_count": len(features)})
        mlflow.log_metrics({
            **{f"holdout_{k}": v for k, v in trained.holdout_metrics.items()
               if np.isfinite(v)},
            **{f"train_{k}": v for k, v in trained.train_metrics.items() if np.isfinite(v)},
            **{k: float(v) for k, v in counts.items()},
        })
        mlflow.log_text(json.dumps(features, indent=2) + "\n", FEATURES_ARTIFACT)
        mlflow.log_text(dumps(baseline), ARTIFACT_PATH)
        info = mlflow.sklearn.log_model(
            trained.pipeline,
            name=MODEL_ARTIFACT,
            signature=signature,
            input_example=_input_example(inputs),
            pyfunc_predict_fn="predict_proba",
            pip_requirements=pinned_requirements(),
        )
        return LoggedRun(run.info.run_id, info.model_uri, setup.experiment_id)


def pinned_requirements() -> list[str]:
    """The packages a scoring environment needs, pinned to this environment's versions.

    Written explicitly rather than inferred: MLflow's inference imports the model in a
    subprocess (seconds per run) and may pick up unrelated packages.
    """
    from importlib.metadata import version

    packages = ("mlflow", "scikit-learn", "numpy", "pandas", "cloudpickle")
    return [f"{name}=={version(name)}" for name in packages]


def run_name(run_date: dt.date, memberscore_run_id: str) -> str:
    return f"train-{run_date.isoformat()}-{memberscore_run_id}"


def _input_example(inputs: pd.DataFrame) -> pd.DataFrame:
    """A few complete rows (JSON has no NaN), else the first rows with gaps as 0."""
    complete = inputs.dropna()
    rows = complete if len(complete) >= 1 else inputs.fillna(0.0)
    return rows.head(INPUT_EXAMPLE_ROWS).reset_index(drop=True)


def _param(value: Any) -> str:
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)
